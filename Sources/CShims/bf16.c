// fp32 → bfloat16 rounding (round to nearest even; NaN stays NaN) for the bf16 matrix products.
#include "CShims.h"
#include <string.h>

static unsigned short round_scalar(float x) {
    unsigned bits;
    memcpy(&bits, &x, 4);
    if ((bits & 0x7fffffff) > 0x7f800000) return (unsigned short)((bits >> 16) | 0x40);   // quiet NaN
    bits += 0x7fff + ((bits >> 16) & 1);
    return (unsigned short)(bits >> 16);
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f,avx512bf16,avx512vl")))
static void convert_avx512bf16(const float *src, long rows, long cols, long ld, unsigned short *dst) {
    for (long r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        unsigned short *d = dst + r * cols;
        long c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(s + c));
            _mm256_storeu_si256((__m256i *)(d + c), (__m256i)v);
        }
        for (; c < cols; c++) d[c] = round_scalar(s[c]);
    }
}
#endif

void dualign_f32_to_bf16(const float *src, long rows, long cols, long ld, unsigned short *dst) {
#if defined(__x86_64__)
    static int has_bf16 = -1;   // cpuid traps to the hypervisor in a VM: ask once (a benign race)
    if (has_bf16 < 0) has_bf16 = (dualign_cpu_features() & DUALIGN_CPU_AVX512BF16) != 0;
    if (has_bf16) {
        convert_avx512bf16(src, rows, cols, ld, dst);
        return;
    }
#endif
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) dst[r * cols + c] = round_scalar(src[r * ld + c]);
}
