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

#if defined(__x86_64__)
#include "../em_qroi_grid.h"

// The grid path's pieces (roi_align_u8.c align_roi_grid) for one 32-channel group, four ymm per
// pixel: grid_deq_c's (float)(q - z) * s, and bin_finish_c's sum (w1 g1 + w2 g2 + w3 g3 + w4 g4,
// left to right, no FMA; the first sample's term starts the sum), (sum / count) * inv and
// em_q_finish (max/min with the limits: a NaN takes -limit as em_q_finish does, vcvtps2dq rounds
// half to even as rintf, + z, clamp to [0, 255]).
EM_AVX2 void em_qroi_grid_deq_avx2(const uint8_t *f, const int *ys, int ny, const int *xs, int nx,
                                   size_t W, size_t C, int32_t z, float s, float *G) {
    const __m256i vz = _mm256_set1_epi32(z);
    const __m256 vs = _mm256_set1_ps(s);
    for (int gy = 0; gy < ny; gy++) {
        const uint8_t *row = f + (size_t)ys[gy] * W * C;
        for (int gx = 0; gx < nx; gx++, G += 32) {
            const uint8_t *p = row + (size_t)xs[gx] * C;
            for (int h = 0; h < 4; h++) {
                __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * h)));
                _mm256_storeu_ps(G + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz)), vs));
            }
        }
    }
}

EM_AVX2 void em_qroi_grid_bins_avx2(const em_qroi_gsamp_t *S, const int *nb, int PH, int PW,
                                    float count, float inv, int32_t z, uint8_t *o, size_t cstride,
                                    size_t ystride) {
    const __m256 vc = _mm256_set1_ps(count), vi = _mm256_set1_ps(inv);
    const __m256 flo = _mm256_set1_ps(-EM_QF_LIM), fhi = _mm256_set1_ps(EM_QF_LIM);
    const __m256i vz = _mm256_set1_epi32(z), v0 = _mm256_setzero_si256(), vhi = _mm256_set1_epi32(255);
    for (int ph = 0; ph < PH; ph++)
        for (int pw = 0; pw < PW; pw++) {
            const int n = *nb++;
            __m256 a[4];
            for (int h = 0; h < 4; h++) a[h] = _mm256_setzero_ps();
            for (int k = 0; k < n; k++, S++) {
                const __m256 w1 = _mm256_set1_ps(S->w[0]), w2 = _mm256_set1_ps(S->w[1]),
                             w3 = _mm256_set1_ps(S->w[2]), w4 = _mm256_set1_ps(S->w[3]);
                for (int h = 0; h < 4; h++) {
                    const int o8 = 8 * h;
                    __m256 t = _mm256_add_ps(_mm256_mul_ps(w1, _mm256_loadu_ps(S->g[0] + o8)),
                                             _mm256_mul_ps(w2, _mm256_loadu_ps(S->g[1] + o8)));
                    t = _mm256_add_ps(t, _mm256_mul_ps(w3, _mm256_loadu_ps(S->g[2] + o8)));
                    t = _mm256_add_ps(t, _mm256_mul_ps(w4, _mm256_loadu_ps(S->g[3] + o8)));
                    a[h] = k ? _mm256_add_ps(a[h], t) : t;
                }
            }
            int32_t q[32];
            for (int h = 0; h < 4; h++) {
                __m256 v = _mm256_mul_ps(_mm256_div_ps(a[h], vc), vi);
                v = _mm256_min_ps(_mm256_max_ps(v, flo), fhi);
                __m256i y = _mm256_add_epi32(_mm256_cvtps_epi32(v), vz);
                y = _mm256_min_epi32(_mm256_max_epi32(y, v0), vhi);
                _mm256_storeu_si256((__m256i *)(q + 8 * h), y);
            }
            uint8_t *ob = o + (size_t)ph * ystride + pw;
            for (int c = 0; c < 32; c++) ob[(size_t)c * cstride] = (uint8_t)q[c];
        }
}
#endif
