// NEON dot-product int8 micro-kernel (ISA "neondot": Armv8.2+ cores with dotprod, e.g. Cortex-A55,
// A76 (Raspberry Pi 5), RK3588, Neoverse N1). sdot by lane on the packed weight blocks as they are
// stored (no preparation); the activations are offset to s8 when the panel is packed (EM_QP_K4X:
// u8 ^ 0x80 = u8 - 128) and the driver adds 128 * rowsum[m] to the per-channel term, which makes
// the sum exactly the u8 x s8 one.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_qinternal.h"

#define EM_DOT __attribute__((target("dotprod")))

// Two groups of 4 k: one 64-byte multi-register load (ld1 {4 x 16 bytes}, post-indexed: ONE
// instruction) of the panel (v0-v3: pixels 0-3 and 4-7 of both groups) and one of the weights
// (v4-v7: channels 0-3 and 4-7 of both groups), 32 sdot by lane. The loop is written in assembly
// so that the operands stay in v0-v7 and the 16 accumulators in registers (the intrinsics version
// spilled).
#define EM_DOT2 \
        "ld1 {v0.16b, v1.16b, v2.16b, v3.16b}, [%[p]], #64\n" \
        "ld1 {v4.16b, v5.16b, v6.16b, v7.16b}, [%[w]], #64\n" \
        "sdot %[c00].4s, v0.16b, v4.4b[0]\n" \
        "sdot %[c01].4s, v1.16b, v4.4b[0]\n" \
        "sdot %[c10].4s, v0.16b, v4.4b[1]\n" \
        "sdot %[c11].4s, v1.16b, v4.4b[1]\n" \
        "sdot %[c20].4s, v0.16b, v4.4b[2]\n" \
        "sdot %[c21].4s, v1.16b, v4.4b[2]\n" \
        "sdot %[c30].4s, v0.16b, v4.4b[3]\n" \
        "sdot %[c31].4s, v1.16b, v4.4b[3]\n" \
        "sdot %[c40].4s, v0.16b, v5.4b[0]\n" \
        "sdot %[c41].4s, v1.16b, v5.4b[0]\n" \
        "sdot %[c50].4s, v0.16b, v5.4b[1]\n" \
        "sdot %[c51].4s, v1.16b, v5.4b[1]\n" \
        "sdot %[c60].4s, v0.16b, v5.4b[2]\n" \
        "sdot %[c61].4s, v1.16b, v5.4b[2]\n" \
        "sdot %[c70].4s, v0.16b, v5.4b[3]\n" \
        "sdot %[c71].4s, v1.16b, v5.4b[3]\n" \
        "sdot %[c00].4s, v2.16b, v6.4b[0]\n" \
        "sdot %[c01].4s, v3.16b, v6.4b[0]\n" \
        "sdot %[c10].4s, v2.16b, v6.4b[1]\n" \
        "sdot %[c11].4s, v3.16b, v6.4b[1]\n" \
        "sdot %[c20].4s, v2.16b, v6.4b[2]\n" \
        "sdot %[c21].4s, v3.16b, v6.4b[2]\n" \
        "sdot %[c30].4s, v2.16b, v6.4b[3]\n" \
        "sdot %[c31].4s, v3.16b, v6.4b[3]\n" \
        "sdot %[c40].4s, v2.16b, v7.4b[0]\n" \
        "sdot %[c41].4s, v3.16b, v7.4b[0]\n" \
        "sdot %[c50].4s, v2.16b, v7.4b[1]\n" \
        "sdot %[c51].4s, v3.16b, v7.4b[1]\n" \
        "sdot %[c60].4s, v2.16b, v7.4b[2]\n" \
        "sdot %[c61].4s, v3.16b, v7.4b[2]\n" \
        "sdot %[c70].4s, v2.16b, v7.4b[3]\n" \
        "sdot %[c71].4s, v3.16b, v7.4b[3]\n"
