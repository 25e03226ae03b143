// The processor's fp32 multiply-add peak, measured: a loop of independent vector FMAs (16 chains,
// more than latency × ports on any current x86 core) on the calling thread.
#include "CShims.h"
#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static float fma_loop_512(long iterations) {
    __m512 acc[16];
    __m512 m = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iterations; it++)
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, add);
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma")))
static float fma_loop_256(long iterations) {
    __m256 acc[16];
    __m256 m = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iterations; it++)
        for (int i = 0; i < 16; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, add);
    __m256 s = acc[0];
    for (int i = 1; i < 16; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

double dualign_fma_flops(int width, long iterations, float *sink) {
    if (width == 512) { *sink = fma_loop_512(iterations); return 2.0 * 16 * 16 * (double)iterations; }
    if (width == 256) { *sink = fma_loop_256(iterations); return 2.0 * 8 * 16 * (double)iterations; }
    *sink = 0;
    return 0;
}
#else
double dualign_fma_flops(int width, long iterations, float *sink) { *sink = 0; return 0; }
#endif
