// AVX-512 row of the mask paste (ref/roi_paste.c paste_rows): 16 region pixels per step. The
// padded probability map's two source rows (at most 32 floats each: P = M + 2 <= 32) sit in two
// zmm pairs and the four taps of every pixel are picked from them with vpermt2ps; then the
// scalar row's operations in its order (t0 = p00 wx0 + p01 wx1, t1 = p10 wx0 + p11 wx1,
// v = t0 wy0 + t1 wy1; no FMA) and v > thresh (ordered: NaN gives 0), so the same bytes.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define EM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

EM_AVX512 void em_paste_row_avx512(const float *r0, const float *r1, const int *xi0, const int *xi1,
                                   const float *xl0, const float *xl1, int rw, float wy0, float wy1,
                                   float thresh, uint8_t *orow) {
    const __m512 a0 = _mm512_loadu_ps(r0), a1 = _mm512_loadu_ps(r0 + 16);
    const __m512 b0 = _mm512_loadu_ps(r1), b1 = _mm512_loadu_ps(r1 + 16);
    const __m512 vy0 = _mm512_set1_ps(wy0), vy1 = _mm512_set1_ps(wy1), th = _mm512_set1_ps(thresh);
    const __m128i one = _mm_set1_epi8(1);
    for (int x = 0; x < rw; x += 16) {
        const __mmask16 k = rw - x >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (rw - x)) - 1);
        const __m512i c0 = _mm512_maskz_loadu_epi32(k, xi0 + x), c1 = _mm512_maskz_loadu_epi32(k, xi1 + x);
        const __m512 wx0 = _mm512_maskz_loadu_ps(k, xl0 + x), wx1 = _mm512_maskz_loadu_ps(k, xl1 + x);
        const __m512 t0 = _mm512_add_ps(_mm512_mul_ps(_mm512_permutex2var_ps(a0, c0, a1), wx0),
                                        _mm512_mul_ps(_mm512_permutex2var_ps(a0, c1, a1), wx1));
        const __m512 t1 = _mm512_add_ps(_mm512_mul_ps(_mm512_permutex2var_ps(b0, c0, b1), wx0),
                                        _mm512_mul_ps(_mm512_permutex2var_ps(b0, c1, b1), wx1));
        const __m512 v = _mm512_add_ps(_mm512_mul_ps(t0, vy0), _mm512_mul_ps(t1, vy1));
        const __mmask16 gt = _mm512_cmp_ps_mask(v, th, _CMP_GT_OQ);
        _mm_mask_storeu_epi8(orow + x, k, _mm_maskz_mov_epi8(gt, one));
    }
}
#endif
