// Processor features from cpuid, masked by what the OS saves on a context switch (XCR0).
#include "CShims.h"
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

unsigned dualign_cpu_features(void) {
    unsigned a, b, c, d, features = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    if (!osxsave) return 0;
    unsigned long long xcr0 = read_xcr0();
    int ymm = (xcr0 & 0x6) == 0x6;           // SSE and AVX state
    int zmm = (xcr0 & 0xe6) == 0xe6;         // plus opmask, ZMM_Hi256, Hi16_ZMM
    if (!ymm || __get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned ebx7 = b, ecx7 = c;
    __cpuid_count(7, 1, a, b, c, d);
    unsigned eax71 = a;
    if ((ebx7 >> 5) & 1) features |= DUALIGN_CPU_AVX2;
    if (fma) features |= DUALIGN_CPU_FMA;
    if (zmm) {
        if ((ebx7 >> 16) & 1) features |= DUALIGN_CPU_AVX512F;
        if ((ebx7 >> 17) & 1) features |= DUALIGN_CPU_AVX512DQ;
        if ((ebx7 >> 30) & 1) features |= DUALIGN_CPU_AVX512BW;
        if ((ebx7 >> 31) & 1) features |= DUALIGN_CPU_AVX512VL;
        if ((ecx7 >> 11) & 1) features |= DUALIGN_CPU_AVX512VNNI;
        if ((eax71 >> 5) & 1) features |= DUALIGN_CPU_AVX512BF16;
    }
    return features;
}

void dualign_cpu_signature(int *family, int *model) {
    unsigned a, b, c, d;
    *family = 0;
    *model = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned base = (a >> 8) & 0xf, ext = (a >> 20) & 0xff, m = (a >> 4) & 0xf, extm = (a >> 16) & 0xf;
    *family = (int)(base == 0xf ? base + ext : base);
    *model = (int)((base == 0x6 || base == 0xf) ? (extm << 4) | m : m);
}
#else
unsigned dualign_cpu_features(void) { return 0; }
void dualign_cpu_signature(int *family, int *model) { *family = 0; *model = 0; }
#endif

long dualign_atomic_fetch_add(long *counter, long value) {
    return __atomic_fetch_add(counter, value, __ATOMIC_RELAXED);
}
