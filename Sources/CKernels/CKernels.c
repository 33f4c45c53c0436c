#include "CKernels.h"
#include "Clones.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

/// The summed gradient divided by the number of replicas, as PyTorch averages before the step:
/// a power of two multiplies by its exact reciprocal (bit for bit the correctly rounded
/// quotient), other divisors divide.
static inline int is_power_of_two(float d) {
    int exponent;
    return frexpf(d, &exponent) == 0.5f;
}

/// Adds parts[0..nparts) element by element in index order, ((p0 + p1) + p2) + ..., into dst.
static inline void sum_in_order(const float *const *parts, size_t nparts, size_t offset, float *restrict dst, size_t n) {
    const float *restrict a = parts[0] + offset, *restrict b = parts[1] + offset;
    for (size_t i = 0; i < n; i++) dst[i] = a[i] + b[i];
    for (size_t k = 2; k < nparts; k++) {
        const float *restrict c = parts[k] + offset;
        for (size_t i = 0; i < n; i++) dst[i] += c[i];
    }
}

/// Chunk of summed gradients kept on the stack (in L1) between summing and its use.
enum { SUM_CHUNK = 2048 };

static inline void adam_on(float *restrict p, const float *restrict g_sum, float divisor, float *restrict m,
                           float *restrict v, size_t n, float w, float b2, float c2, float step, float bc2_sqrt,
                           float eps) {
    const int reciprocal = is_power_of_two(divisor);
    const float inverse = 1.0f / divisor;
    if (w == 1.0f) {
        // beta1 = 0 (SPADE's setting): torch.lerp(m, g, 1) is g, so the old m is never read.
        for (size_t i = 0; i < n; i++) {
            const float gi = reciprocal ? g_sum[i] * inverse : g_sum[i] / divisor;
            const float vn = v[i] * b2 + (c2 * gi) * gi;
            m[i] = gi;
            v[i] = vn;
            p[i] = p[i] + (step * gi) / (sqrtf(vn) / bc2_sqrt + eps);
        }
        return;
    }
    // torch.lerp: w < 0.5 ? m + w*(g-m) : g - (g-m)*(1-w)
    const float r = 1.0f - w;
    const int low = w < 0.5f;
    for (size_t i = 0; i < n; i++) {
        const float gi = reciprocal ? g_sum[i] * inverse : g_sum[i] / divisor;
        const float mn = low ? m[i] + w * (gi - m[i]) : gi - (gi - m[i]) * r;
        const float vn = v[i] * b2 + (c2 * gi) * gi;
        m[i] = mn;
        v[i] = vn;
        p[i] = p[i] + (step * mn) / (sqrtf(vn) / bc2_sqrt + eps);
    }
}

SPADE_CLONES
void spade_adam_update(float *restrict p, const float *const *g_parts, size_t nparts, float divisor,
                       float *restrict m, float *restrict v, size_t n, float w, float b2, float c2, float step,
                       float bc2_sqrt, float eps) {
    if (nparts == 1) {
        adam_on(p, g_parts[0], divisor, m, v, n, w, b2, c2, step, bc2_sqrt, eps);
        return;
    }
    float sum[SUM_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += SUM_CHUNK) {
        const size_t len = n - i0 < SUM_CHUNK ? n - i0 : SUM_CHUNK;
        sum_in_order(g_parts, nparts, i0, sum, len);
        adam_on(p + i0, sum, divisor, m + i0, v + i0, len, w, b2, c2, step, bc2_sqrt, eps);
    }
}

SPADE_CLONES
double spade_sum(const float *restrict x, size_t n) {
    // Eight independent double lanes: vectorizes without reassociating any one sum.
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lane[j] += (double)x[i + j];
    double total = 0;
    for (; i < n; i++) total += (double)x[i];
    for (int j = 0; j < 8; j++) total += lane[j];
    return total;
}

SPADE_CLONES
double spade_dot(const float *restrict a, const float *restrict b, size_t n) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lane[j] += (double)a[i + j] * (double)b[i + j];
    double total = 0;
    for (; i < n; i++) total += (double)a[i] * (double)b[i];
    for (int j = 0; j < 8; j++) total += lane[j];
    return total;
}

