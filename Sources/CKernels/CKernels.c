#include "CKernels.h"
#include <math.h>

#if defined(__x86_64__) && defined(__linux__)
#define SPADE_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define SPADE_CLONES
#endif

SPADE_CLONES
void spade_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                       float w, float b2, float c2, float step, float bc2_sqrt, float eps) {
    // torch.lerp: w < 0.5 ? m + w*(g-m) : g - (g-m)*(1-w); with beta1 = 0, m = g exactly.
    if (w < 0.5f) {
        for (size_t i = 0; i < n; i++) m[i] = m[i] + w * (g[i] - m[i]);
    } else {
        const float r = 1.0f - w;
        for (size_t i = 0; i < n; i++) m[i] = g[i] - (g[i] - m[i]) * r;
    }
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float vn = v[i] * b2 + (c2 * gi) * gi;
        v[i] = vn;
        p[i] = p[i] + (step * m[i]) / (sqrtf(vn) / bc2_sqrt + eps);
    }
}
