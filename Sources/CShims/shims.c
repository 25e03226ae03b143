#include "CShims.h"
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
void dualign_flush_denormals(void) { _mm_setcsr(_mm_getcsr() | 0x8040); }
int dualign_flushes_denormals(void) { return (_mm_getcsr() & 0x8040) == 0x8040; }
#else
void dualign_flush_denormals(void) {}
int dualign_flushes_denormals(void) { return 0; }
#endif
