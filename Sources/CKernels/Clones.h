#ifndef SPADE_CKERNELS_CLONES_H
#define SPADE_CKERNELS_CLONES_H
// Hot loops are compiled three times, for AVX-512, AVX2 and baseline x86-64; the loader
// picks the best one for the CPU (GCC/Clang function multi-versioning).
#if defined(__x86_64__) && defined(__linux__)
#define SPADE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SPADE_CLONES
#endif
#endif
