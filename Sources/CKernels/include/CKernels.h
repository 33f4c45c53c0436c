#ifndef SPADE_CKERNELS_H
#define SPADE_CKERNELS_H
#include <stddef.h>

// Loops that Swift does not vectorize well on Linux, in C. Compiled with
// -fno-math-errno (Float.squareRoot() keeps libm's errno path, which blocks LLVM's
// loop vectorizer) and -ffp-contract=off (no FMA fusion: the same rounding as the
// scalar IEEE operations, as PyTorch's CPU Adam computes them), and cloned for
// AVX-512 / AVX2 / baseline CPUs (chosen at load time).

/// One Adam step (PyTorch single-tensor semantics) over n parameters, on the data-parallel
/// average of the gradient: g = (((g_parts[0] + g_parts[1]) + g_parts[2]) + ...) / divisor,
/// element by element (nparts = 1: an already summed gradient), bit for bit that division:
///   m = lerp(m, g, w)                (w = 1 - beta1)
///   v = v * b2 + (c2 * g) * g        (b2 = beta2, c2 = 1 - beta2)
///   p = p + (step * m) / (sqrt(v) / bc2_sqrt + eps)   (step = -lr / (1 - beta1^t))
void spade_adam_update(float *p, const float *const *g_parts, size_t nparts, float divisor, float *m, float *v,
                       size_t n, float w, float b2, float c2, float step, float bc2_sqrt, float eps);

/// Sum of n floats, accumulated in double (bias gradients over whole feature maps).
double spade_sum(const float *x, size_t n);
/// Sum of (x - mean)^2 over n floats, in double (batch-norm variance).
double spade_sum_squared_deviation(const float *x, size_t n, double mean);
/// Dot product of n floats, accumulated in double.
double spade_dot(const float *a, const float *b, size_t n);
/// 1 if all n floats are finite, 0 if any is NaN or infinite.
int spade_all_finite(const float *x, size_t n);
/// 1 if every ((parts[0][i] + parts[1][i]) + parts[2][i]) + ... over nparts >= 1 arrays (the
/// replicas' gradients, in rank order, summed as spade_adam_update sums them) is finite.
int spade_sum_all_finite(const float *const *parts, size_t nparts, size_t n);
/// dst[i] = ((parts[0][i] + parts[1][i]) + parts[2][i]) + ... (the same order); dst may be a part.
void spade_sum_into(float *dst, const float *const *parts, size_t nparts, size_t n);
/// Gradients on the wire between nodes (`gradient_dtype: bfloat16`): out[i] = x[i] rounded to
/// bfloat16 (nearest, ties to even; NaN stays NaN, Inf stays Inf), as its upper 16 bits.
void spade_float_to_bfloat16(const float *x, unsigned short *out, size_t n);
/// dst[i] = ((parts[0][i] + parts[1][i]) + parts[2][i]) + ... of bfloat16 parts, summed in float32.
void spade_sum_bfloat16_into(float *dst, const unsigned short *const *parts, size_t nparts, size_t n);
/// Spectral norm's direct and sigma terms: grad_orig[r][c] (+)= g[r][c] / sigma - (u[r] * coef) * v[c]
/// (accumulated if accumulate != 0, else overwritten).
void spade_spectral_norm_grad(const float *g, const float *u, const float *v, size_t rows, size_t cols,
                              float sigma, float coef, int accumulate, float *grad_orig);

/// Unfolds `samples` NCHW samples (cin, h, w) for a k x k convolution with `stride` and `pad`
/// into col[cin * k * k][samples * outH * outW] (row (c * k + ky) * k + kx, column
/// s * outH * outW + oy * outW + ox; zero where the tap falls outside the image).
void spade_im2col(const float *x, size_t samples, size_t cin, size_t h, size_t w, size_t k, size_t stride,
                  size_t pad, float *col);
/// The adjoint of spade_im2col: adds every column entry into its input pixel of dx.
void spade_col2im_add(const float *col, size_t samples, size_t cin, size_t h, size_t w, size_t k, size_t stride,
                      size_t pad, float *dx);

// Winograd F(2x2, 3x3) transforms (Winograd.c): 3x3 stride-1 pad-1 convolutions as 16
// GEMMs over channels. The tile transforms cover one sample's tile rows ty0 <= ty < ty1
// (th = ceil(h/2), tw = ceil(w/2)): T = (ty1 - ty0) * tw tiles, t = (ty - ty0) * tw + tx;
// V, M, dM, dV are [16][channels][T], U and dU [16][cout][cin]. Images are one sample's
// (channels, h, w). `scratch` must hold spade_winograd_scratch(h, w) floats.

static inline size_t spade_winograd_scratch(size_t h, size_t w) {
    (void)h;
    const size_t tw = (w + 1) / 2;
    return 4 * 2 * (tw + 1) + 16 * tw;   // the largest need: spade_winograd_input_grad
}

/// U = G g G^T for weights g[cout][cin][3][3].
void spade_winograd_filter(const float *g, float *u, size_t cout, size_t cin);
/// dg[cout][cin][3][3] += G^T dU G (accumulate != 0), or = (accumulate == 0).
void spade_winograd_filter_grad(const float *du, float *dg, size_t cout, size_t cin, int accumulate);
/// V = B^T d B for the block's 4x4 input tiles of x.
void spade_winograd_input(const float *x, float *v, size_t channels, size_t h, size_t w, size_t ty0, size_t ty1,
                          float *scratch);
/// The block's output rows of y = A^T M A + bias (bias may be NULL).
void spade_winograd_output(const float *m, const float *bias, float *y, size_t channels, size_t h, size_t w,
                           size_t ty0, size_t ty1, float *scratch);
/// dM = A dY A^T for the block's 2x2 output tiles of dy.
void spade_winograd_output_grad(const float *dy, float *dm, size_t channels, size_t h, size_t w, size_t ty0,
                                size_t ty1, float *scratch);
/// dx += B dV B^T, the block's tiles folded back onto the image.
void spade_winograd_input_grad(const float *dv, float *dx, size_t channels, size_t h, size_t w, size_t ty0,
                               size_t ty1, float *scratch);

#endif
