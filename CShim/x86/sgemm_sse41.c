// SSE4.1 SGEMM micro-kernel, 6 x 8 register tile (12 xmm accumulators, 2 for B, 1 broadcast; no
// FMA on this level: multiply then add), with the fused bias/residual/ReLU epilogue.
// Per-function target attribute: the package is built for baseline x86-64.
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_internal.h"

#define MR 6
#define EM_SSE41 __attribute__((target("sse4.1")))

EM_SSE41 void em_ukr_sse41_6x8(int kc, const float *Ap, const float *Bp, float *C, long ldc,
                               int load_c, const em_epi *epi) {
    __m128 c[MR][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m128 b0 = _mm_loadu_ps(Bp), b1 = _mm_loadu_ps(Bp + 4);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m128 a = _mm_set1_ps(Ap[i]);
            c[i][0] = _mm_add_ps(c[i][0], _mm_mul_ps(a, b0));
            c[i][1] = _mm_add_ps(c[i][1], _mm_mul_ps(a, b1));
        }
        Ap += MR;
        Bp += 8;
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        float *p = C + (long)i * ldc;
        __m128 x0 = c[i][0], x1 = c[i][1];
        if (load_c) {
            x0 = _mm_add_ps(_mm_loadu_ps(p), x0);
            x1 = _mm_add_ps(_mm_loadu_ps(p + 4), x1);
        }
        if (epi) {
            if (epi->bias_row) {
                __m128 b = _mm_set1_ps(epi->bias_row[i]);
                x0 = _mm_add_ps(x0, b);
                x1 = _mm_add_ps(x1, b);
            }
            if (epi->bias_col) {
                x0 = _mm_add_ps(x0, _mm_loadu_ps(epi->bias_col));
                x1 = _mm_add_ps(x1, _mm_loadu_ps(epi->bias_col + 4));
            }
            if (epi->res) {
                const float *r = epi->res + (long)i * epi->ldr;
                x0 = _mm_add_ps(x0, _mm_loadu_ps(r));
                x1 = _mm_add_ps(x1, _mm_loadu_ps(r + 4));
            }
            if (epi->relu) {
                // max(0, x) returns x when x is NaN, like the scalar `x < 0 ? 0 : x`.
                x0 = _mm_max_ps(_mm_setzero_ps(), x0);
                x1 = _mm_max_ps(_mm_setzero_ps(), x1);
            }
        }
        _mm_storeu_ps(p, x0);
        _mm_storeu_ps(p + 4, x1);
    }
}
#endif
