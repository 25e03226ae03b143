// cblas.h from the OpenBLAS development package (pkg-config "openblas" adds its include path).
#include <cblas.h>
