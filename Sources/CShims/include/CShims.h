#ifndef DUALIGN_CSHIMS_H
#define DUALIGN_CSHIMS_H
/// Sets flush-to-zero and denormals-are-zero for the calling thread (x86 MXCSR; no-op elsewhere).
void dualign_flush_denormals(void);
/// Returns 1 when the calling thread flushes denormals to zero, else 0.
int dualign_flushes_denormals(void);
#endif
