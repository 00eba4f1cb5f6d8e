// NEON int8 paths. neon: activations widened to int16 (uxtl), weights prepared once per 8-channel
// block as int16 [Kp][8] (em_qprep_s16_k1), smlal by lane into int32 (exact). neondot: sdot on
// the packed blocks directly; the activations are offset to s8 (u8 ^ 0x80 = u8 - 128, done when
// the panel is packed) and the driver adds 128 * rowsum[m] to the per-channel term, which makes
// the sum exactly the u8 x s8 one. Also the NEON requantisation row.
#pragma STDC FP_CONTRACT OFF
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_qinternal.h"

// Packed block [Kp/4][8][4] s8 -> [Kp][8] s16.
void em_qprep_s16_k1(int kp, const int8_t *blk, void *dst) {
    int16_t *d = (int16_t *)dst;
    for (int k = 0; k < kp; k++)
        for (int c = 0; c < 8; c++) d[(size_t)k * 8 + c] = blk[(size_t)(k >> 2) * 32 + c * 4 + (k & 3)];
}

// 8 channels x 8 pixels; panel EM_QP_K1 with NR = 8 (8 bytes per k).
void em_qukr_u8s8_neon_8x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                           int accumulate) {
    const int16_t *w = (const int16_t *)wblk;
    int32x4_t c[8][2];
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = vdupq_n_s32(0);
    for (int k = 0; k < kp; k++) {
        int16x8_t x = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(panel + (size_t)k * 8)));
        int16x8_t wv = vld1q_s16(w + (size_t)k * 8);
        int16x4_t xl = vget_low_s16(x);
#define CH(i)                                                                                      \
    c[i][0] = vmlal_laneq_s16(c[i][0], xl, wv, i);                                                 \
    c[i][1] = vmlal_high_laneq_s16(c[i][1], x, wv, i);
        CH(0) CH(1) CH(2) CH(3) CH(4) CH(5) CH(6) CH(7)
#undef CH
    }
    for (int i = 0; i < 8; i++) {
        if (accumulate) {
            c[i][0] = vaddq_s32(c[i][0], vld1q_s32(acc + i * 8));
            c[i][1] = vaddq_s32(c[i][1], vld1q_s32(acc + i * 8 + 4));
        }
        vst1q_s32(acc + i * 8, c[i][0]);
        vst1q_s32(acc + i * 8 + 4, c[i][1]);
    }
}

// 8 channels x 8 pixels; panel EM_QP_K4X with NR = 8 (32 bytes per group of 4 k).
__attribute__((target("dotprod"))) void em_qukr_u8s8_neondot_8x8(int kp, const void *wblk,
                                                                  const uint8_t *panel,
                                                                  int32_t *acc, int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    const int8_t *p = (const int8_t *)panel;
    int32x4_t c[8][2];
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = vdupq_n_s32(0);
    for (int g = 0; g < kp / 4; g++) {
        int8x16_t x0 = vld1q_s8(p + (size_t)g * 32), x1 = vld1q_s8(p + (size_t)g * 32 + 16);
        int8x16_t w0 = vld1q_s8(w + (size_t)g * 32), w1 = vld1q_s8(w + (size_t)g * 32 + 16);
#define CH(i, wv, l)                                                                               \
    c[i][0] = vdotq_laneq_s32(c[i][0], x0, wv, l);                                                 \
    c[i][1] = vdotq_laneq_s32(c[i][1], x1, wv, l);
        CH(0, w0, 0) CH(1, w0, 1) CH(2, w0, 2) CH(3, w0, 3)
        CH(4, w1, 0) CH(5, w1, 1) CH(6, w1, 2) CH(7, w1, 3)
#undef CH
    }
    for (int i = 0; i < 8; i++) {
        if (accumulate) {
            c[i][0] = vaddq_s32(c[i][0], vld1q_s32(acc + i * 8));
            c[i][1] = vaddq_s32(c[i][1], vld1q_s32(acc + i * 8 + 4));
        }
        vst1q_s32(acc + i * 8, c[i][0]);
        vst1q_s32(acc + i * 8 + 4, c[i][1]);
    }
}

// Requantisation row, 4 lanes: vcvtq_f32_s32, vmulq_f32 (+ residual vmulq_f32, vaddq_f32),
// vmaxnmq/vminnmq (clampf; maxnm gives the bound for NaN like the scalar code), vcvtnq_s32_f32
// (round half even), + z_out, clamp.
static inline int32x4_t rq4(int32x4_t a, float32x4_t vm, const uint8_t *res, int32x4_t vzr,
                            float32x4_t vrm, float32x4_t flo, float32x4_t fhi, int32x4_t vz,
                            int32x4_t vlo, int32x4_t vhi) {
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(a), vm);
    if (res) {
        uint8_t b[8] = {res[0], res[1], res[2], res[3], 0, 0, 0, 0};
        int32x4_t r = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vld1_u8(b)))));
        float32x4_t rv = vmulq_f32(vcvtq_f32_s32(vsubq_s32(r, vzr)), vrm);
        v = vaddq_f32(v, rv);
    }
    v = vminnmq_f32(vmaxnmq_f32(v, flo), fhi);
    int32x4_t y = vaddq_s32(vcvtnq_s32_f32(v), vz);
    return vminq_s32(vmaxq_s32(y, vlo), vhi);
}

