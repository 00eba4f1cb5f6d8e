// AVX2 row of the uint8 RoIAlign (em_qroi_row_fn): 8 channels per step, the generic row's
// operations in the generic row's order (vcvtdq2ps, vmulps, vaddps; no FMA), so the result is
// identical to the C reference.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_AVX2 __attribute__((target("avx2")))

EM_AVX2 static inline __m256 deq8(const uint8_t *p, __m256i vz, __m256 vs) {
    __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz)), vs);
}

EM_AVX2 void em_qroi_row_avx2(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3,
                              const uint8_t *f4, float w1, float w2, float w3, float w4,
                              int32_t z, float s, int n, float *acc) {
    const __m256i vz = _mm256_set1_epi32(z);
    const __m256 vs = _mm256_set1_ps(s), a1 = _mm256_set1_ps(w1), a2 = _mm256_set1_ps(w2),
                 a3 = _mm256_set1_ps(w3), a4 = _mm256_set1_ps(w4);
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 t = _mm256_add_ps(_mm256_mul_ps(a1, deq8(f1 + c, vz, vs)),
                                 _mm256_mul_ps(a2, deq8(f2 + c, vz, vs)));
        t = _mm256_add_ps(t, _mm256_mul_ps(a3, deq8(f3 + c, vz, vs)));
        t = _mm256_add_ps(t, _mm256_mul_ps(a4, deq8(f4 + c, vz, vs)));
        _mm256_storeu_ps(acc + c, _mm256_add_ps(_mm256_loadu_ps(acc + c), t));
    }
    if (c < n)
        em_qroi_row_generic(f1 + c, f2 + c, f3 + c, f4 + c, w1, w2, w3, w4, z, s, n - c, acc + c);
}
#endif
