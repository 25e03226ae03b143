// The secure DP-SGD noise's hot loop in AVX2 and AVX-512, chosen at run time: the ChaCha20 keystream
// (RFC 8439 block function) and Opacus' secure Gaussian (z₁ + z₂ + z₃ + z₄)/2 added as scale·z to the values.
//
// The package is built for baseline x86-64 (SSE2), where the Swift path (`ChaCha20Random`, `FastGaussian`)
// runs its eight-lane vectors as two SSE registers and rotates in three instructions. These functions carry
// `target` attributes, so only they use AVX2 / AVX-512 and the rest of the package stays baseline; the
// Swift side (`FastGaussian.Kernel`) calls them only on processors that have the features
// (`dualign_cpu_features`), and otherwise keeps its own path.
//
// They compute exactly what the Swift path computes, not merely the same distribution:
// - the keystream words in the generator's lane order (word i of blocks c … c + 7 in one eight-lane vector,
//   16 vectors per group of eight blocks, 3 groups = 24 blocks per refill);
// - value 8s + j of a refill from lane j of the refill's vectors 3s, 3s + 1, 3s + 2 (16 sets of 8 values);
// - the same uniforms and the same float operations in the same order, with FMA contraction off (below), so
//   the normals are bit-identical to `FastGaussian.opacusNormals` (tested on 1 M values).
// AVX-512 computes two refills at once: lanes 0–7 of its 16-lane vectors are blocks c + 8p + j of the first
// refill and lanes 8–15 blocks c + 24 + 8p + j of the second, so each 16-lane vector is two of the
// generator's eight-lane vectors side by side and the Box–Muller needs no shuffles. The Box–Muller runs on
// two sets of values at once (16 or 32 lanes, two registers per variable): the chains of ln, √ and the
// polynomials are long, and the second set gives the out-of-order core independent work (6.8 instead of
// 7.7 ns per value with AVX2, 4.3 instead of 4.9 with AVX-512).
//
// Cost, CPU time of one thread on Zen 4 (EPYC 9004, AVX-512 on 256-bit units) under a second job's load,
// 2026-12-07: keystream 0.31 ns per byte with AVX2, 0.19 with AVX-512 (vprold for the rotations; the Swift
// path 0.63); the whole noise 6.8 ns per value with AVX2, 4.3 with AVX-512, against 14.6 for the Swift path.

#include "CShims.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF
#pragma clang diagnostic ignored "-Wpsabi"

#if defined(__x86_64__)

// The float constants of FastGaussian.swift, bit for bit.
#define NOISE_ONE 0x3f800000                       // 1.0
#define NOISE_ROOT_HALF 0x3f3504f3                 // √½ rounded down
#define NOISE_LN2_HIGH 0x1.63p-1f                  // 0.693359375
#define NOISE_LN2_LOW -0x1.bd0106p-13f             // -2.1219444e-4
#define NOISE_ATANH3 0x1.555556p-2f                // 1/3, 1/5, 1/7, 1/9
#define NOISE_ATANH5 0x1.99999ap-3f
#define NOISE_ATANH7 0x1.24924ap-3f
#define NOISE_ATANH9 0x1.c71c72p-4f
#define NOISE_INVERSE_ROOT_SEED 0x5f3759dfu
#define NOISE_ROUNDING_SHIFT 12582912.0f           // 1.5·2²³
#define NOISE_TWO_PI 0x1.921fb4p+2f                // 2·Float.pi (Swift's π is rounded toward zero)
#define NOISE_SIN3 -0x1.555556p-3f                 // -1/3!, 1/5!, -1/7!, 1/9!
#define NOISE_SIN5 0x1.111112p-7f
#define NOISE_SIN7 -0x1.a01a02p-13f
#define NOISE_SIN9 0x1.71de3ap-19f
#define NOISE_COS2 -0x1p-1f                        // -1/2!, 1/4!, -1/6!, 1/8!
#define NOISE_COS4 0x1.555556p-5f
#define NOISE_COS6 -0x1.6c16c2p-10f
#define NOISE_COS8 0x1.a01a02p-16f

#define LANES 8
#define TARGET "avx2,fma"
#define SUFFIX 256
#include "secure_noise_lanes.h"
#undef LANES
#undef TARGET
#undef SUFFIX

#define LANES 16
#define TARGET "avx512f,avx2,fma"
#define SUFFIX 512
#include "secure_noise_lanes.h"
#undef LANES
#undef TARGET
#undef SUFFIX

// The Box–Muller again with twice the lanes (two sets of values per call, split into two registers each):
// independent work for the out-of-order core to overlap the long dependency chains of ln, √ and the
// polynomials.
#define LANES 16
#define TARGET "avx2,fma"
#define SUFFIX 256x2
#include "secure_noise_lanes.h"
#undef LANES
#undef TARGET
#undef SUFFIX

#define LANES 32
#define TARGET "avx512f,avx2,fma"
#define SUFFIX 512x2
#include "secure_noise_lanes.h"
#undef LANES
#undef TARGET
#undef SUFFIX

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

static const vu_256 iota8 = {0, 1, 2, 3, 4, 5, 6, 7};

AVX2 static vf_256 load8(const float *p) { vf_256 v; memcpy(&v, p, sizeof v); return v; }
AVX2 static void store8(float *p, vf_256 v) { memcpy(p, &v, sizeof v); }

