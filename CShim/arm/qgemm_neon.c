// Baseline-NEON rows of the int8 path, shared by every aarch64 ISA (neon, neondot, neoi8mm): the
// requantisation row and tile, the rescaled add row and the quantisation row. The micro-kernels
// are in qgemm_neon_mlal.c (neon), qgemm_neondot.c (dotprod) and qgemm_neoi8mm.c (i8mm).
#pragma STDC FP_CONTRACT OFF
#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>

#include "../em_qinternal.h"

// Requantisation of 8 accumulators (term already added): vcvtq_f32_s32, vmulq_f32 (+ residual
// vcvtq_f32_s32/vmulq_f32, vaddq_f32), vmaxnmq/vminnmq (clampf; maxnm gives the bound for NaN like
// the scalar code), vcvtnq_s32_f32 (round half even), + z_out, then the clamp to [lo, 255] as
// saturating narrows (to [0, 255]) and a max with lo: the scalar clamp, exactly.
typedef struct {
    float32x4_t flo, fhi, vrm;
    int32x4_t vz, vzr;
    uint8x8_t vlo;
} rq_consts;

static inline rq_consts rq_setup(int32_t z_out, int32_t lo, int32_t z_res, float res_mult) {
    rq_consts k = {vdupq_n_f32(-EM_QF_LIM), vdupq_n_f32(EM_QF_LIM), vdupq_n_f32(res_mult),
                   vdupq_n_s32(z_out), vdupq_n_s32(z_res), vdup_n_u8((uint8_t)lo)};
    return k;
}

static inline uint8x8_t rq8(const rq_consts *k, int32x4_t a0, int32x4_t a1, float32x4_t vm,
                            const uint8_t *res) {
    float32x4_t v0 = vmulq_f32(vcvtq_f32_s32(a0), vm), v1 = vmulq_f32(vcvtq_f32_s32(a1), vm);
    if (res) {
        uint16x8_t r = vmovl_u8(vld1_u8(res));
        int32x4_t r0 = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(r)));
        int32x4_t r1 = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(r)));
        v0 = vaddq_f32(v0, vmulq_f32(vcvtq_f32_s32(vsubq_s32(r0, k->vzr)), k->vrm));
        v1 = vaddq_f32(v1, vmulq_f32(vcvtq_f32_s32(vsubq_s32(r1, k->vzr)), k->vrm));
    }
    v0 = vminnmq_f32(vmaxnmq_f32(v0, k->flo), k->fhi);
    v1 = vminnmq_f32(vmaxnmq_f32(v1, k->flo), k->fhi);
    int32x4_t y0 = vaddq_s32(vcvtnq_s32_f32(v0), k->vz), y1 = vaddq_s32(vcvtnq_s32_f32(v1), k->vz);
    uint8x8_t y = vqmovn_u16(vcombine_u16(vqmovun_s32(y0), vqmovun_s32(y1)));
    return vmax_u8(y, k->vlo);
}

void em_qrow_neon(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                  const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst) {
    const rq_consts k = rq_setup(z_out, lo, z_res, res_mult);
    const float32x4_t vm = vdupq_n_f32(mult);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        vst1_u8(dst + i, rq8(&k, vld1q_s32(acc + i), vld1q_s32(acc + i + 4), vm, res ? res + i : NULL));
    if (i < n)
        em_qrow_generic(acc + i, n - i, mult, z_out, lo, res ? res + i : NULL, z_res, res_mult,
                        dst + i);
}

