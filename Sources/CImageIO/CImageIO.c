// Image codecs over libpng (classic API + setjmp) and libjpeg(-turbo) (custom
// error manager + setjmp). Nothing here calls exit(): every failure returns a
// non-zero code with a message in `err`.
#include "CImageIO.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>  // before jpeglib.h, which needs FILE
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>

// Largest decoded image accepted (bytes), a guard against absurd headers.
#define CIMG_MAX_BYTES ((size_t)1 << 31)

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

// ---------------------------------------------------------------------------
// PNG
// ---------------------------------------------------------------------------

typedef struct {
    const unsigned char *data;
    size_t size, pos;
    char *err;
    size_t errlen;
} png_mem_reader;

static void png_error_fn(png_structp png, png_const_charp msg) {
    png_mem_reader *m = (png_mem_reader *)png_get_error_ptr(png);
    set_err(m->err, m->errlen, msg);
    png_longjmp(png, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;  // ancillary-chunk problems (bad iCCP, CRC of text...) are ignored
}

static void png_read_from_memory(png_structp png, png_bytep out, png_size_t n) {
    png_mem_reader *m = (png_mem_reader *)png_get_io_ptr(png);
    if (n > m->size - m->pos) {
        png_error(png, "truncated PNG (unexpected end of data)");
    }
    memcpy(out, m->data + m->pos, n);
    m->pos += n;
}

static int channels_of(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    case PNG_COLOR_TYPE_PALETTE: return 1;
    default: return 0;
    }
}

static int decode_png(const unsigned char *data, size_t size, cimg_image *out,
                      char *err, size_t errlen, int header_only) {
    memset(out, 0, sizeof *out);
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        set_err(err, errlen, "not a PNG file (bad signature)");
        return 1;
    }
    png_mem_reader m = {data, size, 0, err, errlen};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &m, png_error_fn,
                                             png_warning_fn);
    if (!png) {
        set_err(err, errlen, "out of memory");
        return 2;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_err(err, errlen, "out of memory");
        return 2;
    }
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(out->pixels);
        out->pixels = NULL;
        out->pixels_size = 0;
        png_destroy_read_struct(&png, &info, NULL);
        return 3;
    }
    png_set_read_fn(png, &m, png_read_from_memory);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);
    out->width = (int)w;
    out->height = (int)h;
    out->bit_depth = bit_depth;
    out->color_type = color_type;
    out->channels = channels_of(color_type);
    if (out->channels == 0) png_error(png, "unsupported PNG colour type");
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal = NULL;
        int n = 0;
        if (png_get_PLTE(png, info, &pal, &n) && pal) {
            if (n > 256) n = 256;
            for (int i = 0; i < n; i++) {
                out->palette[3 * i] = pal[i].red;
                out->palette[3 * i + 1] = pal[i].green;
                out->palette[3 * i + 2] = pal[i].blue;
            }
            out->palette_size = n;
        }
    }
    if (header_only) {
        png_destroy_read_struct(&png, &info, NULL);
        return 0;
    }

    if (bit_depth < 8) png_set_packing(png);  // one sample per byte, raw value
    if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t bytes_per_sample = bit_depth == 16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * (size_t)out->channels * bytes_per_sample)
        png_error(png, "unexpected PNG row size");
    if (h == 0 || rowbytes == 0 || (size_t)h > CIMG_MAX_BYTES / rowbytes)
        png_error(png, "PNG image too large");
    out->pixels_size = rowbytes * (size_t)h;
    out->pixels = (unsigned char *)malloc(out->pixels_size);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)h);
    if (!out->pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = out->pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);  // reaches IEND: a file cut after the image data fails here

    free(rows);
    rows = NULL;
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int cimg_decode_png(const unsigned char *data, size_t size, cimg_image *out,
                    char *err, size_t errlen) {
    return decode_png(data, size, out, err, errlen, 0);
}

int cimg_png_info(const unsigned char *data, size_t size, cimg_image *out,
                  char *err, size_t errlen) {
    return decode_png(data, size, out, err, errlen, 1);
}

typedef struct {
    unsigned char *buf;
    size_t size, cap;
    char *err;
    size_t errlen;
} png_mem_writer;

static void png_write_error_fn(png_structp png, png_const_charp msg) {
    png_mem_writer *w = (png_mem_writer *)png_get_error_ptr(png);
    set_err(w->err, w->errlen, msg);
    png_longjmp(png, 1);
}

static void png_write_to_memory(png_structp png, png_bytep data, png_size_t n) {
    png_mem_writer *w = (png_mem_writer *)png_get_io_ptr(png);
    if (n > w->cap - w->size) {
        size_t cap = w->cap ? w->cap : 4096;
        while (n > cap - w->size) cap *= 2;
        unsigned char *nb = (unsigned char *)realloc(w->buf, cap);
        if (!nb) png_error(png, "out of memory");
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->size, data, n);
    w->size += n;
}

static void png_flush_memory(png_structp png) { (void)png; }

