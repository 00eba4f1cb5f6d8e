// SSE4.1 int8 paths: u8 x s8 without pmaddubsw (which saturates at 16 bits): activations are
// widened to int16 (pmovzxbw), the packed weights prepared once per 8-channel block as int16 pairs
// (em_qprep_s16_k2), and pmaddwd sums two exact products into int32 lanes (one lane per pixel).
// Also the SSE4.1 requantisation row. Per-function target attributes: baseline x86-64 build.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_SSE41 __attribute__((target("sse4.1")))

// Packed block [Kp/4][8][4] s8 -> [Kp/2][8][2] s16 (channel c of pair-group g at (g*8 + c)*2):
// per group of 4 k, pshufb splits each channel's 4 bytes into its two k pairs, pmovsxbw widens.
EM_SSE41 void em_qprep_s16_k2(int kp, const int8_t *blk, void *dst) {
    const __m128i idx = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    int16_t *d = (int16_t *)dst;
    for (int g = 0; g < kp / 4; g++) {
        const int8_t *s = blk + (size_t)g * 32;
        int16_t *d0 = d + (size_t)g * 32;
        __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)s), idx);        // ch 0-3
        __m128i b = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(s + 16)), idx); // ch 4-7
        _mm_storeu_si128((__m128i *)(d0 + 0), _mm_cvtepi8_epi16(a));
        _mm_storeu_si128((__m128i *)(d0 + 8), _mm_cvtepi8_epi16(b));
        _mm_storeu_si128((__m128i *)(d0 + 16), _mm_cvtepi8_epi16(_mm_srli_si128(a, 8)));
        _mm_storeu_si128((__m128i *)(d0 + 24), _mm_cvtepi8_epi16(_mm_srli_si128(b, 8)));
    }
}

// 4 channels x 8 pixels. w: prepared weights at channel c0 (pair group stride 32 bytes);
// panel EM_QP_K2 with NR = 8 (16 bytes per k pair).
EM_SSE41 void em_qukr_u8s8_sse41_4x8(int kp, const void *wblk, const uint8_t *panel,
                                     int32_t *acc, int accumulate) {
    const uint8_t *w = (const uint8_t *)wblk;
    __m128i c00 = _mm_setzero_si128(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00;
    for (int k2 = 0; k2 < kp / 2; k2++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(panel + (size_t)k2 * 16));
        __m128i x0 = _mm_cvtepu8_epi16(x), x1 = _mm_cvtepu8_epi16(_mm_srli_si128(x, 8));
        const uint8_t *wk = w + (size_t)k2 * 32;
        __m128i w0 = _mm_set1_epi32(*(const int32_t *)(wk + 0));
        __m128i w1 = _mm_set1_epi32(*(const int32_t *)(wk + 4));
        __m128i w2 = _mm_set1_epi32(*(const int32_t *)(wk + 8));
        __m128i w3 = _mm_set1_epi32(*(const int32_t *)(wk + 12));
        c00 = _mm_add_epi32(c00, _mm_madd_epi16(x0, w0));
        c01 = _mm_add_epi32(c01, _mm_madd_epi16(x1, w0));
        c10 = _mm_add_epi32(c10, _mm_madd_epi16(x0, w1));
        c11 = _mm_add_epi32(c11, _mm_madd_epi16(x1, w1));
        c20 = _mm_add_epi32(c20, _mm_madd_epi16(x0, w2));
        c21 = _mm_add_epi32(c21, _mm_madd_epi16(x1, w2));
        c30 = _mm_add_epi32(c30, _mm_madd_epi16(x0, w3));
        c31 = _mm_add_epi32(c31, _mm_madd_epi16(x1, w3));
    }
    _mm_storeu_si128((__m128i *)(acc + 0), accumulate ? _mm_add_epi32(c00, _mm_loadu_si128((const __m128i *)(acc + 0))) : c00);
    _mm_storeu_si128((__m128i *)(acc + 4), accumulate ? _mm_add_epi32(c01, _mm_loadu_si128((const __m128i *)(acc + 4))) : c01);
    _mm_storeu_si128((__m128i *)(acc + 8), accumulate ? _mm_add_epi32(c10, _mm_loadu_si128((const __m128i *)(acc + 8))) : c10);
    _mm_storeu_si128((__m128i *)(acc + 12), accumulate ? _mm_add_epi32(c11, _mm_loadu_si128((const __m128i *)(acc + 12))) : c11);
    _mm_storeu_si128((__m128i *)(acc + 16), accumulate ? _mm_add_epi32(c20, _mm_loadu_si128((const __m128i *)(acc + 16))) : c20);
    _mm_storeu_si128((__m128i *)(acc + 20), accumulate ? _mm_add_epi32(c21, _mm_loadu_si128((const __m128i *)(acc + 20))) : c21);
    _mm_storeu_si128((__m128i *)(acc + 24), accumulate ? _mm_add_epi32(c30, _mm_loadu_si128((const __m128i *)(acc + 24))) : c30);
    _mm_storeu_si128((__m128i *)(acc + 28), accumulate ? _mm_add_epi32(c31, _mm_loadu_si128((const __m128i *)(acc + 28))) : c31);
}

