// 16 rows of 16 bytes (row i at in + i * si) -> 16 rows of 16 bytes (row i at out + i * so),
// transposed, with SSE2 (baseline x86-64): four unpack levels (bytes, words, dwords, qwords), 64
// instructions. Shared by the CHW -> HWC transpose of the RoIAlign maps (roi_align_u8.c) and the
// AVX-512 RoIAlign bin stores (x86/qroi_avx512.c).
#ifndef EM_TR16_SSE2_H
#define EM_TR16_SSE2_H
#if defined(__x86_64__)
#include <emmintrin.h>
#include <stddef.h>
#include <stdint.h>

static inline void em_tr16x16_u8_sse2(const uint8_t *in, size_t si, uint8_t *out, size_t so) {
    __m128i r[16], a[16], b[16], c[16];
    for (int i = 0; i < 16; i++) r[i] = _mm_loadu_si128((const __m128i *)(in + (size_t)i * si));
    for (int i = 0; i < 8; i++) { // a[8h + i]: columns 8h..8h+7 of rows 2i, 2i+1
        a[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
        a[8 + i] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) // b[4q + j]: columns 4q..4q+3, rows 4j..4j+3
        for (int j = 0; j < 4; j++) {
            b[8 * h + j] = _mm_unpacklo_epi16(a[8 * h + 2 * j], a[8 * h + 2 * j + 1]);
            b[8 * h + 4 + j] = _mm_unpackhi_epi16(a[8 * h + 2 * j], a[8 * h + 2 * j + 1]);
        }
    for (int q = 0; q < 4; q++) // c[2pp + m]: columns 2pp, 2pp+1, rows 8m..8m+7
        for (int m = 0; m < 2; m++) {
            c[4 * q + m] = _mm_unpacklo_epi32(b[4 * q + 2 * m], b[4 * q + 2 * m + 1]);
            c[4 * q + 2 + m] = _mm_unpackhi_epi32(b[4 * q + 2 * m], b[4 * q + 2 * m + 1]);
        }
    for (int pp = 0; pp < 8; pp++) {
        _mm_storeu_si128((__m128i *)(out + (size_t)(2 * pp) * so), _mm_unpacklo_epi64(c[2 * pp], c[2 * pp + 1]));
        _mm_storeu_si128((__m128i *)(out + (size_t)(2 * pp + 1) * so), _mm_unpackhi_epi64(c[2 * pp], c[2 * pp + 1]));
    }
}
#endif
#endif
