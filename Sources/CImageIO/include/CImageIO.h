// Image codecs over libpng and libjpeg(-turbo), decoding from and encoding to
// memory. Every error is returned (code != 0 plus a message), never exit()ed:
// both libraries' error paths longjmp back into the function that called them.
#ifndef CIMAGEIO_H
#define CIMAGEIO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// PNG colour types (the PNG specification's numbers); JPEG uses 0 and 2.
enum {
    CIMG_GRAY = 0,
    CIMG_RGB = 2,
    CIMG_PALETTE = 3,
    CIMG_GRAY_ALPHA = 4,
    CIMG_RGBA = 6
};

/// A decoded image, rows top to bottom, samples interleaved.
/// `bit_depth` is the file's bit depth (1, 2, 4, 8 or 16). Samples of depth
/// <= 8 are stored one per byte with their raw value (a 4-bit gray pixel is
/// 0..15, a palette pixel is its palette index); 16-bit samples are stored as
/// host-order uint16. Palette images are NOT expanded: `palette` holds
/// `palette_size` RGB triples.
typedef struct {
    int width;
    int height;
    int channels;          // 1 gray/palette, 2 gray+alpha, 3 RGB, 4 RGBA
    int bit_depth;
    int color_type;        // CIMG_*
    unsigned char *pixels; // malloc'ed; release with cimg_free
    size_t pixels_size;    // bytes
    int palette_size;
    unsigned char palette[256 * 3];
} cimg_image;

/// Returns 0 on success; otherwise a non-zero code and `err` holds a message.
int cimg_decode_png(const unsigned char *data, size_t size, cimg_image *out,
                    char *err, size_t errlen);

/// Header only (width, height, channels, bit_depth, color_type; no pixels).
int cimg_png_info(const unsigned char *data, size_t size, cimg_image *out,
                  char *err, size_t errlen);

/// Baseline/progressive JPEG to 8-bit gray (1 channel) or RGB (3 channels).
/// libjpeg warnings (e.g. "Premature end of JPEG file") are errors here.
int cimg_decode_jpeg(const unsigned char *data, size_t size, cimg_image *out,
                     char *err, size_t errlen);

void cimg_free(cimg_image *img);

/// Encodes `channels` (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) samples of
/// `bit_depth` 8 (bytes) or 16 (host-order uint16) per pixel into a PNG in
/// memory. `level` is the zlib level (-1 default, 0..9). *out is malloc'ed;
/// release it with cimg_free_buffer.
int cimg_encode_png(const void *pixels, int width, int height, int channels,
                    int bit_depth, int level, unsigned char **out, size_t *out_size,
                    char *err, size_t errlen);

/// Encodes 8-bit gray (1) or RGB (3) pixels as a baseline JPEG in memory.
int cimg_encode_jpeg(const unsigned char *pixels, int width, int height, int channels,
                     int quality, unsigned char **out, size_t *out_size,
                     char *err, size_t errlen);

void cimg_free_buffer(unsigned char *buf);

#ifdef __cplusplus
}
#endif

#endif
