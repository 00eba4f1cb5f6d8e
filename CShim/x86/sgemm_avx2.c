// AVX2 + FMA SGEMM micro-kernel, 6 x 16 register tile (12 ymm accumulators, 2 for B, 1 broadcast),
// with the fused bias/residual/ReLU epilogue. Compiled with a per-function target attribute: the
// package itself is built for baseline x86-64.
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_internal.h"

#define MR 6
#define EM_AVX2 __attribute__((target("avx2,fma")))

EM_AVX2 void em_ukr_avx2_6x16(int kc, const float *Ap, const float *Bp, float *C, long ldc,
                              int load_c, const em_epi *epi) {
    __m256 c[MR][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(Bp), b1 = _mm256_loadu_ps(Bp + 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m256 a = _mm256_broadcast_ss(Ap + i);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
        Ap += MR;
        Bp += 16;
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        float *p = C + (long)i * ldc;
        __m256 x0 = c[i][0], x1 = c[i][1];
        if (load_c) {
            x0 = _mm256_add_ps(_mm256_loadu_ps(p), x0);
            x1 = _mm256_add_ps(_mm256_loadu_ps(p + 8), x1);
        }
        if (epi) {
            if (epi->bias_row) {
                __m256 b = _mm256_broadcast_ss(epi->bias_row + i);
                x0 = _mm256_add_ps(x0, b);
                x1 = _mm256_add_ps(x1, b);
            }
            if (epi->bias_col) {
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(epi->bias_col));
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(epi->bias_col + 8));
            }
            if (epi->res) {
                const float *r = epi->res + (long)i * epi->ldr;
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(r));
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(r + 8));
            }
            if (epi->relu) {
                // max(0, x) returns x when x is NaN, like the scalar `x < 0 ? 0 : x`.
                x0 = _mm256_max_ps(_mm256_setzero_ps(), x0);
                x1 = _mm256_max_ps(_mm256_setzero_ps(), x1);
            }
        }
        _mm256_storeu_ps(p, x0);
        _mm256_storeu_ps(p + 8, x1);
    }
}
#endif
