// AVX2 + FMA SGEMM micro-kernel, 6 x 16 register tile (12 ymm accumulators). Compiled with a
// per-function target attribute: the package itself is built for baseline x86-64.
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_internal.h"

__attribute__((target("avx2,fma"))) void em_ukr_avx2_6x16(int kc, const float *Ap, const float *Bp,
                                                           float *C, long ldc, int load_c) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(Bp), b1 = _mm256_loadu_ps(Bp + 8);
        __m256 a;
        a = _mm256_broadcast_ss(Ap + 0);
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(Ap + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(Ap + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(Ap + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(Ap + 4);
        c40 = _mm256_fmadd_ps(a, b0, c40);
        c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(Ap + 5);
        c50 = _mm256_fmadd_ps(a, b0, c50);
        c51 = _mm256_fmadd_ps(a, b1, c51);
        Ap += 6;
        Bp += 16;
    }
#define ST(row, x0, x1)                                                                            \
    do {                                                                                           \
        float *c = C + (long)(row) * ldc;                                                          \
        if (load_c) {                                                                              \
            x0 = _mm256_add_ps(_mm256_loadu_ps(c), x0);                                            \
            x1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), x1);                                        \
        }                                                                                          \
        _mm256_storeu_ps(c, x0);                                                                   \
        _mm256_storeu_ps(c + 8, x1);                                                               \
    } while (0)
    ST(0, c00, c01);
    ST(1, c10, c11);
    ST(2, c20, c21);
    ST(3, c30, c31);
    ST(4, c40, c41);
    ST(5, c50, c51);
#undef ST
}
#endif