/// One refill: blocks c … c + 23 (c = `counter`), 128 values.
AVX2 static void refill_256(const uint32_t *state, uint32_t counter, float scale, float *values) {  // values: (128)
    vu_256 words[48];                                                             // (3 groups · 16) × 8 lanes
    for (int g = 0; g < 3; g++) chacha_blocks_256(state, counter + 8 * (uint32_t)g + iota8, words + 16 * g);
    for (int s = 0; s < 8; s++) {
#define CAT2(x, y) __builtin_shufflevector(x, y, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        vf_256x2 z = normals_256x2(CAT2(words[3 * s], words[3 * s + 24]), CAT2(words[3 * s + 1], words[3 * s + 25]),
                                   CAT2(words[3 * s + 2], words[3 * s + 26]));
        vf_256 first = __builtin_shufflevector(z, z, 0, 1, 2, 3, 4, 5, 6, 7);
        vf_256 second = __builtin_shufflevector(z, z, 8, 9, 10, 11, 12, 13, 14, 15);
        store8(values + 8 * s, load8(values + 8 * s) + scale * first);
        store8(values + 64 + 8 * s, load8(values + 64 + 8 * s) + scale * second);
    }
}

/// Two refills: blocks c … c + 47, 256 values (see the file header for the lanes).
AVX512 static void two_refills_512(const uint32_t *state, uint32_t counter, float scale, float *values) {  // values: (256)
    static const vu_512 lanes = {0, 1, 2, 3, 4, 5, 6, 7, 24, 25, 26, 27, 28, 29, 30, 31};
    vu_512 words[48];                                                             // (3 passes · 16) × 16 lanes
    for (int p = 0; p < 3; p++) chacha_blocks_512(state, counter + 8 * (uint32_t)p + lanes, words + 16 * p);
    for (int s = 0; s < 8; s++) {
#define CAT4(x, y) __builtin_shufflevector(x, y, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, \
                                           16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31)
        vf_512x2 z = normals_512x2(CAT4(words[3 * s], words[3 * s + 24]), CAT4(words[3 * s + 1], words[3 * s + 25]),
                                   CAT4(words[3 * s + 2], words[3 * s + 26])) * scale;
        for (int q = 0; q < 4; q++) {
            float *v = values + 8 * s + 128 * (q & 1) + 64 * (q >> 1);   // q: (refill 0 or 1) × (set s or s + 8)
            vf_256 part;
            memcpy(&part, (const char *)&z + 32 * q, 32);
            store8(v, load8(v) + part);
        }
    }
}

void dualign_secure_noise_add(int width, const uint32_t *state, long refills, float scale, float *values) {
    long r = 0;
    if (width == 512)
        for (; r + 2 <= refills; r += 2) two_refills_512(state, state[12] + 24 * (uint32_t)r, scale, values + 128 * r);
    for (; r < refills; r++) refill_256(state, state[12] + 24 * (uint32_t)r, scale, values + 128 * r);
}

AVX2 static void blocks_256(const uint32_t *state, uint32_t counter, uint32_t *out) {   // out: (16) × 8
    vu_256 words[16];
    chacha_blocks_256(state, counter + iota8, words);
    memcpy(out, words, sizeof words);
}

AVX512 static void blocks_512(const uint32_t *state, uint32_t counter, uint32_t *out) {  // out: (2 · 16) × 8
    static const vu_512 lanes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    vu_512 words[16];
    chacha_blocks_512(state, counter + lanes, words);
    for (int i = 0; i < 16; i++) {
        memcpy(out + 8 * i, &words[i], 32);
        memcpy(out + 128 + 8 * i, (const char *)&words[i] + 32, 32);
    }
}

void dualign_chacha20_blocks(int width, const uint32_t *state, long groups, uint32_t *out) {
    long g = 0;
    if (width == 512)
        for (; g + 2 <= groups; g += 2) blocks_512(state, state[12] + 8 * (uint32_t)g, out + 128 * g);
    for (; g < groups; g++) blocks_256(state, state[12] + 8 * (uint32_t)g, out + 128 * g);
}

/// `count` ≤ 2 (AVX2) or ≤ 4 (AVX-512) sets of three eight-lane word vectors through the Box–Muller the noise
/// loops use (`normals_256x2`, `normals_512x2`), set t in lanes 8t … 8t + 7.
AVX2 static void normals_sets_256(const uint32_t *words, long count, float *out) {  // words: (count, 3, 8); out: (count, 8)
    vu_256x2 w[3] = {{0}, {0}, {0}};
    for (int k = 0; k < 3; k++)
        for (long t = 0; t < count; t++) memcpy((char *)&w[k] + 32 * t, words + 24 * t + 8 * k, 32);
    vf_256x2 z = normals_256x2(w[0], w[1], w[2]);
    memcpy(out, &z, 32 * (size_t)count);
}

AVX512 static void normals_sets_512(const uint32_t *words, long count, float *out) {  // words: (count, 3, 8); out: (count, 8)
    vu_512x2 w[3] = {{0}, {0}, {0}};
    for (int k = 0; k < 3; k++)
        for (long t = 0; t < count; t++) memcpy((char *)&w[k] + 32 * t, words + 24 * t + 8 * k, 32);
    vf_512x2 z = normals_512x2(w[0], w[1], w[2]);
    memcpy(out, &z, 32 * (size_t)count);
}

void dualign_opacus_normals(int width, const uint32_t *words, long sets, float *out) {
    long chunk = width == 512 ? 4 : 2;
    for (long s = 0; s < sets; s += chunk) {
        long count = sets - s < chunk ? sets - s : chunk;
        if (width == 512) normals_sets_512(words + 24 * s, count, out + 8 * s);
        else normals_sets_256(words + 24 * s, count, out + 8 * s);
    }
}

#else

void dualign_secure_noise_add(int width, const uint32_t *state, long refills, float scale, float *values) {}
void dualign_chacha20_blocks(int width, const uint32_t *state, long groups, uint32_t *out) {}
void dualign_opacus_normals(int width, const uint32_t *words, long sets, float *out) {}

#endif
