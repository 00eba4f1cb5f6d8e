// AVX2 int8 paths (also used for plain AVX-512 without VNNI): like SSE4.1, activations widened
// to int16 and vpmaddwd with int16 weight pairs (no vpmaddubsw: its 16-bit saturation would break
// exactness with full-range int8 weights). Also the AVX2 requantisation row.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_AVX2 __attribute__((target("avx2")))

// 4 channels x 16 pixels. w: em_qprep_s16_k2 weights at channel c0 (pair group stride 32
// bytes); panel EM_QP_K2 with NR = 16 (32 bytes per k pair).
EM_AVX2 void em_qukr_u8s8_avx2_4x16(int kp, const void *wblk, const uint8_t *panel,
                                    int32_t *acc, int accumulate) {
    const uint8_t *w = (const uint8_t *)wblk;
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00;
    for (int k2 = 0; k2 < kp / 2; k2++) {
        const uint8_t *p = panel + (size_t)k2 * 32;
        __m256i x0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
        __m256i x1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)));
        const uint8_t *wk = w + (size_t)k2 * 32;
        __m256i w0 = _mm256_set1_epi32(*(const int32_t *)(wk + 0));
        __m256i w1 = _mm256_set1_epi32(*(const int32_t *)(wk + 4));
        __m256i w2 = _mm256_set1_epi32(*(const int32_t *)(wk + 8));
        __m256i w3 = _mm256_set1_epi32(*(const int32_t *)(wk + 12));
        c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x0, w0));
        c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x1, w0));
        c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x0, w1));
        c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x1, w1));
        c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x0, w2));
        c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x1, w2));
        c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x0, w3));
        c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x1, w3));
    }
    _mm256_storeu_si256((__m256i *)(acc + 0), accumulate ? _mm256_add_epi32(c00, _mm256_loadu_si256((const __m256i *)(acc + 0))) : c00);
    _mm256_storeu_si256((__m256i *)(acc + 8), accumulate ? _mm256_add_epi32(c01, _mm256_loadu_si256((const __m256i *)(acc + 8))) : c01);
    _mm256_storeu_si256((__m256i *)(acc + 16), accumulate ? _mm256_add_epi32(c10, _mm256_loadu_si256((const __m256i *)(acc + 16))) : c10);
    _mm256_storeu_si256((__m256i *)(acc + 24), accumulate ? _mm256_add_epi32(c11, _mm256_loadu_si256((const __m256i *)(acc + 24))) : c11);
    _mm256_storeu_si256((__m256i *)(acc + 32), accumulate ? _mm256_add_epi32(c20, _mm256_loadu_si256((const __m256i *)(acc + 32))) : c20);
    _mm256_storeu_si256((__m256i *)(acc + 40), accumulate ? _mm256_add_epi32(c21, _mm256_loadu_si256((const __m256i *)(acc + 40))) : c21);
    _mm256_storeu_si256((__m256i *)(acc + 48), accumulate ? _mm256_add_epi32(c30, _mm256_loadu_si256((const __m256i *)(acc + 48))) : c30);
    _mm256_storeu_si256((__m256i *)(acc + 56), accumulate ? _mm256_add_epi32(c31, _mm256_loadu_si256((const __m256i *)(acc + 56))) : c31);
}

// Requantisation row, 8 lanes (same operation sequence as em_qrow_sse41).
EM_AVX2 void em_qrow_avx2(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                          const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst) {
    const __m256 vm = _mm256_set1_ps(mult), vrm = _mm256_set1_ps(res_mult);
    const __m256 flo = _mm256_set1_ps(-EM_QF_LIM), fhi = _mm256_set1_ps(EM_QF_LIM);
    const __m256i vz = _mm256_set1_epi32(z_out), vlo = _mm256_set1_epi32(lo),
                  vhi = _mm256_set1_epi32(255), vzr = _mm256_set1_epi32(z_res);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(acc + i))), vm);
        if (res) {
            __m256i r = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(res + i)));
            __m256 rv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(r, vzr)), vrm);
            v = _mm256_add_ps(v, rv);
        }
        v = _mm256_min_ps(_mm256_max_ps(v, flo), fhi);
        __m256i y = _mm256_add_epi32(_mm256_cvtps_epi32(v), vz);
        y = _mm256_min_epi32(_mm256_max_epi32(y, vlo), vhi);
        __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(y, y), y);
        em_st32(dst + i, _mm_cvtsi128_si32(_mm256_castsi256_si128(b)));
        em_st32(dst + i + 4, _mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1)));
    }
    if (i < n)
        em_qrow_generic(acc + i, n - i, mult, z_out, lo, res ? res + i : NULL, z_res, res_mult,
                        dst + i);
}

// em_qrows_fn: the term added in place (int32), then em_qrow_avx2 on each row of the tile.
EM_AVX2 void em_qrows_avx2(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                           const float *mults, int32_t z_out, int32_t lo, const uint8_t *res,
                           size_t res_ld, int32_t z_res, float res_mult, uint8_t *dst,
                           size_t dst_ld) {
    for (int r = 0; r < rows; r++) {
        int32_t *a = acc + (size_t)r * ld_acc;
        const __m256i vt = _mm256_set1_epi32(terms[r]);
        int i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_si256((__m256i *)(a + i),
                                _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(a + i)), vt));
        for (; i < n; i++) a[i] += terms[r];
        em_qrow_avx2(a, n, mults[r], z_out, lo, res ? res + (size_t)r * res_ld : NULL, z_res,
                     res_mult, dst + (size_t)r * dst_ld);
    }
}
#endif