// One row of 8 accumulators (term already added) without the clampf step: valid when the
// products are never NaN (finite mult, res_mult below 2^100: see em_qrows_neon). Then clampf only
// moves values beyond +-2^24, which the clamp to [lo, 255] maps to the same bound as the
// saturating conversion (fcvtns saturates to int32) and the saturating + z_out do.
static inline uint8x8_t rq8_fast(int32x4_t a0, int32x4_t a1, float32x4_t vm, const uint8_t *res,
                                 int32x4_t vzr, float32x4_t vrm, int32x4_t vz, uint8x8_t vlo) {
    float32x4_t v0 = vmulq_f32(vcvtq_f32_s32(a0), vm), v1 = vmulq_f32(vcvtq_f32_s32(a1), vm);
    if (res) {
        int16x8_t r = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(res)));
        v0 = vaddq_f32(v0, vmulq_f32(vcvtq_f32_s32(vsubq_s32(vmovl_s16(vget_low_s16(r)), vzr)), vrm));
        v1 = vaddq_f32(v1, vmulq_f32(vcvtq_f32_s32(vsubq_s32(vmovl_high_s16(r), vzr)), vrm));
    }
    int32x4_t y0 = vqaddq_s32(vcvtnq_s32_f32(v0), vz), y1 = vqaddq_s32(vcvtnq_s32_f32(v1), vz);
    return vmax_u8(vqmovn_u16(vqmovun_high_s32(vqmovun_s32(y0), y1)), vlo);
}

// The general rows (any n, any multipliers): rq8 with clampf, the scalar row for the tail.
__attribute__((noinline)) static void rows_general(int32_t *acc, int ld_acc, int rows, int n,
                                                   const int32_t *terms, const float *mults,
                                                   int32_t z_out, int32_t lo, const uint8_t *res,
                                                   size_t res_ld, int32_t z_res, float res_mult,
                                                   uint8_t *dst, size_t dst_ld) {
    const rq_consts k = rq_setup(z_out, lo, z_res, res_mult);
    for (int r = 0; r < rows; r++) {
        int32_t *a = acc + (size_t)r * ld_acc;
        const uint8_t *rr = res ? res + (size_t)r * res_ld : NULL;
        uint8_t *d = dst + (size_t)r * dst_ld;
        const int32x4_t vt = vdupq_n_s32(terms[r]);
        const float32x4_t vm = vdupq_n_f32(mults[r]);
        int i = 0;
        for (; i + 8 <= n; i += 8)
            vst1_u8(d + i, rq8(&k, vaddq_s32(vld1q_s32(a + i), vt), vaddq_s32(vld1q_s32(a + i + 4), vt),
                               vm, rr ? rr + i : NULL));
        if (i < n) {
            for (int t = i; t < n; t++) a[t] += terms[r];
            em_qrow_generic(a + i, n - i, mults[r], z_out, lo, rr ? rr + i : NULL, z_res, res_mult,
                            d + i);
        }
    }
}

// em_qrows_fn: per row, the term added in int32 and the row requantised, 8 at a time (the driver
// calls this once per 8 x NR tile). Whole 8 x 8 tiles (every aarch64 kernel's) whose |mult| and
// |res_mult| are below 2^100 take rq8_fast; anything else rows_general.
void em_qrows_neon(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                   const float *mults, int32_t z_out, int32_t lo, const uint8_t *res, size_t res_ld,
                   int32_t z_res, float res_mult, uint8_t *dst, size_t dst_ld) {
    const float big = 1.2676506e30f; // 2^100
    const float32x4_t vbig = vdupq_n_f32(big);
    if (n != 8 || rows != 8 || (res && !(fabsf(res_mult) < big)) ||
        vminvq_u32(vandq_u32(vcaltq_f32(vld1q_f32(mults), vbig), vcaltq_f32(vld1q_f32(mults + 4), vbig))) == 0) {
        rows_general(acc, ld_acc, rows, n, terms, mults, z_out, lo, res, res_ld, z_res, res_mult,
                     dst, dst_ld);
        return;
    }
    const int32x4_t vz = vdupq_n_s32(z_out), vzr = vdupq_n_s32(z_res);
    const float32x4_t vrm = vdupq_n_f32(res_mult);
    const uint8x8_t vlo = vdup_n_u8((uint8_t)lo);
    for (int r = 0; r < 8; r++) {
        const int32_t *a = acc + (size_t)r * ld_acc;
        const int32x4_t vt = vdupq_n_s32(terms[r]);
        vst1_u8(dst + (size_t)r * dst_ld,
                rq8_fast(vaddq_s32(vld1q_s32(a), vt), vaddq_s32(vld1q_s32(a + 4), vt),
                         vdupq_n_f32(mults[r]), res ? res + (size_t)r * res_ld : NULL, vzr, vrm,
                         vz, vlo));
    }
}

