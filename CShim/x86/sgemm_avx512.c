// AVX-512 SGEMM micro-kernel, 14 x 32 register tile (28 zmm accumulators, 2 for B, 1 broadcast).
// Per-function target attribute: the package is built for baseline x86-64.
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_internal.h"

#define EM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

EM_AVX512 void em_ukr_avx512_14x32(int kc, const float *Ap, const float *Bp, float *C, long ldc,
                                    int load_c) {
    __m512 c[14][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < 14; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(Bp), b1 = _mm512_loadu_ps(Bp + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < 14; i++) {
            __m512 a = _mm512_set1_ps(Ap[i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
        Ap += 14;
        Bp += 32;
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < 14; i++) {
        float *p = C + (long)i * ldc;
        __m512 x0 = c[i][0], x1 = c[i][1];
        if (load_c) {
            x0 = _mm512_add_ps(_mm512_loadu_ps(p), x0);
            x1 = _mm512_add_ps(_mm512_loadu_ps(p + 16), x1);
        }
        _mm512_storeu_ps(p, x0);
        _mm512_storeu_ps(p + 16, x1);
    }
}
#endif