int cimg_encode_png(const void *pixels, int width, int height, int channels,
                    int bit_depth, int level, unsigned char **out, size_t *out_size,
                    char *err, size_t errlen) {
    *out = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4 ||
        (bit_depth != 8 && bit_depth != 16)) {
        set_err(err, errlen, "invalid PNG encode arguments");
        return 1;
    }
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    // Heap-allocated so its fields stay valid across the longjmp.
    png_mem_writer *w = (png_mem_writer *)calloc(1, sizeof *w);
    if (!w) {
        set_err(err, errlen, "out of memory");
        return 2;
    }
    w->err = err;
    w->errlen = errlen;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, w, png_write_error_fn,
                                              png_warning_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        free(w);
        set_err(err, errlen, "out of memory");
        return 2;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(w->buf);
        free(w);
        return 3;
    }
    png_set_write_fn(png, w, png_write_to_memory, png_flush_memory);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth,
                 types[channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (level >= 0 && level <= 9) png_set_compression_level(png, level);
    png_write_info(png, info);
    if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    size_t rowbytes = (size_t)width * (size_t)channels * (size_t)(bit_depth / 8);
    for (int y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)pixels + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = w->buf;
    *out_size = w->size;
    free(w);
    return 0;
}

// ---------------------------------------------------------------------------
// JPEG
// ---------------------------------------------------------------------------

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *err;
    size_t errlen;
} cimg_jpeg_error;

static void jpeg_error_exit_fn(j_common_ptr cinfo) {
    cimg_jpeg_error *e = (cimg_jpeg_error *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    set_err(e->err, e->errlen, buf);
    longjmp(e->jump, 1);
}

// libjpeg reports corrupt or truncated data as warnings (level -1) and goes on
// with grey filler; a training set must not contain such files, so any warning
// is an error. Trace messages (level >= 0) are ignored.
static void jpeg_emit_message_fn(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_error_exit_fn(cinfo);
}

static void jpeg_output_message_fn(j_common_ptr cinfo) { (void)cinfo; }

int cimg_decode_jpeg(const unsigned char *data, size_t size, cimg_image *out,
                     char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
        set_err(err, errlen, "not a JPEG file (bad signature)");
        return 1;
    }
    struct jpeg_decompress_struct cinfo;
    cimg_jpeg_error jerr;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_fn;
    jerr.pub.emit_message = jpeg_emit_message_fn;
    jerr.pub.output_message = jpeg_output_message_fn;
    jerr.err = err;
    jerr.errlen = errlen;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(out->pixels);
        out->pixels = NULL;
        out->pixels_size = 0;
        return 3;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    (void)jpeg_read_header(&cinfo, TRUE);
    int channels;
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_GRAYSCALE;
        channels = 1;
    } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        set_err(err, errlen, "CMYK JPEG is not supported (convert it to RGB)");
        jpeg_destroy_decompress(&cinfo);
        return 4;
    } else {
        cinfo.out_color_space = JCS_RGB;
        channels = 3;
    }
    (void)jpeg_start_decompress(&cinfo);
    size_t rowbytes = (size_t)cinfo.output_width * (size_t)channels;
    size_t h = cinfo.output_height;
    if (rowbytes == 0 || h == 0 || h > CIMG_MAX_BYTES / rowbytes) {
        set_err(err, errlen, "JPEG image too large or empty");
        jpeg_destroy_decompress(&cinfo);
        return 4;
    }
    out->width = (int)cinfo.output_width;
    out->height = (int)cinfo.output_height;
    out->channels = channels;
    out->bit_depth = 8;
    out->color_type = channels == 1 ? CIMG_GRAY : CIMG_RGB;
    out->pixels_size = rowbytes * h;
    out->pixels = (unsigned char *)malloc(out->pixels_size);
    if (!out->pixels) {
        set_err(err, errlen, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return 2;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out->pixels + (size_t)cinfo.output_scanline * rowbytes;
        (void)jpeg_read_scanlines(&cinfo, &row, 1);
    }
    (void)jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

typedef struct {
    unsigned char *buf;
    unsigned long size;
} jpeg_mem_out;

int cimg_encode_jpeg(const unsigned char *pixels, int width, int height, int channels,
                     int quality, unsigned char **out, size_t *out_size,
                     char *err, size_t errlen) {
    *out = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) {
        set_err(err, errlen, "invalid JPEG encode arguments");
        return 1;
    }
    jpeg_mem_out *mo = (jpeg_mem_out *)calloc(1, sizeof *mo);
    if (!mo) {
        set_err(err, errlen, "out of memory");
        return 2;
    }
    struct jpeg_compress_struct cinfo;
    cimg_jpeg_error jerr;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_fn;
    jerr.pub.output_message = jpeg_output_message_fn;
    jerr.err = err;
    jerr.errlen = errlen;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(mo->buf);
        free(mo);
        return 3;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &mo->buf, &mo->size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t rowbytes = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * rowbytes);
        (void)jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = mo->buf;
    *out_size = (size_t)mo->size;
    free(mo);
    return 0;
}

void cimg_free(cimg_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
    img->pixels_size = 0;
}

void cimg_free_buffer(unsigned char *buf) { free(buf); }
