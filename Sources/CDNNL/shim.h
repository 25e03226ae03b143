// oneDNN's C API (libdnnl-dev, header in the default include path) and the two OpenMP calls that set
// how many threads oneDNN's OpenMP runtime uses for calls made from the calling thread.
#include <oneapi/dnnl/dnnl.h>

// libgomp (a dependency of libdnnl); declared here because clang's include path has no omp.h.
void omp_set_num_threads(int threads);
int omp_get_max_threads(void);

/// dnnl_sgemm (row-major) with oneDNN's OpenMP threads set to `threads` for the calling thread first
/// (an OpenMP thread-count setting belongs to the thread that sets it).
static inline dnnl_status_t cdnnl_sgemm(int threads, char transa, char transb, dnnl_dim_t m, dnnl_dim_t n,
                                        dnnl_dim_t k, float alpha, const float *a, dnnl_dim_t lda,
                                        const float *b, dnnl_dim_t ldb, float beta, float *c, dnnl_dim_t ldc) {
    if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
    return dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// Sets oneDNN's OpenMP threads for calls (and primitive executions) made from the calling thread.
static inline void cdnnl_set_threads(int threads) {
    if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

// Macros Swift cannot import (expressions), as functions.
static inline dnnl_dim_t cdnnl_runtime_dim(void) { return DNNL_RUNTIME_DIM_VAL; }
static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
