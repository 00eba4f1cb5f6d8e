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

#if defined(__x86_64__)
#include <string.h>

#include "../em_qroi_grid.h"
#include "em_tr16_sse2.h"

// The grid path's pieces (roi_align_u8.c align_roi_grid) for one 32-channel group, two zmm per
// pixel: grid_deq_c's (float)(q - z) * s, and bin_finish_c's sum (w1 g1 + w2 g2 + w3 g3 + w4 g4,
// left to right, no FMA; the first sample's term starts the sum), (sum / count) * inv and
// em_q_finish (max/min with the limits: a NaN takes -limit as em_q_finish does, vcvtps2dq rounds
// half to even as rintf, + z, clamp to [0, 255]).
EM_AVX512 void em_qroi_grid_deq_avx512(const uint8_t *f, const int *ys, int ny, const int *xs,
                                       int nx, size_t W, size_t C, int32_t z, float s, float *G) {
    const __m512i vz = _mm512_set1_epi32(z);
    const __m512 vs = _mm512_set1_ps(s);
    for (int gy = 0; gy < ny; gy++) {
        const uint8_t *row = f + (size_t)ys[gy] * W * C;
        for (int gx = 0; gx < nx; gx++, G += 32) {
            const uint8_t *p = row + (size_t)xs[gx] * C;
            __m512i q0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
            __m512i q1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 16)));
            _mm512_storeu_ps(G, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q0, vz)), vs));
            _mm512_storeu_ps(G + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q1, vz)), vs));
        }
    }
}

EM_AVX512 static inline __m512 taps16(const em_qroi_gsamp_t *q, int o, __m512 w1, __m512 w2,
                                      __m512 w3, __m512 w4) {
    __m512 t = _mm512_add_ps(_mm512_mul_ps(w1, _mm512_loadu_ps(q->g[0] + o)),
                             _mm512_mul_ps(w2, _mm512_loadu_ps(q->g[1] + o)));
    t = _mm512_add_ps(t, _mm512_mul_ps(w3, _mm512_loadu_ps(q->g[2] + o)));
    return _mm512_add_ps(t, _mm512_mul_ps(w4, _mm512_loadu_ps(q->g[3] + o)));
}

EM_AVX512 static inline __m128i finish16(__m512 a, __m512 vc, __m512 vi, __m512 flo, __m512 fhi,
                                         __m512i vz, __m512i v0, __m512i vhi) {
    __m512 v = _mm512_mul_ps(_mm512_div_ps(a, vc), vi);
    v = _mm512_min_ps(_mm512_max_ps(v, flo), fhi);
    __m512i y = _mm512_add_epi32(_mm512_cvtps_epi32(v), vz);
    y = _mm512_min_epi32(_mm512_max_epi32(y, v0), vhi);
    return _mm512_cvtepi32_epi8(y);
}


enum { QB_BINS = 256 }; // bins of one RoI staged for the transposed stores (more: byte by byte)

EM_AVX512 void em_qroi_grid_bins_avx512(const em_qroi_gsamp_t *S, const int *nb, int PH, int PW,
                                        float count, float inv, int32_t z, uint8_t *o,
                                        size_t cstride, size_t ystride) {
    const __m512 vc = _mm512_set1_ps(count), vi = _mm512_set1_ps(inv);
    const __m512 flo = _mm512_set1_ps(-EM_QF_LIM), fhi = _mm512_set1_ps(EM_QF_LIM);
    const __m512i vz = _mm512_set1_epi32(z), v0 = _mm512_setzero_si512(), vhi = _mm512_set1_epi32(255);
    // the bins' bytes staged as [bin][32 channels], then transposed to [channel][bin] in 16 x 16
    // blocks and stored a bin row (PW bytes) at a time, instead of 32 strided byte stores per bin
    const int nbins = PH * PW, staged = nbins <= QB_BINS;
    __attribute__((aligned(64))) uint8_t qs[QB_BINS * 32], qt[32 * QB_BINS];
    for (int ph = 0; ph < PH; ph++)
        for (int pw = 0; pw < PW; pw++) {
            const int n = *nb++;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            for (int k = 0; k < n; k++, S++) {
                const __m512 w1 = _mm512_set1_ps(S->w[0]), w2 = _mm512_set1_ps(S->w[1]),
                             w3 = _mm512_set1_ps(S->w[2]), w4 = _mm512_set1_ps(S->w[3]);
                const __m512 t0 = taps16(S, 0, w1, w2, w3, w4), t1 = taps16(S, 16, w1, w2, w3, w4);
                a0 = k ? _mm512_add_ps(a0, t0) : t0;
                a1 = k ? _mm512_add_ps(a1, t1) : t1;
            }
            uint8_t *q = staged ? qs + (size_t)(ph * PW + pw) * 32 : qt;
            _mm_storeu_si128((__m128i *)q, finish16(a0, vc, vi, flo, fhi, vz, v0, vhi));
            _mm_storeu_si128((__m128i *)(q + 16), finish16(a1, vc, vi, flo, fhi, vz, v0, vhi));
            if (staged) continue;
            uint8_t *ob = o + (size_t)ph * ystride + pw;
            for (int c = 0; c < 32; c++) ob[(size_t)c * cstride] = q[c];
        }
    if (!staged) return;
    const int nbp = (nbins + 15) / 16 * 16; // the last block's rows past nbins are never stored
    for (int b0 = 0; b0 < nbp; b0 += 16)
        for (int c0 = 0; c0 < 32; c0 += 16)
            em_tr16x16_u8_sse2(qs + (size_t)b0 * 32 + c0, 32, qt + (size_t)c0 * nbp + b0, (size_t)nbp);
    // rows of at most 64 bytes (the box head's 7 x 7 = 49 contiguous, the mask head's 14-byte
    // rows): one masked load and store each instead of a memcpy call
    const int wide = ystride == (size_t)PW ? nbins : PW, rows = ystride == (size_t)PW ? 1 : PH;
    if (wide <= 64) {
        const __mmask64 km = wide == 64 ? ~(__mmask64)0 : (((__mmask64)1 << wide) - 1);
        const size_t step = ystride == (size_t)PW ? 0 : ystride;
        for (int c = 0; c < 32; c++) {
            const uint8_t *src = qt + (size_t)c * nbp;
            uint8_t *dst = o + (size_t)c * cstride;
            for (int r = 0; r < rows; r++, src += PW, dst += step)
                _mm512_mask_storeu_epi8(dst, km, _mm512_maskz_loadu_epi8(km, src));
        }
        return;
    }
    for (int c = 0; c < 32; c++) {
        const uint8_t *src = qt + (size_t)c * nbp;
        uint8_t *dst = o + (size_t)c * cstride;
        if (ystride == (size_t)PW) {
            memcpy(dst, src, (size_t)nbins);
        } else {
            for (int ph = 0; ph < PH; ph++) memcpy(dst + (size_t)ph * ystride, src + (size_t)ph * PW, (size_t)PW);
        }
    }
}
#endif
