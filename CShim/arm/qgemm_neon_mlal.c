// Plain-NEON int8 micro-kernel (ISA "neon": every aarch64 core, the path of Cortex-A53/A55/A72
// boards without dotprod) on 8-bit products: smull/smlal2 of s8 x s8 into int16 lanes, two
// products per lane, then sadalp into int32. Twice the multiplies per instruction of the widened
// int16 smlal-by-lane formulation (8 instead of 4), and they do not all queue on one multiply pipe.
// Precedent: XNNPACK's qs8 gemm 2x8c8 / 4x8c8 "neon_mlal" kernels and ncnn's gemm_int8 path for
// cores without dotprod (same smull + smlal2 + sadalp chain per output); the tile here is chosen
// for our driver (output channels x pixels, 16 accumulators).
//
// Exactness: activations are offset to s8 when the panel is packed (u8 ^ 0x80 = u8 - 128) and the
// driver adds 128 * rowsum[m] to the term, as for sdot. Weights are in [-127, 127] (em_qpack_*
// clamps -128), so |w * x| <= 127 * 128 = 16256 and two products fit an int16 lane
// (32512 < 32767): the int16 stage never overflows and the int32 sums are exact.
//
// Layouts (see em_qinternal.h):
//   panel EM_QP_K8X2, NR = 8: per group of 8 k, 4 pixel pairs of 16 bytes
//     [p0 k0-3][p1 k0-3][p0 k4-7][p1 k4-7] (s8 = u8 ^ 0x80)
//   weights prepared per 8-channel block by em_qprep_mlal (prep_bytes_per_k 16, channel stride
//     16): per group of 8 k, 8 channels of 16 bytes [c k0-3][c k0-3][c k4-7][c k4-7]
// Tile 4 channels x 8 pixels: accumulator (c, pair q) holds two partial sums of each pixel of
// the pair; 16 accumulators, 4 weight and 4 panel registers; 48 arithmetic instructions and 4
// ldp per 256 multiply-accumulates.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_qinternal.h"
#include "em_neon_ld.h"

// kp values of k (multiple of 4) of one packed 8-channel block [kp/4][8][4] -> [ceil(kp/8)][8][16].
void em_qprep_mlal(int kp, const int8_t *blk, void *dst) {
    int8_t *d = (int8_t *)dst;
    const int g4 = kp / 4;
    for (int g = 0; g < g4; g += 2, d += 128) {
        const int8_t *s0 = blk + (size_t)g * 32;
        int32x4_t a0 = vreinterpretq_s32_s8(vld1q_s8(s0)), b0 = vreinterpretq_s32_s8(vld1q_s8(s0 + 16));
        int32x4_t a1 = vdupq_n_s32(0), b1 = vdupq_n_s32(0);
        if (g + 1 < g4) {
            a1 = vreinterpretq_s32_s8(vld1q_s8(s0 + 32));
            b1 = vreinterpretq_s32_s8(vld1q_s8(s0 + 48));
        }
        // channel c: [a0[c], a0[c], a1[c], a1[c]]
        int64x2_t lo0 = vreinterpretq_s64_s32(vzip1q_s32(a0, a0)), hi0 = vreinterpretq_s64_s32(vzip1q_s32(a1, a1));
        int64x2_t lo1 = vreinterpretq_s64_s32(vzip2q_s32(a0, a0)), hi1 = vreinterpretq_s64_s32(vzip2q_s32(a1, a1));
        vst1q_s8(d + 0, vreinterpretq_s8_s64(vzip1q_s64(lo0, hi0)));
        vst1q_s8(d + 16, vreinterpretq_s8_s64(vzip2q_s64(lo0, hi0)));
        vst1q_s8(d + 32, vreinterpretq_s8_s64(vzip1q_s64(lo1, hi1)));
        vst1q_s8(d + 48, vreinterpretq_s8_s64(vzip2q_s64(lo1, hi1)));
        lo0 = vreinterpretq_s64_s32(vzip1q_s32(b0, b0)), hi0 = vreinterpretq_s64_s32(vzip1q_s32(b1, b1));
        lo1 = vreinterpretq_s64_s32(vzip2q_s32(b0, b0)), hi1 = vreinterpretq_s64_s32(vzip2q_s32(b1, b1));
        vst1q_s8(d + 64, vreinterpretq_s8_s64(vzip1q_s64(lo0, hi0)));
        vst1q_s8(d + 80, vreinterpretq_s8_s64(vzip2q_s64(lo0, hi0)));
        vst1q_s8(d + 96, vreinterpretq_s8_s64(vzip1q_s64(lo1, hi1)));
        vst1q_s8(d + 112, vreinterpretq_s8_s64(vzip2q_s64(lo1, hi1)));
    }
}

// 4 channels x 8 pixels. kp: multiple of 8 (the driver rounds the k slice up; the prepared
// weights and the panel are zero / padded there).
void em_qukr_s8s8_neonmlal_4x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                               int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    const int8_t *x = (const int8_t *)panel;
    int32x4_t c00 = vdupq_n_s32(0), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00,
              c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00,
              c31 = c00, c32 = c00, c33 = c00;
#define MAC(cv, wv, xv)                                                                            \
    cv = vpadalq_s16(cv, vmlal_high_s8(vmull_s8(vget_low_s8(wv), vget_low_s8(xv)), wv, xv))
    // w: 64 bytes of this 4-channel slice, then skip the other slice's 64 (group stride 128)
#define GROUP()                                                                                    \
    {                                                                                              \
        int8x16_t w0, w1, w2, w3, x0, x1, x2, x3;                                                  \
        EM_LDP_POST(w, w0, w1, 32);                                                                \
        EM_LDP_POST(x, x0, x1, 32);                                                                \
        EM_LDP_POST(w, w2, w3, 96);                                                                \
        EM_LDP_POST(x, x2, x3, 32);                                                                \
        MAC(c00, w0, x0); MAC(c01, w0, x1); MAC(c02, w0, x2); MAC(c03, w0, x3);                    \
        MAC(c10, w1, x0); MAC(c11, w1, x1); MAC(c12, w1, x2); MAC(c13, w1, x3);                    \
        MAC(c20, w2, x0); MAC(c21, w2, x1); MAC(c22, w2, x2); MAC(c23, w2, x3);                    \
        MAC(c30, w3, x0); MAC(c31, w3, x1); MAC(c32, w3, x2); MAC(c33, w3, x3);                    \
    }
    // one group per iteration: two would exceed the 32 registers (16 accumulators, 8 operands,
    // the int16 products) and spill
    for (int g = kp >> 3; g != 0; g--) GROUP()
#undef GROUP
#undef MAC
    int32x4_t r[8] = {vpaddq_s32(c00, c01), vpaddq_s32(c02, c03), vpaddq_s32(c10, c11),
                      vpaddq_s32(c12, c13), vpaddq_s32(c20, c21), vpaddq_s32(c22, c23),
                      vpaddq_s32(c30, c31), vpaddq_s32(c32, c33)};
    if (accumulate)
        for (int i = 0; i < 8; i++) r[i] = vaddq_s32(r[i], vld1q_s32(acc + 4 * i));
    for (int i = 0; i < 8; i++) vst1q_s32(acc + 4 * i, r[i]);
}
#endif
