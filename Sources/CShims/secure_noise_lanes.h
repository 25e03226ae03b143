// The secure noise's vector kernel for one vector width, included by secure_noise.c once per width with
// LANES (8 or 16), TARGET (the `target` attribute's features) and SUFFIX (a name suffix) defined.
//
// The same arithmetic as the Swift path, operation for operation (see secure_noise.c's header):
// `ChaCha20.eightBlocks` for the keystream, `FastGaussian.uniforms`, `log`, `squareRoot` and `pairSum` for
// the normals, with the same float constants (as hex, bit for bit what Swift's literals give). Written with
// clang's vector extensions, so one text serves both widths; the rotations are written as shifts and an
// or, which LLVM turns into vpshufb (by 16 and 8) on AVX2 and vprold on AVX-512.

#define PASTE2(a, b) a##_##b
#define PASTE(a, b) PASTE2(a, b)
#define FN(name) PASTE(name, SUFFIX)
#define KERNEL static inline __attribute__((target(TARGET), always_inline))

typedef uint32_t FN(vu) __attribute__((vector_size(4 * LANES)));
typedef int32_t FN(vi) __attribute__((vector_size(4 * LANES)));
typedef float FN(vf) __attribute__((vector_size(4 * LANES)));
#define VU FN(vu)
#define VI FN(vi)
#define VF FN(vf)

// MARK: ChaCha20 (RFC 8439 §2.3), LANES blocks at once

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QUARTER(a, b, c, d) \
    a += b; d ^= a; d = ROTL(d, 16); c += d; b ^= c; b = ROTL(b, 12); \
    a += b; d ^= a; d = ROTL(d, 8); c += d; b ^= c; b = ROTL(b, 7);

/// The blocks of the 16-word `state` at the counters in `counters` (state[12] is not read), lane j of
/// out[i] holding word i of the block at counters[j].
KERNEL void FN(chacha_blocks)(const uint32_t *state, VU counters, VU *out) {     // state: (16); out: (16) × LANES
    VU in[16];
    for (int i = 0; i < 16; i++) in[i] = (VU){0} + state[i];
    in[12] = counters;
    VU x0 = in[0], x1 = in[1], x2 = in[2], x3 = in[3], x4 = in[4], x5 = in[5], x6 = in[6], x7 = in[7];
    VU x8 = in[8], x9 = in[9], x10 = in[10], x11 = in[11], x12 = in[12], x13 = in[13], x14 = in[14], x15 = in[15];
    for (int r = 0; r < 10; r++) {
        QUARTER(x0, x4, x8, x12) QUARTER(x1, x5, x9, x13) QUARTER(x2, x6, x10, x14) QUARTER(x3, x7, x11, x15)
        QUARTER(x0, x5, x10, x15) QUARTER(x1, x6, x11, x12) QUARTER(x2, x7, x8, x13) QUARTER(x3, x4, x9, x14)
    }
    out[0] = x0 + in[0]; out[1] = x1 + in[1]; out[2] = x2 + in[2]; out[3] = x3 + in[3];
    out[4] = x4 + in[4]; out[5] = x5 + in[5]; out[6] = x6 + in[6]; out[7] = x7 + in[7];
    out[8] = x8 + in[8]; out[9] = x9 + in[9]; out[10] = x10 + in[10]; out[11] = x11 + in[11];
    out[12] = x12 + in[12]; out[13] = x13 + in[13]; out[14] = x14 + in[14]; out[15] = x15 + in[15];
}

// MARK: Box–Muller (FastGaussian.swift)

/// ln u for positive normal floats (`FastGaussian.log`).
KERNEL VF FN(ln)(VF u) {
    VI shifted = (VI)u + (NOISE_ONE - NOISE_ROOT_HALF);
    VF exponent = __builtin_convertvector((shifted >> 23) - 127, VF);
    VF m = (VF)((shifted & 0x007fffff) + NOISE_ROOT_HALF);
    VF s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    VF series = s2 * NOISE_ATANH9 + NOISE_ATANH7;
    series = series * s2 + NOISE_ATANH5;
    series = series * s2 + NOISE_ATANH3;
    series = series * s2 + 1.0f;
    return exponent * NOISE_LN2_HIGH + (exponent * NOISE_LN2_LOW + 2.0f * s * series);
}

/// √y for finite y ≥ 0 (`FastGaussian.squareRoot`).
KERNEL VF FN(root)(VF y) {
    VF floored = y + 0x1p-100f;
    VF half = 0.5f * floored;
    VF x = (VF)(NOISE_INVERSE_ROOT_SEED - ((VU)floored >> 1));
    x = x * (1.5f - half * x * x);
    x = x * (1.5f - half * x * x);
    VF s = y * x;
    return s + 0.5f * x * (y - s * s);
}

/// r·cos 2πu + r·sin 2πu (`FastGaussian.pairSum` with `reducedSinCos`).
KERNEL VF FN(pair_sum)(VF r, VF u) {
    VF shifted = 4.0f * u + NOISE_ROUNDING_SHIFT;
    VF k = shifted - NOISE_ROUNDING_SHIFT;
    VU quadrant = (VU)shifted & 3;
    VF x = (u - 0.25f * k) * NOISE_TWO_PI;
    VF x2 = x * x;
    VF sinX = x2 * NOISE_SIN9 + NOISE_SIN7;
    sinX = sinX * x2 + NOISE_SIN5;
    sinX = sinX * x2 + NOISE_SIN3;
    sinX = (sinX * x2 + 1.0f) * x;
    VF cosX = x2 * NOISE_COS8 + NOISE_COS6;
    cosX = cosX * x2 + NOISE_COS4;
    cosX = cosX * x2 + NOISE_COS2;
    cosX = cosX * x2 + 1.0f;
    VF sinTerm = (VF)((VU)(r * sinX) ^ (((quadrant + 1) & 2) << 30));
    VF cosTerm = (VF)((VU)(r * cosX) ^ ((quadrant & 2) << 30));
    return cosTerm + sinTerm;
}

/// k·2⁻²⁴ for k ≤ 2²⁴ (exact).
KERNEL VF FN(unit)(VU k) { return __builtin_convertvector((VI)k, VF) * 0x1p-24f; }

/// (z₁ + z₂ + z₃ + z₄)/2 per lane from keystream words a, b, c (`FastGaussian.opacusNormals`).
KERNEL VF FN(normals)(VU a, VU b, VU c) {
    VU low = (a & 0xff) | (b & 0xff) << 8 | (c & 0xff) << 16;
    VF u1 = FN(unit)((a >> 8) + 1), u2 = FN(unit)(c >> 8), u3 = FN(unit)((b >> 8) + 1), u4 = FN(unit)(low);
    VF r1 = FN(root)(-2.0f * FN(ln)(u1)), r3 = FN(root)(-2.0f * FN(ln)(u3));
    return (FN(pair_sum)(r1, u2) + FN(pair_sum)(r3, u4)) * 0.5f;
}

#undef VU
#undef VI
#undef VF
#undef KERNEL
#undef FN
#undef PASTE
#undef PASTE2
#undef ROTL
#undef QUARTER
