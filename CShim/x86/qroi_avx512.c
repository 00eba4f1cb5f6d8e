// AVX-512 row of the uint8 RoIAlign (em_qroi_row_fn): 16 channels per step (masked tail, so
// every channel goes through the same instructions), the generic row's operations in the generic
// row's order (no FMA), so the result is identical to the C reference.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

EM_AVX512 static inline __m512 deq16(const uint8_t *p, __mmask16 k, __m512i vz, __m512 vs) {
    __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, p));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, vz)), vs);
}

EM_AVX512 void em_qroi_row_avx512(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3,
                                  const uint8_t *f4, float w1, float w2, float w3, float w4,
                                  int32_t z, float s, int n, float *acc) {
    const __m512i vz = _mm512_set1_epi32(z);
    const __m512 vs = _mm512_set1_ps(s), a1 = _mm512_set1_ps(w1), a2 = _mm512_set1_ps(w2),
                 a3 = _mm512_set1_ps(w3), a4 = _mm512_set1_ps(w4);
    for (int c = 0; c < n; c += 16) {
        __mmask16 k = n - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - c)) - 1);
        __m512 t = _mm512_add_ps(_mm512_mul_ps(a1, deq16(f1 + c, k, vz, vs)),
                                 _mm512_mul_ps(a2, deq16(f2 + c, k, vz, vs)));
        t = _mm512_add_ps(t, _mm512_mul_ps(a3, deq16(f3 + c, k, vz, vs)));
        t = _mm512_add_ps(t, _mm512_mul_ps(a4, deq16(f4 + c, k, vz, vs)));
        _mm512_mask_storeu_ps(acc + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, acc + c), t));
    }
}
#endif
