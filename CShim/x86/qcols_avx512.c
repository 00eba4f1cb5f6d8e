// The linear layers' EM_QP_K4 panel of 48 pixels (avx512vnni, NR 48) from QSRC_COLS sources
// (each pixel's K bytes contiguous): per 16 pixels and 16 groups of 4 k, 16 row loads of 64
// bytes, a 16 x 16 transpose of their dwords (unpack epi32 / epi64 within 128-bit lanes, then two
// rounds of 128-bit lane shuffles), 16 stores of one group's 16 pixels. Replaces one 4-byte move
// per pixel and group. Only the bytes move: the panel is the one the scalar builder makes.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_AVX512C __attribute__((target("avx512f,avx512bw,avx512vl")))

// r[i] (row i: 16 dwords) -> r[q] = dword q of every row (q < 16).
static inline __attribute__((always_inline)) EM_AVX512C void tr16x16_epi32(__m512i r[16]) {
    __m512i t[16], u[16];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4 i + c], 128-bit lane L: rows 4 i .. 4 i + 3 of dword 4 L + c
#pragma clang loop unroll(full)
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // dword 4 L + c: lane L of u[c], u[4 + c], u[8 + c], u[12 + c] (a 4 x 4 transpose of lanes)
#pragma clang loop unroll(full)
    for (int c = 0; c < 4; c++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

// dst[g * 192 + p * 4 + b] = src[p * ldk + 4 g + b] for p < nv, g < kc / 4 (kc a multiple of 4,
// nv 0..48); pixels p >= nv get z. Reads only those bytes of the source (masked loads).
EM_AVX512C void em_qcols_panel48_avx512(const uint8_t *src, long ldk, int nv, int kc, uint8_t z, uint8_t *dst) {
    const int ng = kc / 4;
    const __m512i zv = _mm512_set1_epi8((char)z);
    for (int pb = 0; pb < 3; pb++) {
        const int valid = nv - 16 * pb;
        uint8_t *d = dst + 64 * pb;
        if (valid <= 0) {
            for (int g = 0; g < ng; g++) _mm512_storeu_si512((void *)(d + (size_t)g * 192), zv);
            continue;
        }
        const uint8_t *s = src + (size_t)16 * pb * ldk;
        for (int G = 0; G < ng; G += 16) {
            const int gn = ng - G < 16 ? ng - G : 16;
            const __mmask16 lm = (__mmask16)(gn == 16 ? 0xFFFF : (1u << gn) - 1);
            __m512i r[16];
#pragma clang loop unroll(full)
            for (int i = 0; i < 16; i++)
                r[i] = i < valid ? _mm512_maskz_loadu_epi32(lm, s + (size_t)i * ldk + 4 * (size_t)G) : zv;
            tr16x16_epi32(r);
            uint8_t *dg = d + (size_t)G * 192;
            if (gn == 16) {
#pragma clang loop unroll(full)
                for (int q = 0; q < 16; q++) _mm512_storeu_si512((void *)(dg + (size_t)q * 192), r[q]);
            } else {
                for (int q = 0; q < gn; q++) _mm512_storeu_si512((void *)(dg + (size_t)q * 192), r[q]);
            }
        }
    }
}
#endif
