// AVX-512 VNNI int8 micro-kernel: vpdpbusd (u8 x s8, 4 exact products summed into each int32
// lane; no intermediate saturation) straight on the packed weight blocks. 8 channels x 32
// pixels: 16 zmm accumulators.
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// wblk: packed block (group stride 32 bytes, channel c at c*4); panel EM_QP_K4 with NR = 32
// (128 bytes per group of 4 k).
EM_VNNI void em_qukr_u8s8_avx512vnni_8x32(int kp, const void *wblk, const uint8_t *panel,
                                          int32_t *acc) {
    const uint8_t *w = (const uint8_t *)wblk;
    __m512i c[8][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = _mm512_setzero_si512();
    for (int g = 0; g < kp / 4; g++) {
        __m512i x0 = _mm512_loadu_si512((const void *)(panel + (size_t)g * 128));
        __m512i x1 = _mm512_loadu_si512((const void *)(panel + (size_t)g * 128 + 64));
        const uint8_t *wg = w + (size_t)g * 32;
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++) {
            __m512i wv = _mm512_set1_epi32(*(const int32_t *)(wg + i * 4));
            c[i][0] = _mm512_dpbusd_epi32(c[i][0], x0, wv);
            c[i][1] = _mm512_dpbusd_epi32(c[i][1], x1, wv);
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        _mm512_storeu_si512((void *)(acc + i * 32), c[i][0]);
        _mm512_storeu_si512((void *)(acc + i * 32 + 16), c[i][1]);
    }
}
#endif
