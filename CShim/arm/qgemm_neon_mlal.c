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
// the pair; 16 accumulators, 4 weight and 4 panel registers; 48 arithmetic instructions and two
// 64-byte multi-register loads (ld1 {4 x 16 bytes}, post-indexed) per 256 multiply-accumulates.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_qinternal.h"

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

// One group of 8 k: one 64-byte multi-register load (ld1 {4 x 16 bytes}, post-indexed by the
// 128-byte group stride of the prepared block: ONE instruction) of this 4-channel slice (v0-v3)
// and one of the panel (v4-v7: pixel pairs), then per (channel c, pixel pair q) smull + smlal2
// into an int16 temporary and sadalp into c<c><q>, 8 temporaries in flight. In assembly so that
// the operands stay in v0-v7 and nothing spills (the intrinsics version spilled).
#define EM_MLAL1 \
        "ld1 {v0.16b, v1.16b, v2.16b, v3.16b}, [%[w]], %[ws]\n" \
        "ld1 {v4.16b, v5.16b, v6.16b, v7.16b}, [%[x]], #64\n" \
        "smull %[t0].8h, v0.8b, v4.8b\n" \
        "smull %[t1].8h, v0.8b, v5.8b\n" \
        "smull %[t2].8h, v0.8b, v6.8b\n" \
        "smull %[t3].8h, v0.8b, v7.8b\n" \
        "smull %[t4].8h, v1.8b, v4.8b\n" \
        "smull %[t5].8h, v1.8b, v5.8b\n" \
        "smull %[t6].8h, v1.8b, v6.8b\n" \
        "smull %[t7].8h, v1.8b, v7.8b\n" \
        "smlal2 %[t0].8h, v0.16b, v4.16b\n" \
        "smlal2 %[t1].8h, v0.16b, v5.16b\n" \
        "smlal2 %[t2].8h, v0.16b, v6.16b\n" \
        "smlal2 %[t3].8h, v0.16b, v7.16b\n" \
        "smlal2 %[t4].8h, v1.16b, v4.16b\n" \
        "smlal2 %[t5].8h, v1.16b, v5.16b\n" \
        "smlal2 %[t6].8h, v1.16b, v6.16b\n" \
        "smlal2 %[t7].8h, v1.16b, v7.16b\n" \
        "sadalp %[c00].4s, %[t0].8h\n" \
        "sadalp %[c01].4s, %[t1].8h\n" \
        "sadalp %[c02].4s, %[t2].8h\n" \
        "sadalp %[c03].4s, %[t3].8h\n" \
        "sadalp %[c10].4s, %[t4].8h\n" \
        "sadalp %[c11].4s, %[t5].8h\n" \
        "sadalp %[c12].4s, %[t6].8h\n" \
        "sadalp %[c13].4s, %[t7].8h\n" \
        "smull %[t0].8h, v2.8b, v4.8b\n" \
        "smull %[t1].8h, v2.8b, v5.8b\n" \
        "smull %[t2].8h, v2.8b, v6.8b\n" \
        "smull %[t3].8h, v2.8b, v7.8b\n" \
        "smull %[t4].8h, v3.8b, v4.8b\n" \
        "smull %[t5].8h, v3.8b, v5.8b\n" \
        "smull %[t6].8h, v3.8b, v6.8b\n" \
        "smull %[t7].8h, v3.8b, v7.8b\n" \
        "smlal2 %[t0].8h, v2.16b, v4.16b\n" \
        "smlal2 %[t1].8h, v2.16b, v5.16b\n" \
        "smlal2 %[t2].8h, v2.16b, v6.16b\n" \
        "smlal2 %[t3].8h, v2.16b, v7.16b\n" \
        "smlal2 %[t4].8h, v3.16b, v4.16b\n" \
        "smlal2 %[t5].8h, v3.16b, v5.16b\n" \
        "smlal2 %[t6].8h, v3.16b, v6.16b\n" \
        "smlal2 %[t7].8h, v3.16b, v7.16b\n" \
        "sadalp %[c20].4s, %[t0].8h\n" \
        "sadalp %[c21].4s, %[t1].8h\n" \
        "sadalp %[c22].4s, %[t2].8h\n" \
        "sadalp %[c23].4s, %[t3].8h\n" \
        "sadalp %[c30].4s, %[t4].8h\n" \
        "sadalp %[c31].4s, %[t5].8h\n" \
        "sadalp %[c32].4s, %[t6].8h\n" \
        "sadalp %[c33].4s, %[t7].8h\n"
