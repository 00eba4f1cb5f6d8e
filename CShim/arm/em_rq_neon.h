// The aarch64 requantisation of one 8 x 8 accumulator tile (8 output channels x 8 pixels, row
// stride 8, every aarch64 kernel's tile), inlined into the GEMM driver's epilogue (qgemm.c) and
// used by em_qrows_neon (qgemm_neon.c). Per row: + term (int32), scvtf, fmul by the row's
// multiplier (+ the residual's (float)(r - z_res) * res_mult, fadd), fcvtns (round half to
// even, saturating), then saturating narrows to int16, a saturating + z_out in int16, a
// saturating narrow to [0, 255] and a max with lo. Equal to em_q_finish's clamp to +-2^24, rint,
// + z_out, clamp to [lo, 255] when no product can be NaN: the caller guarantees |mult| and
// |res_mult| below 2^100 (acc is a finite int32, so the product is finite or +-inf, and inf +
// finite is never NaN), lo in [0, 255] and z_out in [-32768, 32767]: a value beyond +-2^24 (or
// beyond the int16 range) lands on the same side of [lo, 255] either way.
#ifndef EM_RQ_NEON_H
#define EM_RQ_NEON_H
#pragma STDC FP_CONTRACT OFF
#if defined(__aarch64__)
#include <arm_neon.h>
#include <stdint.h>

// (float)(r - z_res) * res_mult for 8 residual bytes: tbl builds the float bits 0x4B0000rr
// (2^23 + r exactly), fsub of 2^23 + z_res is exact (small integers), fmul: the reference's float.
static const uint8_t em_rq_res_idx[2][16] = {
    {0, 16, 16, 17, 1, 16, 16, 17, 2, 16, 16, 17, 3, 16, 16, 17},
    {4, 16, 16, 17, 5, 16, 16, 17, 6, 16, 16, 17, 7, 16, 16, 17}};

typedef struct {
    int16x8_t vz;     // z_out
    uint8x16_t vlo;   // lo
    float32x4_t m0, m1; // the multipliers of rows 0..3 and 4..7
    // residual (res != NULL)
    const uint8_t *res;
    size_t res_ld;
    uint8x16_t ri0, ri1, kc;
    float32x4_t roff, rm;
} em_rq_tile;

static inline em_rq_tile em_rq_tile_setup(float32x4_t m0, float32x4_t m1, int32_t z_out,
                                          int32_t lo, const uint8_t *res, size_t res_ld,
                                          int32_t z_res, float res_mult) {
    em_rq_tile k;
    k.vz = vdupq_n_s16((int16_t)z_out);
    k.vlo = vdupq_n_u8((uint8_t)lo);
    k.m0 = m0;
    k.m1 = m1;
    k.res = res;
    k.res_ld = res_ld;
    if (res) {
        k.ri0 = vld1q_u8(em_rq_res_idx[0]);
        k.ri1 = vld1q_u8(em_rq_res_idx[1]);
        k.kc = vreinterpretq_u8_u16(vdupq_n_u16(0x4B00));
        k.roff = vdupq_n_f32(8388608.0f + (float)z_res);
        k.rm = vdupq_n_f32(res_mult);
    }
    return k;
}

// Row r of the tile (acc + 8 r) as 8 saturated int16 (before + z_out). `r` must be a constant.
#define EM_RQ_ROW(k, acc, terms, r)                                                              \
    ({                                                                                           \
        const int32x4_t t_ = vld1q_dup_s32((terms) + (r));                                       \
        float32x4_t f0_ = vcvtq_f32_s32(vaddq_s32(vld1q_s32((acc) + 8 * (r)), t_));               \
        float32x4_t f1_ = vcvtq_f32_s32(vaddq_s32(vld1q_s32((acc) + 8 * (r) + 4), t_));           \
        f0_ = (r) < 4 ? vmulq_laneq_f32(f0_, (k)->m0, (r) & 3) : vmulq_laneq_f32(f0_, (k)->m1, (r) & 3); \
        f1_ = (r) < 4 ? vmulq_laneq_f32(f1_, (k)->m0, (r) & 3) : vmulq_laneq_f32(f1_, (k)->m1, (r) & 3); \
        if ((k)->res) {                                                                          \
            uint8x16x2_t b_ = {{vcombine_u8(vld1_u8((k)->res + (size_t)(r) * (k)->res_ld),        \
                                            vdup_n_u8(0)), (k)->kc}};                            \
            float32x4_t r0_ = vsubq_f32(vreinterpretq_f32_u8(vqtbl2q_u8(b_, (k)->ri0)), (k)->roff); \
            float32x4_t r1_ = vsubq_f32(vreinterpretq_f32_u8(vqtbl2q_u8(b_, (k)->ri1)), (k)->roff); \
            f0_ = vaddq_f32(f0_, vmulq_f32(r0_, (k)->rm));                                       \
            f1_ = vaddq_f32(f1_, vmulq_f32(r1_, (k)->rm));                                       \
        }                                                                                        \
        vqmovn_high_s32(vqmovn_s32(vcvtnq_s32_f32(f0_)), vcvtnq_s32_f32(f1_));                   \
    })

// Rows 2p and 2p + 1 requantised: bytes 0..7 row 2p, 8..15 row 2p + 1.
#define EM_RQ_PAIR(k, acc, terms, p)                                                             \
    ({                                                                                           \
        int16x8_t a_ = vqaddq_s16(EM_RQ_ROW(k, acc, terms, 2 * (p)), (k)->vz);                   \
        int16x8_t b_ = vqaddq_s16(EM_RQ_ROW(k, acc, terms, 2 * (p) + 1), (k)->vz);               \
        vmaxq_u8(vqmovun_high_s16(vqmovun_s16(a_), b_), (k)->vlo);                               \
    })

// The whole tile: q[p] holds rows 2p (low half) and 2p + 1 (high half).
static inline void em_rq_tile8(const em_rq_tile *k, const int32_t *acc, const int32_t *terms,
                               uint8x16_t q[4]) {
    q[0] = EM_RQ_PAIR(k, acc, terms, 0);
    q[1] = EM_RQ_PAIR(k, acc, terms, 1);
    q[2] = EM_RQ_PAIR(k, acc, terms, 2);
    q[3] = EM_RQ_PAIR(k, acc, terms, 3);
}

// |m| < 2^100 for the n multipliers (and not NaN): the condition of the tile above.
static inline int em_rq_mults_small(const float *m, int n) {
    const float big = 1.2676506e30f; // 2^100
    for (int i = 0; i < n; i++)
        if (!(m[i] < big && m[i] > -big)) return 0;
    return 1;
}
#endif
#endif
