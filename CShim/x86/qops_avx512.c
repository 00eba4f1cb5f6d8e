// AVX-512 element-wise int8 rows (the FPN's rescaled adds, quantisation, dequantisation): the
// SSE4.1 rows' instruction sequence on 16 lanes, with a masked tail so that every element goes
// through the same instructions (no scalar remainder). Same bytes as em_qadd_row_generic,
// em_qquant_row_generic and em_qdequant_row_generic: clampf to +-2^24 with vmaxps/vminps (a NaN
// goes to the lower bound, as in em_q_finish), vcvtps2dq (round half even, rintf in the default
// mode), + zero point, integer clamp, narrow.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_AVX512E __attribute__((target("avx512f,avx512bw,avx512vl")))

static inline __mmask16 tail16(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

// The rescaled add's pieces, shared by the plain row and the upsampling one: the operand's
// (float)(q - z) * mult, and the finish (clampf of pa + pb, vcvtps2dq, + z_out, clamp to
// [lo, 255], narrow, masked store).
typedef struct {
    __m512 flo, fhi;
    __m512i vz, vlo, vhi;
} qadd_fin;

EM_AVX512E static inline qadd_fin qadd_fin_set(int32_t z_out, int32_t lo) {
    qadd_fin f = {_mm512_set1_ps(-EM_QF_LIM), _mm512_set1_ps(EM_QF_LIM), _mm512_set1_epi32(z_out),
                  _mm512_set1_epi32(lo), _mm512_set1_epi32(255)};
    return f;
}

EM_AVX512E static inline __m512 qadd_deq16(const uint8_t *p, __mmask16 k, __m512i z, __m512 m) {
    __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, p));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, z)), m);
}

EM_AVX512E static inline void qadd_finish16(__m512 pa, __m512 pb, const qadd_fin *f, __mmask16 k, uint8_t *out) {
    __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(pa, pb), f->flo), f->fhi);
    __m512i y = _mm512_add_epi32(_mm512_cvtps_epi32(v), f->vz);
    y = _mm512_min_epi32(_mm512_max_epi32(y, f->vlo), f->vhi);
    _mm_mask_storeu_epi8(out, k, _mm512_cvtepi32_epi8(y));
}

EM_AVX512E void em_qadd_row_avx512(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b,
                                   int32_t z_b, float b_mult, int n, int32_t z_out, int32_t lo,
                                   uint8_t *out) {
    const __m512 am = _mm512_set1_ps(a_mult), bm = _mm512_set1_ps(b_mult);
    const __m512i za = _mm512_set1_epi32(z_a), zb = _mm512_set1_epi32(z_b);
    const qadd_fin f = qadd_fin_set(z_out, lo);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        qadd_finish16(qadd_deq16(a + i, k, za, am), qadd_deq16(b + i, k, zb, bm), &f, k, out + i);
    }
}

// em_qadd_row_avx512 on a row whose b operand is upsampled twice (nearest): out[i] uses b[i / 2]
// (FPN's top-down add when the lateral map is exactly twice the top one). 32 outputs per step: the
// 16 b values they need are dequantised once (qadd_deq16) and duplicated lane by lane (vpermps), so
// each output sees the float em_qadd_row_avx512 computes for its b byte; the a side and the finish
// are em_qadd_row_avx512's.
EM_AVX512E void em_qaddup2_row_avx512(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b,
                                      int32_t z_b, float b_mult, int n, int32_t z_out, int32_t lo,
                                      uint8_t *out) {
    const __m512 am = _mm512_set1_ps(a_mult), bm = _mm512_set1_ps(b_mult);
    const __m512i za = _mm512_set1_epi32(z_a), zb = _mm512_set1_epi32(z_b);
    const qadd_fin f = qadd_fin_set(z_out, lo);
    const __m512i dup0 = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i dup1 = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    for (int i = 0; i < n; i += 32) {
        const __m512 pb = qadd_deq16(b + i / 2, tail16((n - i + 1) / 2), zb, bm);
        const __m512 pbh[2] = {_mm512_permutexvar_ps(dup0, pb), _mm512_permutexvar_ps(dup1, pb)};
#pragma clang loop unroll(full)
        for (int h = 0; h < 2; h++) {
            const int at = i + 16 * h;
            if (at >= n) break;
            const __mmask16 k = tail16(n - at);
            qadd_finish16(qadd_deq16(a + at, k, za, am), pbh[h], &f, k, out + at);
        }
    }
}

EM_AVX512E void em_qquant_row_avx512(const float *x, int n, float inv_scale, int32_t z, uint8_t *out) {
    const __m512 vi = _mm512_set1_ps(inv_scale);
    const __m512 flo = _mm512_set1_ps(-EM_QF_LIM), fhi = _mm512_set1_ps(EM_QF_LIM);
    const __m512i vz = _mm512_set1_epi32(z), v0 = _mm512_setzero_si512(), vhi = _mm512_set1_epi32(255);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vi);
        v = _mm512_min_ps(_mm512_max_ps(v, flo), fhi);
        __m512i y = _mm512_add_epi32(_mm512_cvtps_epi32(v), vz);
        y = _mm512_min_epi32(_mm512_max_epi32(y, v0), vhi);
        _mm_mask_storeu_epi8(out + i, k, _mm512_cvtepi32_epi8(y));
    }
}

EM_AVX512E void em_qdequant_row_avx512(const uint8_t *q, int n, float scale, int32_t z, float *out) {
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512i vz = _mm512_set1_epi32(z);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        __m512i iq = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, q + i));
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(iq, vz)), vs));
    }
}
#endif