#define EM_MLAL_OPS [c00] "+w"(c00), [c01] "+w"(c01), [c02] "+w"(c02), [c03] "+w"(c03), [c10] "+w"(c10), [c11] "+w"(c11), [c12] "+w"(c12), [c13] "+w"(c13), [c20] "+w"(c20), [c21] "+w"(c21), [c22] "+w"(c22), [c23] "+w"(c23), [c30] "+w"(c30), [c31] "+w"(c31), [c32] "+w"(c32), [c33] "+w"(c33), [t0] "=&w"(t0), [t1] "=&w"(t1), [t2] "=&w"(t2), [t3] "=&w"(t3), [t4] "=&w"(t4), [t5] "=&w"(t5), [t6] "=&w"(t6), [t7] "=&w"(t7), [w] "+r"(w), [x] "+r"(x)
#define EM_MLAL_CLOBBER "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "memory"

// 4 channels x 8 pixels. kp: multiple of 8 (the driver rounds the k slice up; the prepared
// weights and the panel are zero / padded there). Two groups per iteration: 96 arithmetic
// instructions, 4 ld1, subs and branch for 512 MAC.
void em_qukr_s8s8_neonmlal_4x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                               int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    const int8_t *x = (const int8_t *)panel;
    const long ws = 128;
    int32x4_t c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
    int16x8_t t0, t1, t2, t3, t4, t5, t6, t7;
    c00 = vdupq_n_s32(0); c01 = vdupq_n_s32(0); c02 = vdupq_n_s32(0); c03 = vdupq_n_s32(0); c10 = vdupq_n_s32(0); c11 = vdupq_n_s32(0); c12 = vdupq_n_s32(0); c13 = vdupq_n_s32(0); c20 = vdupq_n_s32(0); c21 = vdupq_n_s32(0); c22 = vdupq_n_s32(0); c23 = vdupq_n_s32(0); c30 = vdupq_n_s32(0); c31 = vdupq_n_s32(0); c32 = vdupq_n_s32(0); c33 = vdupq_n_s32(0);
    const int g = kp >> 3;
    long n = g >> 1;
    // the loop (n iterations of two groups), then one group if g is odd
    __asm__ volatile("cbz %[n], 2f\n"
                     "1:\n" EM_MLAL1 EM_MLAL1
                     "subs %[n], %[n], #1\n"
                     "b.ne 1b\n"
                     "2:\n"
                     "tbz %w[g], #0, 3f\n" EM_MLAL1
                     "3:\n"
                     : EM_MLAL_OPS, [n] "+r"(n)
                     : [ws] "r"(ws), [g] "r"(g)
                     : EM_MLAL_CLOBBER, "cc");
    (void)t0, (void)t1, (void)t2, (void)t3, (void)t4, (void)t5, (void)t6, (void)t7;
    int32x4_t r[8] = {vpaddq_s32(c00, c01), vpaddq_s32(c02, c03), vpaddq_s32(c10, c11),
                      vpaddq_s32(c12, c13), vpaddq_s32(c20, c21), vpaddq_s32(c22, c23),
                      vpaddq_s32(c30, c31), vpaddq_s32(c32, c33)};
    if (accumulate) {
        int32x4x4_t a = vld1q_s32_x4(acc), b = vld1q_s32_x4(acc + 16);
        for (int i = 0; i < 4; i++) r[i] = vaddq_s32(r[i], a.val[i]), r[4 + i] = vaddq_s32(r[4 + i], b.val[i]);
    }
    int32x4x4_t o0 = {{r[0], r[1], r[2], r[3]}}, o1 = {{r[4], r[5], r[6], r[7]}};
    vst1q_s32_x4(acc, o0);
    vst1q_s32_x4(acc + 16, o1);
}
#endif