SPADE_CLONES
void spade_spectral_norm_grad(const float *restrict g, const float *restrict u, const float *restrict v,
                              size_t rows, size_t cols, float sigma, float coef, int accumulate,
                              float *restrict grad_orig) {
    for (size_t r = 0; r < rows; r++) {
        const float ur = u[r] * coef;
        const float *restrict gr = g + r * cols;
        float *restrict out = grad_orig + r * cols;
        if (accumulate) {
            for (size_t c = 0; c < cols; c++) out[c] += gr[c] / sigma - ur * v[c];
        } else {
            for (size_t c = 0; c < cols; c++) out[c] = gr[c] / sigma - ur * v[c];
        }
    }
}

/// 1 for Inf and NaN (exponent bits all ones), else 0.
static inline uint32_t exponent_all_ones(float f) {
    const union { float f; uint32_t u; } bits = {f};
    return (bits.u & 0x7f800000u) == 0x7f800000u;
}

SPADE_CLONES
int spade_all_finite(const float *restrict x, size_t n) {
    // Finiteness from the exponent bits (all ones: Inf or NaN), OR-ed: an integer reduction,
    // so the loop vectorizes.
    uint32_t nonfinite = 0;
    for (size_t i = 0; i < n; i++) nonfinite |= exponent_all_ones(x[i]);
    return nonfinite == 0;
}

SPADE_CLONES
int spade_sum_all_finite(const float *const *parts, size_t nparts, size_t n) {
    // The sums in the order Adam forms them (sum_in_order), in L1-sized chunks, never stored.
    if (nparts == 1) return spade_all_finite(parts[0], n);
    float sum[SUM_CHUNK];
    uint32_t nonfinite = 0;
    for (size_t i0 = 0; i0 < n; i0 += SUM_CHUNK) {
        const size_t len = n - i0 < SUM_CHUNK ? n - i0 : SUM_CHUNK;
        sum_in_order(parts, nparts, i0, sum, len);
        for (size_t i = 0; i < len; i++) nonfinite |= exponent_all_ones(sum[i]);
    }
    return nonfinite == 0;
}

SPADE_CLONES
void spade_sum_into(float *dst, const float *const *parts, size_t nparts, size_t n) {
    // Chunked through L1 so that dst may be one of the parts (each chunk is read before written).
    if (nparts == 1) { if (dst != parts[0]) memmove(dst, parts[0], n * sizeof(float)); return; }
    float sum[SUM_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += SUM_CHUNK) {
        const size_t len = n - i0 < SUM_CHUNK ? n - i0 : SUM_CHUNK;
        sum_in_order(parts, nparts, i0, sum, len);
        memcpy(dst + i0, sum, len * sizeof(float));
    }
}

SPADE_CLONES
void spade_float_to_bfloat16(const float *restrict x, unsigned short *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const union { float f; uint32_t u; } bits = {x[i]};
        const uint32_t nan = (bits.u & 0x7fffffffu) > 0x7f800000u;
        // Round to nearest even on the 16 dropped bits; a NaN keeps its sign and gets a quiet bit
        // (rounding could carry its payload into Inf).
        const uint32_t rounded = bits.u + 0x7fffu + ((bits.u >> 16) & 1u);
        out[i] = (unsigned short)(nan ? (bits.u >> 16) | 0x40u : rounded >> 16);
    }
}

static inline float bfloat16_to_float(unsigned short h) {
    const union { uint32_t u; float f; } bits = {(uint32_t)h << 16};
    return bits.f;
}

SPADE_CLONES
void spade_sum_bfloat16_into(float *restrict dst, const unsigned short *const *parts, size_t nparts, size_t n) {
    const unsigned short *restrict a = parts[0];
    for (size_t i = 0; i < n; i++) dst[i] = bfloat16_to_float(a[i]);
    for (size_t k = 1; k < nparts; k++) {
        const unsigned short *restrict c = parts[k];
        for (size_t i = 0; i < n; i++) dst[i] += bfloat16_to_float(c[i]);
    }
}

SPADE_CLONES
double spade_sum_squared_deviation(const float *restrict x, size_t n, double mean) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) { const double d = (double)x[i + j] - mean; lane[j] += d * d; }
    double total = 0;
    for (; i < n; i++) { const double d = (double)x[i] - mean; total += d * d; }
    for (int j = 0; j < 8; j++) total += lane[j];
    return total;
}

