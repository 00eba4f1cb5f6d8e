// AVX-512 SGEMM micro-kernel, 14 x 32 register tile (28 zmm accumulators, 2 for B, 1 broadcast),
// with the fused bias/residual/ReLU epilogue. Per-function target attribute: the package is
// built for baseline x86-64.
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_internal.h"

#define MR 14
#define EM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

EM_AVX512 void em_ukr_avx512_14x32(int kc, const float *Ap, const float *Bp, float *C, long ldc,
                                    int load_c, const em_epi *epi) {
    __m512 c[MR][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(Bp), b1 = _mm512_loadu_ps(Bp + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(Ap[i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
        Ap += MR;
        Bp += 32;
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        float *p = C + (long)i * ldc;
        __m512 x0 = c[i][0], x1 = c[i][1];
        if (load_c) {
            x0 = _mm512_add_ps(_mm512_loadu_ps(p), x0);
            x1 = _mm512_add_ps(_mm512_loadu_ps(p + 16), x1);
        }
        if (epi) {
            if (epi->bias_row) {
                __m512 b = _mm512_set1_ps(epi->bias_row[i]);
                x0 = _mm512_add_ps(x0, b);
                x1 = _mm512_add_ps(x1, b);
            }
            if (epi->bias_col) {
                x0 = _mm512_add_ps(x0, _mm512_loadu_ps(epi->bias_col));
                x1 = _mm512_add_ps(x1, _mm512_loadu_ps(epi->bias_col + 16));
            }
            if (epi->res) {
                const float *r = epi->res + (long)i * epi->ldr;
                x0 = _mm512_add_ps(x0, _mm512_loadu_ps(r));
                x1 = _mm512_add_ps(x1, _mm512_loadu_ps(r + 16));
            }
            if (epi->relu) {
                x0 = _mm512_max_ps(x0, _mm512_setzero_ps());
                x1 = _mm512_max_ps(x1, _mm512_setzero_ps());
            }
        }
        _mm512_storeu_ps(p, x0);
        _mm512_storeu_ps(p + 16, x1);
    }
}
#endif