#define EM_DOT1 \
        "ld1 {v0.16b, v1.16b}, [%[p]], #32\n" \
        "ld1 {v4.16b, v5.16b}, [%[w]], #32\n" \
        "sdot %[c00].4s, v0.16b, v4.4b[0]\n" \
        "sdot %[c01].4s, v1.16b, v4.4b[0]\n" \
        "sdot %[c10].4s, v0.16b, v4.4b[1]\n" \
        "sdot %[c11].4s, v1.16b, v4.4b[1]\n" \
        "sdot %[c20].4s, v0.16b, v4.4b[2]\n" \
        "sdot %[c21].4s, v1.16b, v4.4b[2]\n" \
        "sdot %[c30].4s, v0.16b, v4.4b[3]\n" \
        "sdot %[c31].4s, v1.16b, v4.4b[3]\n" \
        "sdot %[c40].4s, v0.16b, v5.4b[0]\n" \
        "sdot %[c41].4s, v1.16b, v5.4b[0]\n" \
        "sdot %[c50].4s, v0.16b, v5.4b[1]\n" \
        "sdot %[c51].4s, v1.16b, v5.4b[1]\n" \
        "sdot %[c60].4s, v0.16b, v5.4b[2]\n" \
        "sdot %[c61].4s, v1.16b, v5.4b[2]\n" \
        "sdot %[c70].4s, v0.16b, v5.4b[3]\n" \
        "sdot %[c71].4s, v1.16b, v5.4b[3]\n"
#define EM_DOT_OPS [c00] "+w"(c00), [c01] "+w"(c01), [c10] "+w"(c10), [c11] "+w"(c11), [c20] "+w"(c20), [c21] "+w"(c21), [c30] "+w"(c30), [c31] "+w"(c31), [c40] "+w"(c40), [c41] "+w"(c41), [c50] "+w"(c50), [c51] "+w"(c51), [c60] "+w"(c60), [c61] "+w"(c61), [c70] "+w"(c70), [c71] "+w"(c71), [p] "+r"(p), [w] "+r"(w)
#define EM_DOT_CLOBBER "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "memory"

// 8 channels x 8 pixels; panel EM_QP_K4X with NR = 8 (32 bytes per group of 4 k). Four groups per
// iteration: 64 sdot, 4 ld1 of 64 bytes, subs and branch (70 instructions for 1024 MAC).
// accumulate: the accumulators start from acc (4 ld1 of 64 bytes) instead of zero.
EM_DOT void em_qukr_u8s8_neondot_8x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                                     int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    const int8_t *p = (const int8_t *)panel;
    int32x4_t c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
    if (accumulate) {
        c00 = vld1q_s32(acc + 0), c01 = vld1q_s32(acc + 4), c10 = vld1q_s32(acc + 8);
        c11 = vld1q_s32(acc + 12), c20 = vld1q_s32(acc + 16), c21 = vld1q_s32(acc + 20);
        c30 = vld1q_s32(acc + 24), c31 = vld1q_s32(acc + 28), c40 = vld1q_s32(acc + 32);
        c41 = vld1q_s32(acc + 36), c50 = vld1q_s32(acc + 40), c51 = vld1q_s32(acc + 44);
        c60 = vld1q_s32(acc + 48), c61 = vld1q_s32(acc + 52), c70 = vld1q_s32(acc + 56);
        c71 = vld1q_s32(acc + 60);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = vdupq_n_s32(0);
        c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = vdupq_n_s32(0);
    }
    const int g = kp >> 2;
    long n = g >> 2;
    // the loop (n iterations of four groups), then two and one group as g's bits 1 and 0 say
    __asm__ volatile(".arch_extension dotprod\n"
                     "cbz %[n], 2f\n"
                     "1:\n" EM_DOT2 EM_DOT2
                     "subs %[n], %[n], #1\n"
                     "b.ne 1b\n"
                     "2:\n"
                     "tbz %w[g], #1, 3f\n" EM_DOT2
                     "3:\n"
                     "tbz %w[g], #0, 4f\n" EM_DOT1
                     "4:\n"
                     : EM_DOT_OPS, [n] "+r"(n)
                     : [g] "r"(g)
                     : EM_DOT_CLOBBER, "cc");
    vst1q_s32(acc + 0, c00), vst1q_s32(acc + 4, c01), vst1q_s32(acc + 8, c10);
    vst1q_s32(acc + 12, c11), vst1q_s32(acc + 16, c20), vst1q_s32(acc + 20, c21);
    vst1q_s32(acc + 24, c30), vst1q_s32(acc + 28, c31), vst1q_s32(acc + 32, c40);
    vst1q_s32(acc + 36, c41), vst1q_s32(acc + 40, c50), vst1q_s32(acc + 44, c51);
    vst1q_s32(acc + 48, c60), vst1q_s32(acc + 52, c61), vst1q_s32(acc + 56, c70);
    vst1q_s32(acc + 60, c71);
}
#endif