/// Floor division for a possibly negative numerator and a positive divisor.
static inline long floor_div(long a, long b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/// Output size of a convolution along one axis.
static inline long conv_out(size_t n, size_t k, size_t stride, size_t pad) {
    return ((long)n + 2 * (long)pad - (long)k) / (long)stride + 1;
}

/// Output columns [*lo, *hi) whose input column ox * stride + kx - pad lies inside the image.
static inline void in_bounds_columns(size_t kx, size_t w, size_t stride, size_t pad, long ow, long *lo, long *hi) {
    *lo = ((long)pad - (long)kx + (long)stride - 1) / (long)stride;
    if (*lo < 0) *lo = 0;
    *hi = floor_div((long)w - 1 + (long)pad - (long)kx, (long)stride) + 1;
    if (*hi > ow) *hi = ow;
}

SPADE_CLONES
void spade_im2col(const float *restrict x, size_t samples, size_t cin, size_t h, size_t w, size_t k, size_t stride,
                  size_t pad, float *restrict col) {
    const long oh = conv_out(h, k, stride, pad), ow = conv_out(w, k, stride, pad);
    const size_t plane_out = (size_t)(oh * ow), ld = samples * plane_out, plane_in = h * w;
    for (size_t c = 0; c < cin; c++) {
        for (size_t ky = 0; ky < k; ky++) {
            for (size_t kx = 0; kx < k; kx++) {
                float *row = col + ((c * k + ky) * k + kx) * ld;
                long lo, hi;
                in_bounds_columns(kx, w, stride, pad, ow, &lo, &hi);
                for (size_t n = 0; n < samples; n++) {
                    const float *src = x + (n * cin + c) * plane_in;
                    float *dst_sample = row + n * plane_out;
                    for (long oy = 0; oy < oh; oy++) {
                        float *restrict dst = dst_sample + oy * ow;
                        const long iy = oy * (long)stride + (long)ky - (long)pad;
                        if (iy < 0 || iy >= (long)h || lo >= hi) {
                            for (long ox = 0; ox < ow; ox++) dst[ox] = 0.0f;
                            continue;
                        }
                        const float *restrict src_row = src + iy * (long)w + (long)kx - (long)pad;
                        for (long ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                        if (stride == 1) {
                            for (long ox = lo; ox < hi; ox++) dst[ox] = src_row[ox];
                        } else {
                            for (long ox = lo; ox < hi; ox++) dst[ox] = src_row[ox * (long)stride];
                        }
                        for (long ox = hi; ox < ow; ox++) dst[ox] = 0.0f;
                    }
                }
            }
        }
    }
}

SPADE_CLONES
void spade_col2im_add(const float *restrict col, size_t samples, size_t cin, size_t h, size_t w, size_t k,
                      size_t stride, size_t pad, float *restrict dx) {
    const long oh = conv_out(h, k, stride, pad), ow = conv_out(w, k, stride, pad);
    const size_t plane_out = (size_t)(oh * ow), ld = samples * plane_out, plane_in = h * w;
    for (size_t c = 0; c < cin; c++) {
        for (size_t ky = 0; ky < k; ky++) {
            for (size_t kx = 0; kx < k; kx++) {
                const float *row = col + ((c * k + ky) * k + kx) * ld;
                long lo, hi;
                in_bounds_columns(kx, w, stride, pad, ow, &lo, &hi);
                if (lo >= hi) continue;
                for (size_t n = 0; n < samples; n++) {
                    float *dst = dx + (n * cin + c) * plane_in;
                    const float *src_sample = row + n * plane_out;
                    for (long oy = 0; oy < oh; oy++) {
                        const long iy = oy * (long)stride + (long)ky - (long)pad;
                        if (iy < 0 || iy >= (long)h) continue;
                        const float *restrict src = src_sample + oy * ow;
                        float *restrict dst_row = dst + iy * (long)w + (long)kx - (long)pad;
                        if (stride == 1) {
                            for (long ox = lo; ox < hi; ox++) dst_row[ox] += src[ox];
                        } else {
                            for (long ox = lo; ox < hi; ox++) dst_row[ox * (long)stride] += src[ox];
                        }
                    }
                }
            }
        }
    }
}