// Requantisation row, 4 lanes: cvtdq2ps, mulps (+ residual mulps, addps), maxps/minps (clampf;
// maxps(v, lo) gives lo for NaN like the scalar code), cvtps2dq (round half even), + z_out, clamp.
EM_SSE41 void em_qrow_sse41(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                            const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst) {
    const __m128 vm = _mm_set1_ps(mult), vrm = _mm_set1_ps(res_mult);
    const __m128 flo = _mm_set1_ps(-EM_QF_LIM), fhi = _mm_set1_ps(EM_QF_LIM);
    const __m128i vz = _mm_set1_epi32(z_out), vlo = _mm_set1_epi32(lo), vhi = _mm_set1_epi32(255),
                  vzr = _mm_set1_epi32(z_res);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_mul_ps(_mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)(acc + i))), vm);
        if (res) {
            __m128i r = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(em_ld32(res + i)));
            __m128 rv = _mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(r, vzr)), vrm);
            v = _mm_add_ps(v, rv);
        }
        v = _mm_min_ps(_mm_max_ps(v, flo), fhi);
        __m128i y = _mm_add_epi32(_mm_cvtps_epi32(v), vz);
        y = _mm_min_epi32(_mm_max_epi32(y, vlo), vhi);
        y = _mm_packus_epi16(_mm_packus_epi32(y, y), y);
        em_st32(dst + i, _mm_cvtsi128_si32(y));
    }
    if (i < n)
        em_qrow_generic(acc + i, n - i, mult, z_out, lo, res ? res + i : NULL, z_res, res_mult,
                        dst + i);
}
#endif

// Element-wise rows (x86: used by every SIMD ISA; these ops are memory bound).
#if defined(__x86_64__)
// Rescaled add, 4 lanes: two cvtdq2ps/mulps, one addps, clampf, cvtps2dq, + z_out, clamp.
EM_SSE41 void em_qadd_row_sse41(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b,
                                int32_t z_b, float b_mult, int n, int32_t z_out, int32_t lo,
                                uint8_t *out) {
    const __m128 am = _mm_set1_ps(a_mult), bm = _mm_set1_ps(b_mult);
    const __m128 flo = _mm_set1_ps(-EM_QF_LIM), fhi = _mm_set1_ps(EM_QF_LIM);
    const __m128i za = _mm_set1_epi32(z_a), zb = _mm_set1_epi32(z_b), vz = _mm_set1_epi32(z_out),
                  vlo = _mm_set1_epi32(lo), vhi = _mm_set1_epi32(255);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128i ia = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(em_ld32(a + i)));
        __m128i ib = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(em_ld32(b + i)));
        __m128 pa = _mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(ia, za)), am);
        __m128 pb = _mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(ib, zb)), bm);
        __m128 v = _mm_min_ps(_mm_max_ps(_mm_add_ps(pa, pb), flo), fhi);
        __m128i y = _mm_add_epi32(_mm_cvtps_epi32(v), vz);
        y = _mm_min_epi32(_mm_max_epi32(y, vlo), vhi);
        y = _mm_packus_epi16(_mm_packus_epi32(y, y), y);
        em_st32(out + i, _mm_cvtsi128_si32(y));
    }
    if (i < n) em_qadd_row_generic(a + i, z_a, a_mult, b + i, z_b, b_mult, n - i, z_out, lo, out + i);
}

// Quantise, 4 lanes: mulps, clampf (maxps(v, lo) maps NaN to lo), cvtps2dq, + z, clamp.
EM_SSE41 void em_qquant_row_sse41(const float *x, int n, float inv_scale, int32_t z,
                                  uint8_t *out) {
    const __m128 vi = _mm_set1_ps(inv_scale);
    const __m128 flo = _mm_set1_ps(-EM_QF_LIM), fhi = _mm_set1_ps(EM_QF_LIM);
    const __m128i vz = _mm_set1_epi32(z), v0 = _mm_setzero_si128(), vhi = _mm_set1_epi32(255);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_mul_ps(_mm_loadu_ps(x + i), vi);
        v = _mm_min_ps(_mm_max_ps(v, flo), fhi);
        __m128i y = _mm_add_epi32(_mm_cvtps_epi32(v), vz);
        y = _mm_min_epi32(_mm_max_epi32(y, v0), vhi);
        y = _mm_packus_epi16(_mm_packus_epi32(y, y), y);
        em_st32(out + i, _mm_cvtsi128_si32(y));
    }
    if (i < n) em_qquant_row_generic(x + i, n - i, inv_scale, z, out + i);
}
#endif
