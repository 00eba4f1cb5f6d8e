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

// One step of 8 k: one 64-byte multi-register load (ld1 {4 x 16 bytes}, post-indexed: ONE
// instruction) of the prepared weights (v0-v3: channel pairs 0-1 .. 6-7) and one of the panel
// (v4-v7: pixel pairs), 16 usmmla; accumulator c<i><q>: channel pair i, pixel pair q. In assembly
// so that the operands stay in v0-v7 and the accumulators in registers.
#define EM_MM1 \
        "ld1 {v0.16b, v1.16b, v2.16b, v3.16b}, [%[w]], #64\n" \
        "ld1 {v4.16b, v5.16b, v6.16b, v7.16b}, [%[x]], #64\n" \
        "usmmla %[c00].4s, v4.16b, v0.16b\n" \
        "usmmla %[c01].4s, v5.16b, v0.16b\n" \
        "usmmla %[c02].4s, v6.16b, v0.16b\n" \
        "usmmla %[c03].4s, v7.16b, v0.16b\n" \
        "usmmla %[c10].4s, v4.16b, v1.16b\n" \
        "usmmla %[c11].4s, v5.16b, v1.16b\n" \
        "usmmla %[c12].4s, v6.16b, v1.16b\n" \
        "usmmla %[c13].4s, v7.16b, v1.16b\n" \
        "usmmla %[c20].4s, v4.16b, v2.16b\n" \
        "usmmla %[c21].4s, v5.16b, v2.16b\n" \
        "usmmla %[c22].4s, v6.16b, v2.16b\n" \
        "usmmla %[c23].4s, v7.16b, v2.16b\n" \
        "usmmla %[c30].4s, v4.16b, v3.16b\n" \
        "usmmla %[c31].4s, v5.16b, v3.16b\n" \
        "usmmla %[c32].4s, v6.16b, v3.16b\n" \
        "usmmla %[c33].4s, v7.16b, v3.16b\n"
#define EM_MM_OPS [c00] "+w"(c00), [c01] "+w"(c01), [c02] "+w"(c02), [c03] "+w"(c03), [c10] "+w"(c10), [c11] "+w"(c11), [c12] "+w"(c12), [c13] "+w"(c13), [c20] "+w"(c20), [c21] "+w"(c21), [c22] "+w"(c22), [c23] "+w"(c23), [c30] "+w"(c30), [c31] "+w"(c31), [c32] "+w"(c32), [c33] "+w"(c33), [w] "+r"(w), [x] "+r"(x)
#define EM_MM_CLOBBER "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "memory"

// 8 channels x 8 pixels, kp a multiple of 8. Accumulator (channel pair i, pixel pair q) holds
// [p0 c0, p0 c1, p1 c0, p1 c1]. Four steps per iteration (64 usmmla, 8 ld1, subs, branch: 74
// instructions for 2048 MAC). accumulate: the accumulators start from acc (rows zipped into the
// 2 x 2 tiles) instead of zero.
EM_I8MM void em_qukr_u8s8_neoi8mm_8x8(int kp, const void *wblk, const uint8_t *panel,
                                      int32_t *acc, int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    const uint8_t *x = panel;
    int32x4_t c[4][4];
    if (accumulate) {
        for (int i = 0; i < 4; i++) {
            // rows 2i, 2i + 1 (8 pixels each) -> [p0 r0, p0 r1, p1 r0, p1 r1] per pixel pair
            int32x4x4_t a = vld1q_s32_x4(acc + (2 * i) * 8);
            c[i][0] = vzip1q_s32(a.val[0], a.val[2]), c[i][1] = vzip2q_s32(a.val[0], a.val[2]);
            c[i][2] = vzip1q_s32(a.val[1], a.val[3]), c[i][3] = vzip2q_s32(a.val[1], a.val[3]);
        }
    } else {
        for (int i = 0; i < 4; i++) c[i][0] = c[i][1] = c[i][2] = c[i][3] = vdupq_n_s32(0);
    }
    int32x4_t c00 = c[0][0], c01 = c[0][1], c02 = c[0][2], c03 = c[0][3], c10 = c[1][0], c11 = c[1][1], c12 = c[1][2], c13 = c[1][3], c20 = c[2][0], c21 = c[2][1], c22 = c[2][2], c23 = c[2][3], c30 = c[3][0], c31 = c[3][1], c32 = c[3][2], c33 = c[3][3];
    const int g = kp >> 3;
    long n = g >> 2;
    long r = g & 3;
    // the loop (n iterations of four steps), then r single steps
    __asm__ volatile(".arch_extension i8mm\n"
                     "cbz %[n], 2f\n"
                     "1:\n" EM_MM1 EM_MM1 EM_MM1 EM_MM1
                     "subs %[n], %[n], #1\n"
                     "b.ne 1b\n"
                     "2:\n"
                     "cbz %[r], 4f\n"
                     "3:\n" EM_MM1
                     "subs %[r], %[r], #1\n"
                     "b.ne 3b\n"
                     "4:\n"
                     : EM_MM_OPS, [n] "+r"(n), [r] "+r"(r)
                     :
                     : EM_MM_CLOBBER, "cc");
    c[0][0] = c00; c[0][1] = c01; c[0][2] = c02; c[0][3] = c03; c[1][0] = c10; c[1][1] = c11; c[1][2] = c12; c[1][3] = c13; c[2][0] = c20; c[2][1] = c21; c[2][2] = c22; c[2][3] = c23; c[3][0] = c30; c[3][1] = c31; c[3][2] = c32; c[3][3] = c33;
    for (int i = 0; i < 4; i++) {
        // rows 2i (lanes 0, 2) and 2i + 1 (lanes 1, 3), pixels 0-3 and 4-7
        int32x4x4_t o = {{vuzp1q_s32(c[i][0], c[i][1]), vuzp1q_s32(c[i][2], c[i][3]),
                          vuzp2q_s32(c[i][0], c[i][1]), vuzp2q_s32(c[i][2], c[i][3])}};
        vst1q_s32_x4(acc + (2 * i) * 8, o);
    }
}
#endif