void em_qrow_neon(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                  const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst) {
    const float32x4_t vm = vdupq_n_f32(mult), vrm = vdupq_n_f32(res_mult);
    const float32x4_t flo = vdupq_n_f32(-EM_QF_LIM), fhi = vdupq_n_f32(EM_QF_LIM);
    const int32x4_t vz = vdupq_n_s32(z_out), vlo = vdupq_n_s32(lo), vhi = vdupq_n_s32(255),
                    vzr = vdupq_n_s32(z_res);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        int32x4_t y0 = rq4(vld1q_s32(acc + i), vm, res ? res + i : NULL, vzr, vrm, flo, fhi, vz, vlo, vhi);
        int32x4_t y1 = rq4(vld1q_s32(acc + i + 4), vm, res ? res + i + 4 : NULL, vzr, vrm, flo, fhi,
                           vz, vlo, vhi);
        uint16x8_t h = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(y0)),
                                    vmovn_u32(vreinterpretq_u32_s32(y1)));
        vst1_u8(dst + i, vmovn_u16(h));
    }
    if (i < n)
        em_qrow_generic(acc + i, n - i, mult, z_out, lo, res ? res + i : NULL, z_res, res_mult,
                        dst + i);
}

// em_qrows_fn: the term added in place (int32), then em_qrow_neon on each row of the tile.
void em_qrows_neon(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                   const float *mults, int32_t z_out, int32_t lo, const uint8_t *res, size_t res_ld,
                   int32_t z_res, float res_mult, uint8_t *dst, size_t dst_ld) {
    for (int r = 0; r < rows; r++) {
        int32_t *a = acc + (size_t)r * ld_acc;
        const int32x4_t vt = vdupq_n_s32(terms[r]);
        int i = 0;
        for (; i + 4 <= n; i += 4) vst1q_s32(a + i, vaddq_s32(vld1q_s32(a + i), vt));
        for (; i < n; i++) a[i] += terms[r];
        em_qrow_neon(a, n, mults[r], z_out, lo, res ? res + (size_t)r * res_ld : NULL, z_res,
                     res_mult, dst + (size_t)r * dst_ld);
    }
}

// Rescaled add, 4 lanes: two vcvtq_f32_s32/vmulq_f32, one vaddq_f32, clampf (maxnm: NaN -> lo),
// vcvtnq_s32_f32, + z_out, clamp.
void em_qadd_row_neon(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                      float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out) {
    const float32x4_t am = vdupq_n_f32(a_mult), bm = vdupq_n_f32(b_mult);
    const float32x4_t flo = vdupq_n_f32(-EM_QF_LIM), fhi = vdupq_n_f32(EM_QF_LIM);
    const int32x4_t za = vdupq_n_s32(z_a), zb = vdupq_n_s32(z_b), vz = vdupq_n_s32(z_out),
                    vlo = vdupq_n_s32(lo), vhi = vdupq_n_s32(255);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t wa = vmovl_u8(vld1_u8(a + i)), wb = vmovl_u8(vld1_u8(b + i));
        int32x4_t y[2];
        for (int h = 0; h < 2; h++) {
            int32x4_t ia = vreinterpretq_s32_u32(vmovl_u16(h ? vget_high_u16(wa) : vget_low_u16(wa)));
            int32x4_t ib = vreinterpretq_s32_u32(vmovl_u16(h ? vget_high_u16(wb) : vget_low_u16(wb)));
            float32x4_t pa = vmulq_f32(vcvtq_f32_s32(vsubq_s32(ia, za)), am);
            float32x4_t pb = vmulq_f32(vcvtq_f32_s32(vsubq_s32(ib, zb)), bm);
            float32x4_t v = vminnmq_f32(vmaxnmq_f32(vaddq_f32(pa, pb), flo), fhi);
            int32x4_t t = vaddq_s32(vcvtnq_s32_f32(v), vz);
            y[h] = vminq_s32(vmaxq_s32(t, vlo), vhi);
        }
        uint16x8_t hv = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(y[0])), vmovn_u32(vreinterpretq_u32_s32(y[1])));
        vst1_u8(out + i, vmovn_u16(hv));
    }
    if (i < n) em_qadd_row_generic(a + i, z_a, a_mult, b + i, z_b, b_mult, n - i, z_out, lo, out + i);
}

// Quantise, 4 lanes: vmulq_f32, clampf (maxnm: NaN -> lo), vcvtnq_s32_f32, + z, clamp.
void em_qquant_row_neon(const float *x, int n, float inv_scale, int32_t z, uint8_t *out) {
    const float32x4_t vi = vdupq_n_f32(inv_scale);
    const float32x4_t flo = vdupq_n_f32(-EM_QF_LIM), fhi = vdupq_n_f32(EM_QF_LIM);
    const int32x4_t vz = vdupq_n_s32(z), v0 = vdupq_n_s32(0), vhi = vdupq_n_s32(255);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        int32x4_t y[2];
        for (int h = 0; h < 2; h++) {
            float32x4_t v = vmulq_f32(vld1q_f32(x + i + 4 * h), vi);
            v = vminnmq_f32(vmaxnmq_f32(v, flo), fhi);
            y[h] = vminq_s32(vmaxq_s32(vaddq_s32(vcvtnq_s32_f32(v), vz), v0), vhi);
        }
        uint16x8_t hv = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(y[0])), vmovn_u32(vreinterpretq_u32_s32(y[1])));
        vst1_u8(out + i, vmovn_u16(hv));
    }
    if (i < n) em_qquant_row_generic(x + i, n - i, inv_scale, z, out + i);
}
#endif
