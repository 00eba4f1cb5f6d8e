// NEON rows of the uint8 RoIAlign and of the dequantisation (em_qroi_row_fn, em_qdequant_row_fn):
// 8 channels per step, the generic rows' operations in the generic rows' order (ucvtf after the
// zero-point subtraction, fmul, fadd; no FMA), so the results are identical to the C reference.
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

void em_qroi_row_neon(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                      float w1, float w2, float w3, float w4, int32_t z, float s, int n,
                      float *acc) {
    const int32x4_t vz = vdupq_n_s32(z);
    const float32x4_t vs = vdupq_n_f32(s), a1 = vdupq_n_f32(w1), a2 = vdupq_n_f32(w2),
                      a3 = vdupq_n_f32(w3), a4 = vdupq_n_f32(w4);
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        float32x4_t v1l, v1h, v2l, v2h, v3l, v3h, v4l, v4h;
        deq8(f1 + c, vz, vs, &v1l, &v1h);
        deq8(f2 + c, vz, vs, &v2l, &v2h);
        deq8(f3 + c, vz, vs, &v3l, &v3h);
        deq8(f4 + c, vz, vs, &v4l, &v4h);
        float32x4_t tl = vaddq_f32(vmulq_f32(a1, v1l), vmulq_f32(a2, v2l));
        float32x4_t th = vaddq_f32(vmulq_f32(a1, v1h), vmulq_f32(a2, v2h));
        tl = vaddq_f32(tl, vmulq_f32(a3, v3l));
        th = vaddq_f32(th, vmulq_f32(a3, v3h));
        tl = vaddq_f32(tl, vmulq_f32(a4, v4l));
        th = vaddq_f32(th, vmulq_f32(a4, v4h));
        vst1q_f32(acc + c, vaddq_f32(vld1q_f32(acc + c), tl));
        vst1q_f32(acc + c + 4, vaddq_f32(vld1q_f32(acc + c + 4), th));
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
