// BLIS through dlopen with RTLD_LOCAL: libblis exports the same BLAS and CBLAS symbols as OpenBLAS, so
// linking both would let the link order decide which library a `cblas_sgemm` call reaches. Loaded
// locally, only its own `bli_` entry points are used, and OpenBLAS keeps every BLAS name.
#include "CShims.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

typedef long dim_t;
typedef long inc_t;
typedef int trans_t;  // BLIS_NO_TRANSPOSE = 0, BLIS_TRANSPOSE = 8 (blis.h: BLIS_TRANS_BIT)

typedef void (*sgemm_fn)(trans_t, trans_t, dim_t, dim_t, dim_t, const float *, const float *, inc_t, inc_t,
                         const float *, inc_t, inc_t, const float *, float *, inc_t, inc_t);
typedef void (*set_threads_fn)(dim_t);
typedef int (*arch_query_fn)(void);
typedef const char *(*arch_string_fn)(int);

static sgemm_fn blis_sgemm;
static set_threads_fn blis_set_threads;
static const char *blis_arch = "";
static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    const char *names[] = {"libblis.so.4", "libblis.so"};
    void *h = NULL;
    for (int i = 0; i < 2 && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    blis_sgemm = (sgemm_fn)dlsym(h, "bli_sgemm");
    blis_set_threads = (set_threads_fn)dlsym(h, "bli_thread_set_num_threads");
    arch_query_fn query = (arch_query_fn)dlsym(h, "bli_arch_query_id");
    arch_string_fn name = (arch_string_fn)dlsym(h, "bli_arch_string");
    if (!blis_sgemm || !blis_set_threads || !query || !name) return;
    blis_arch = name(query());
    loaded = 1;
}

int dualign_blis_load(void) {
    pthread_once(&once, load);
    return loaded;
}

const char *dualign_blis_arch(void) { return loaded ? blis_arch : ""; }

void dualign_blis_set_threads(int threads) {
    if (loaded) blis_set_threads(threads);
}

void dualign_blis_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long rsa, long csa, const float *b, long rsb, long csb,
                        float beta, float *c, long rsc, long csc) {
    blis_sgemm(transA ? 8 : 0, transB ? 8 : 0, m, n, k, &alpha, a, rsa, csa, b, rsb, csb, &beta, c, rsc, csc);
}