// Rescaled add, 4 lanes: two vcvtq_f32_s32/vmulq_f32, one vaddq_f32, clampf (maxnm: NaN -> lo),
// vcvtnq_s32_f32, + z_out, clamp.
// 16 lanes when |a_mult|, |b_mult| < 2^100 (no NaN: the sum is finite), the zero points in
// [0, 255] and lo in [0, 255]: (float)(q - z) from tbl (float bits 2^23 + q, minus 2^23 + z,
// exact) times the multiplier, fadd, fcvtns, then saturating narrows, + z_out in int16, a
// saturating narrow to [0, 255] and a max with lo (em_rq_neon.h: the same byte as clampf, rint,
// + z_out, clamp to [lo, 255]).
static const uint8_t add_idx[4][16] = {
    {0, 16, 16, 17, 1, 16, 16, 17, 2, 16, 16, 17, 3, 16, 16, 17},
    {4, 16, 16, 17, 5, 16, 16, 17, 6, 16, 16, 17, 7, 16, 16, 17},
    {8, 16, 16, 17, 9, 16, 16, 17, 10, 16, 16, 17, 11, 16, 16, 17},
    {12, 16, 16, 17, 13, 16, 16, 17, 14, 16, 16, 17, 15, 16, 16, 17}};

static int add_row16(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                     float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out) {
    const float big = 1.2676506e30f; // 2^100
    if (n < 16 || !(fabsf(a_mult) < big) || !(fabsf(b_mult) < big) || z_a < 0 || z_a > 255 ||
        z_b < 0 || z_b > 255 || lo < 0 || lo > 255 || z_out < -32768 || z_out > 32767)
        return 0;
    const uint8x16_t i0 = vld1q_u8(add_idx[0]), i1 = vld1q_u8(add_idx[1]), i2 = vld1q_u8(add_idx[2]),
                     i3 = vld1q_u8(add_idx[3]), kc = vreinterpretq_u8_u16(vdupq_n_u16(0x4B00));
    const float32x4_t offa = vdupq_n_f32(8388608.0f + (float)z_a), offb = vdupq_n_f32(8388608.0f + (float)z_b);
    const float32x4_t am = vdupq_n_f32(a_mult), bm = vdupq_n_f32(b_mult);
    const int16x8_t vz = vdupq_n_s16((int16_t)z_out);
    const uint8x16_t vlo = vdupq_n_u8((uint8_t)lo);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        uint8x16x2_t ta = {{vld1q_u8(a + i), kc}}, tb = {{vld1q_u8(b + i), kc}};
        int32x4_t y[4];
        for (int k = 0; k < 4; k++) {
            const uint8x16_t ix = k == 0 ? i0 : k == 1 ? i1 : k == 2 ? i2 : i3;
            float32x4_t pa = vmulq_f32(vsubq_f32(vreinterpretq_f32_u8(vqtbl2q_u8(ta, ix)), offa), am);
            float32x4_t pb = vmulq_f32(vsubq_f32(vreinterpretq_f32_u8(vqtbl2q_u8(tb, ix)), offb), bm);
            y[k] = vcvtnq_s32_f32(vaddq_f32(pa, pb));
        }
        int16x8_t h0 = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(y[0]), y[1]), vz);
        int16x8_t h1 = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(y[2]), y[3]), vz);
        vst1q_u8(out + i, vmaxq_u8(vqmovun_high_s16(vqmovun_s16(h0), h1), vlo));
    }
    return i;
}

void em_qadd_row_neon(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                      float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out) {
    const float32x4_t am = vdupq_n_f32(a_mult), bm = vdupq_n_f32(b_mult);
    const float32x4_t flo = vdupq_n_f32(-EM_QF_LIM), fhi = vdupq_n_f32(EM_QF_LIM);
    const int32x4_t za = vdupq_n_s32(z_a), zb = vdupq_n_s32(z_b), vz = vdupq_n_s32(z_out),
                    vlo = vdupq_n_s32(lo), vhi = vdupq_n_s32(255);
    int i = add_row16(a, z_a, a_mult, b, z_b, b_mult, n, z_out, lo, out);
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
