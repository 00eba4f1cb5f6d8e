// NEON rows of the uint8 RoIAlign and of the dequantisation (em_qroi_row_fn, em_qdequant_row_fn):
// 16 (RoIAlign) or 8 (dequantisation) channels per step, the generic rows' operations in the
// generic rows' order (the exact float of q - z, fmul, fadd; no FMA), so the results are
// identical to the C reference.
// Baseline NEON: used by every aarch64 ISA. Mirrors CShim/x86/qroi_avx2.c.
#pragma STDC FP_CONTRACT OFF
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_qinternal.h"

// (float)(q - z) * s for 8 bytes: two float32x4.
static inline void deq8(const uint8_t *p, int32x4_t vz, float32x4_t vs, float32x4_t *lo,
                        float32x4_t *hi) {
    uint16x8_t h = vmovl_u8(vld1_u8(p));
    int32x4_t a = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(h)));
    int32x4_t b = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(h)));
    *lo = vmulq_f32(vcvtq_f32_s32(vsubq_s32(a, vz)), vs);
    *hi = vmulq_f32(vcvtq_f32_s32(vsubq_s32(b, vz)), vs);
}

// (float)(q - z) * s for 16 bytes, as four float32x4: tbl builds the float bits 0x4B0000qq
// (= 2^23 + q exactly) from the bytes and two constants (table index 16: 0x00, 17: 0x4B), fsub of
// 2^23 + z gives q - z exactly (small integers), fmul by s: the same float as the reference's
// (float)(q - z) * s. 4 tbl + 4 fsub + 4 fmul for 16 values where widening takes 6 + 4 + 4 + 4.
static const uint8_t roi_idx[4][16] = {
    {0, 16, 16, 17, 1, 16, 16, 17, 2, 16, 16, 17, 3, 16, 16, 17},
    {4, 16, 16, 17, 5, 16, 16, 17, 6, 16, 16, 17, 7, 16, 16, 17},
    {8, 16, 16, 17, 9, 16, 16, 17, 10, 16, 16, 17, 11, 16, 16, 17},
    {12, 16, 16, 17, 13, 16, 16, 17, 14, 16, 16, 17, 15, 16, 16, 17}};

static inline void deq16(uint8x16_t q, uint8x16_t kc, const uint8x16_t idx[4], float32x4_t off,
                         float32x4_t vs, float32x4_t v[4]) {
    uint8x16x2_t t = {{q, kc}};
    for (int i = 0; i < 4; i++)
        v[i] = vmulq_f32(vsubq_f32(vreinterpretq_f32_u8(vqtbl2q_u8(t, idx[i])), off), vs);
}

void em_qroi_row_neon(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                      float w1, float w2, float w3, float w4, int32_t z, float s, int n,
                      float *acc) {
    int c = 0;
    if (n >= 16 && z >= 0 && z <= 255) {
        const uint8x16_t idx[4] = {vld1q_u8(roi_idx[0]), vld1q_u8(roi_idx[1]), vld1q_u8(roi_idx[2]),
                                   vld1q_u8(roi_idx[3])};
        const uint8x16_t kc = vreinterpretq_u8_u16(vdupq_n_u16(0x4B00));
        const float32x4_t off = vdupq_n_f32(8388608.0f + (float)z), vs = vdupq_n_f32(s);
        const float32x4_t wv = {w1, w2, w3, w4};
        for (; c + 16 <= n; c += 16) {
            float32x4_t v1[4], v2[4], v3[4], v4[4];
            deq16(vld1q_u8(f1 + c), kc, idx, off, vs, v1);
            deq16(vld1q_u8(f2 + c), kc, idx, off, vs, v2);
            deq16(vld1q_u8(f3 + c), kc, idx, off, vs, v3);
            deq16(vld1q_u8(f4 + c), kc, idx, off, vs, v4);
            float32x4x4_t a = vld1q_f32_x4(acc + c);
            for (int i = 0; i < 4; i++) {
                float32x4_t t = vaddq_f32(vmulq_laneq_f32(v1[i], wv, 0), vmulq_laneq_f32(v2[i], wv, 1));
                t = vaddq_f32(t, vmulq_laneq_f32(v3[i], wv, 2));
                t = vaddq_f32(t, vmulq_laneq_f32(v4[i], wv, 3));
                a.val[i] = vaddq_f32(a.val[i], t);
            }
            vst1q_f32_x4(acc + c, a);
        }
    }
    if (c < n)
        em_qroi_row_generic(f1 + c, f2 + c, f3 + c, f4 + c, w1, w2, w3, w4, z, s, n - c, acc + c);
}

void em_qdequant_row_neon(const uint8_t *q, int n, float scale, int32_t z, float *out) {
    const int32x4_t vz = vdupq_n_s32(z);
    const float32x4_t vs = vdupq_n_f32(scale);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t lo, hi;
        deq8(q + i, vz, vs, &lo, &hi);
        vst1q_f32(out + i, lo);
        vst1q_f32(out + i + 4, hi);
    }
    if (i < n) em_qdequant_row_generic(q + i, n - i, scale, z, out + i);
}
#endif
