// NEON int8 matrix-multiply micro-kernel (ISA "neoi8mm": Armv8.6 FEAT_I8MM, e.g. Cortex-A710/
// A715/A720, Neoverse N2/V1/V2, Graviton 3/4), selected from getauxval(AT_HWCAP2) & HWCAP2_I8MM.
// usmmla multiplies a 2 x 8 u8 matrix by the transpose of a 2 x 8 s8 matrix into a 2 x 2 int32
// tile: 32 multiply-accumulates per instruction, twice sdot's 16. It takes the u8 activations as
// they are (no offset, no rowsum correction), so the sum is the exact u8 x s8 one.
// Precedent: XNNPACK's qs8/qu8 "neoni8mm" gemm kernels (4x16c8 / 8x16c8: 8 k per step, the 2 x 2
// tiles unzipped at the end) and Arm's KleidiAI i8mm matmuls; the tile here is 8 x 8 for our
// 8-channel weight blocks.
// Layouts (em_qinternal.h): panel EM_QP_K8, NR = 8: per group of 8 k, 8 pixels of 8 bytes
// (a pixel pair is one 16-byte usmmla operand); weights prepared per 8-channel block by
// em_qprep_i8mm: per group of 8 k, 8 channels of 8 bytes (a channel pair is one operand).
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_qinternal.h"
#include "em_neon_ld.h"

#define EM_I8MM __attribute__((target("i8mm")))

// kp values of k (multiple of 4) of one packed block [kp/4][8][4] -> [ceil(kp/8)][8][8].
void em_qprep_i8mm(int kp, const int8_t *blk, void *dst) {
    int8_t *d = (int8_t *)dst;
    const int g4 = kp / 4;
    for (int g = 0; g < g4; g += 2, d += 64) {
        const int8_t *s0 = blk + (size_t)g * 32;
        int32x4_t a0 = vreinterpretq_s32_s8(vld1q_s8(s0)), b0 = vreinterpretq_s32_s8(vld1q_s8(s0 + 16));
        int32x4_t a1 = vdupq_n_s32(0), b1 = vdupq_n_s32(0);
        if (g + 1 < g4) {
            a1 = vreinterpretq_s32_s8(vld1q_s8(s0 + 32));
            b1 = vreinterpretq_s32_s8(vld1q_s8(s0 + 48));
        }
        vst1q_s8(d + 0, vreinterpretq_s8_s32(vzip1q_s32(a0, a1)));
        vst1q_s8(d + 16, vreinterpretq_s8_s32(vzip2q_s32(a0, a1)));
        vst1q_s8(d + 32, vreinterpretq_s8_s32(vzip1q_s32(b0, b1)));
        vst1q_s8(d + 48, vreinterpretq_s8_s32(vzip2q_s32(b0, b1)));
    }
}

// 8 channels x 8 pixels, kp a multiple of 8. Accumulator (channel pair i, pixel pair q) holds
// [p0 c0, p0 c1, p1 c0, p1 c1].
EM_I8MM void em_qukr_u8s8_neoi8mm_8x8(int kp, const void *wblk, const uint8_t *panel,
                                      int32_t *acc, int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    const uint8_t *x = panel;
    int32x4_t c[4][4];
    for (int i = 0; i < 4; i++) c[i][0] = c[i][1] = c[i][2] = c[i][3] = vdupq_n_s32(0);
#define STEP()                                                                                     \
    {                                                                                              \
        int8x16_t w0, w1, w2, w3;                                                                  \
        uint8x16_t x0, x1, x2, x3;                                                                 \
        EM_LDP_POST(w, w0, w1, 32);                                                                \
        EM_LDP_POST(x, x0, x1, 32);                                                                \
        EM_LDP_POST(w, w2, w3, 32);                                                                \
        EM_LDP_POST(x, x2, x3, 32);                                                                \
        c[0][0] = vusmmlaq_s32(c[0][0], x0, w0); c[0][1] = vusmmlaq_s32(c[0][1], x1, w0);          \
        c[0][2] = vusmmlaq_s32(c[0][2], x2, w0); c[0][3] = vusmmlaq_s32(c[0][3], x3, w0);          \
        c[1][0] = vusmmlaq_s32(c[1][0], x0, w1); c[1][1] = vusmmlaq_s32(c[1][1], x1, w1);          \
        c[1][2] = vusmmlaq_s32(c[1][2], x2, w1); c[1][3] = vusmmlaq_s32(c[1][3], x3, w1);          \
        c[2][0] = vusmmlaq_s32(c[2][0], x0, w2); c[2][1] = vusmmlaq_s32(c[2][1], x1, w2);          \
        c[2][2] = vusmmlaq_s32(c[2][2], x2, w2); c[2][3] = vusmmlaq_s32(c[2][3], x3, w2);          \
        c[3][0] = vusmmlaq_s32(c[3][0], x0, w3); c[3][1] = vusmmlaq_s32(c[3][1], x1, w3);          \
        c[3][2] = vusmmlaq_s32(c[3][2], x2, w3); c[3][3] = vusmmlaq_s32(c[3][3], x3, w3);          \
    }
    int g = kp >> 3;
    for (int n = g >> 1; n != 0; n--) {
        STEP()
        STEP()
    }
    if (g & 1) STEP()
#undef STEP
    for (int i = 0; i < 4; i++) {
        // rows 2i (lanes 0, 2) and 2i + 1 (lanes 1, 3), pixels 0-3 and 4-7
        int32x4_t r0 = vuzp1q_s32(c[i][0], c[i][1]), r1 = vuzp1q_s32(c[i][2], c[i][3]);
        int32x4_t s0 = vuzp2q_s32(c[i][0], c[i][1]), s1 = vuzp2q_s32(c[i][2], c[i][3]);
        int32_t *a0 = acc + (2 * i) * 8, *a1 = a0 + 8;
        if (accumulate) {
            r0 = vaddq_s32(r0, vld1q_s32(a0)), r1 = vaddq_s32(r1, vld1q_s32(a0 + 4));
            s0 = vaddq_s32(s0, vld1q_s32(a1)), s1 = vaddq_s32(s1, vld1q_s32(a1 + 4));
        }
        vst1q_s32(a0, r0), vst1q_s32(a0 + 4, r1), vst1q_s32(a1, s0), vst1q_s32(a1 + 4, s1);
    }
}
#endif
