#ifndef DUALIGN_CSHIMS_H
#define DUALIGN_CSHIMS_H
#include <stdint.h>

/// Sets flush-to-zero and denormals-are-zero for the calling thread (x86 MXCSR; no-op elsewhere).
void dualign_flush_denormals(void);
/// Returns 1 when the calling thread flushes denormals to zero, else 0.
int dualign_flushes_denormals(void);

/// Processor features the matrix kernels choose by (bits of `dualign_cpu_features`).
enum {
    DUALIGN_CPU_AVX2 = 1 << 0,
    DUALIGN_CPU_FMA = 1 << 1,
    DUALIGN_CPU_AVX512F = 1 << 2,
    DUALIGN_CPU_AVX512BW = 1 << 3,
    DUALIGN_CPU_AVX512DQ = 1 << 4,
    DUALIGN_CPU_AVX512VL = 1 << 5,
    DUALIGN_CPU_AVX512VNNI = 1 << 6,
    DUALIGN_CPU_AVX512BF16 = 1 << 7,
};
/// The features cpuid reports and the operating system enables (XSAVE state for YMM / ZMM registers);
/// 0 on other architectures.
unsigned dualign_cpu_features(void);
/// The processor family and model (cpuid leaf 1 with the extended fields added); 0, 0 elsewhere.
void dualign_cpu_signature(int *family, int *model);

/// Runs `iterations` rounds of 16 independent fp32 FMAs on `width`-bit vectors (512 or 256; the caller
/// checks the processor has them) and returns the FLOP done; `sink` receives a result so the loop stays.
double dualign_fma_flops(int width, long iterations, float *sink);

/// Rounds `rows` rows of `cols` floats (row pitch `ld`) to bfloat16, round-to-nearest-even, into `dst`
/// (rows × cols, contiguous): vcvtneps2bf16 where the processor has AVX512-BF16, else the same rounding
/// in scalar code.
void dualign_f32_to_bf16(const float *src, long rows, long cols, long ld, unsigned short *dst);

/// Atomically adds `value` to `*counter` and returns the previous value (work counters shared by threads).
long dualign_atomic_fetch_add(long *counter, long value);

/// BLIS, loaded at run time (dlopen of libblis.so.4, local symbols: its BLAS/CBLAS entry points never
/// replace OpenBLAS's). Returns 1 when the library and its entry points are there, else 0.
int dualign_blis_load(void);
/// BLIS's architecture name (e.g. "skx", "zen3"), or "" before a successful load.
const char *dualign_blis_arch(void);
/// Sets the threads BLIS uses for the calls that follow.
void dualign_blis_set_threads(int threads);
/// C (m, n) = alpha · op(A) · op(B) + beta · C with explicit row and column strides (bli_sgemm).
void dualign_blis_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long rowStrideA, long colStrideA,
                        const float *b, long rowStrideB, long colStrideB,
                        float beta, float *c, long rowStrideC, long colStrideC);

/// The secure DP-SGD noise's kernels (secure_noise.c), the same arithmetic as the Swift path of
/// `ChaCha20Random` and `FastGaussian` (bit-identical output). `width` is 256 (AVX2 and FMA) or 512
/// (AVX-512F): the caller checks the processor has the features (`dualign_cpu_features`). `state` is
/// ChaCha20's 16-word input (RFC 8439 §2.3: constants, key, block counter c = state[12], nonce); it is not
/// modified, and the caller keeps the counter from wrapping (c + the blocks used ≤ 2³²).

/// Adds scale · (z₁ + z₂ + z₃ + z₄)/2 to each of values[0 ..< 128 · refills] (Opacus' secure Gaussian),
/// from the keystream of blocks c … c + 24 · refills − 1: refill r is blocks c + 24r … c + 24r + 23 as
/// three eight-block groups of 16 eight-lane word vectors, and its value 8s + j takes lane j of vectors
/// 3s, 3s + 1, 3s + 2 (`FastGaussian.addNoise`'s whole refills).
void dualign_secure_noise_add(int width, const uint32_t *state, long refills, float scale,
                              float *values);                                   // state: (16); values: (128 · refills)
/// The keystream blocks c … c + 8 · groups − 1 in `ChaCha20.nextBlocks`' lane order: out[128g + 8i + j] is
/// word i of block c + 8g + j.
void dualign_chacha20_blocks(int width, const uint32_t *state, long groups,
                             uint32_t *out);                                    // state: (16); out: (groups, 16, 8)
/// `FastGaussian.opacusNormals` of each set of three eight-lane word vectors: out[8s + j] from lane j of
/// words[24s …], words[24s + 8 …], words[24s + 16 …].
void dualign_opacus_normals(int width, const uint32_t *words, long sets,
                            float *out);                                        // words: (sets, 3, 8); out: (sets, 8)
#endif
