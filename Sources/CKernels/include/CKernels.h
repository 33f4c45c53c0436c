#ifndef SPADE_CKERNELS_H
#define SPADE_CKERNELS_H
#include <stddef.h>

// Elementwise kernels that Swift does not vectorize on Linux: Float.squareRoot()
// keeps libm's errno path, which blocks LLVM's loop vectorizer. Compiled with
// -fno-math-errno and -ffp-contract=off (no FMA fusion: the same rounding as
// the scalar IEEE operations, as PyTorch's CPU Adam computes them), and cloned for
// AVX-512 / AVX2 / baseline CPUs (chosen at load time).

/// One Adam step (PyTorch single-tensor semantics) over n parameters:
///   m = lerp(m, g, w)                (w = 1 - beta1)
///   v = v * b2 + (c2 * g) * g        (b2 = beta2, c2 = 1 - beta2)
///   p = p + (step * m) / (sqrt(v) / bc2_sqrt + eps)   (step = -lr / (1 - beta1^t))
void spade_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                       float w, float b2, float c2, float step, float bc2_sqrt, float eps);

#endif
