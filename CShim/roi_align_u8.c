// RoIAlign on uint8 feature maps (em_qkernels.h em_roi_align_u8_hwc) and the CHW -> HWC copy it
// reads. The int8 pipeline pools straight from its uint8 P2..P5 instead of dequantising whole
// maps to float: the maps are read in HWC so that the four taps of a sample point are four
// contiguous channel vectors, and every channel runs the float operations of em_roi_align_f32
// (ref/roi_paste.c) in the same order, so the result is bit-identical to the float round trip
// dequantise -> em_roi_align_f32 -> quantise. Element-wise over channels: the compiler's
// vectorisation cannot change a result, and FP contraction is off.
#pragma STDC FP_CONTRACT OFF
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "em_internal.h"
#include "em_qinternal.h"
#include "em_roi_sample.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

typedef struct {
    const uint8_t *in;
    int C;
    size_t HW;
    uint8_t *out;
} transpose_ctx;

enum { TP = 64, TC = 64 }; // pixel x channel tiles: rows of 64 bytes in and out

static void transpose_tiles(void *v, long t0, long t1) {
    const transpose_ctx *j = (const transpose_ctx *)v;
    const int C = j->C;
    const size_t HW = j->HW;
    for (size_t p0 = (size_t)t0 * TP; p0 < HW && p0 < (size_t)t1 * TP; p0 += TP) {
        size_t pn = HW - p0 < TP ? HW - p0 : TP;
        for (int c0 = 0; c0 < C; c0 += TC) {
            int cn = C - c0 < TC ? C - c0 : TC;
            for (size_t p = 0; p < pn; p++) {
                uint8_t *o = j->out + (p0 + p) * C + c0;
                const uint8_t *s = j->in + (size_t)c0 * HW + p0 + p;
                for (int c = 0; c < cn; c++) o[c] = s[(size_t)c * HW];
            }
        }
    }
}

// Pixel tiles split over the thread pool (a permutation: the bytes do not depend on the split).
void em_transpose_chw_hwc_u8(const uint8_t *in, int C, int H, int W, uint8_t *out) {
    if (!in || !out || C <= 0 || H <= 0 || W <= 0) return;
    transpose_ctx j = {in, C, (size_t)H * W, out};
    long tiles = (long)((j.HW + TP - 1) / TP), per = (long)TP * C;
    em_parallel_for(tiles, per >= 32768 ? 1 : 32768 / per, transpose_tiles, &j);
}

enum { CB = 256 }; // channels per accumulator block

void em_qroi_row_generic(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                         float w1, float w2, float w3, float w4, int32_t z, float s, int n,
                         float *acc) {
    for (int c = 0; c < n; c++) {
        float v1 = (float)((int32_t)f1[c] - z) * s;
        float v2 = (float)((int32_t)f2[c] - z) * s;
        float v3 = (float)((int32_t)f3[c] - z) * s;
        float v4 = (float)((int32_t)f4[c] - z) * s;
        acc[c] += w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
    }
}

typedef struct {
    const uint8_t *feat;
    int C, H, W;
    float s_in, spatial_scale, inv_out;
    int32_t z_in, z_out;
    int sampling_ratio;
    const float *rois;
    int R;
    const size_t *out_offset;
    int PH, PW;
    size_t cstride, ystride;
    uint8_t *out;
    int ntasks;
    volatile int failed;
} ualign_job;

#if defined(__aarch64__)
// aarch64: the bin average and its quantisation 8 channels at a time (vdivq_f32: the same IEEE
// division as acc / count; then em_qquant_row_neon's operations: fmul by 1 / s_out, clampf with
// maxnm/minnm, fcvtns, + z, clamp to [0, 255]) and the 8 bytes stored straight to their strided
// places (st1 of one lane, post-indexed by cstride: one instruction per byte) instead of a
// quantised row then a scalar scatter.
static void finish_bin_neon(float *acc, int cn, float count, float inv, int32_t z, uint8_t *ob,
                            size_t cstride) {
    const float32x4_t vc = vdupq_n_f32(count), vi = vdupq_n_f32(inv);
    const float32x4_t flo = vdupq_n_f32(-EM_QF_LIM), fhi = vdupq_n_f32(EM_QF_LIM);
    const int32x4_t vz = vdupq_n_s32(z), v0 = vdupq_n_s32(0), vhi = vdupq_n_s32(255);
    int c = 0;
    for (; c + 8 <= cn; c += 8) {
        int32x4_t y[2];
        for (int h = 0; h < 2; h++) {
            float32x4_t v = vmulq_f32(vdivq_f32(vld1q_f32(acc + c + 4 * h), vc), vi);
            v = vminnmq_f32(vmaxnmq_f32(v, flo), fhi);
            y[h] = vminq_s32(vmaxq_s32(vaddq_s32(vcvtnq_s32_f32(v), vz), v0), vhi);
        }
        uint8x8_t q = vmovn_u16(vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(y[0])),
                                             vmovn_u32(vreinterpretq_u32_s32(y[1]))));
        // (clang splits vst1_lane_u8 + pointer adds into mov/str/add: assembly keeps one st1 each)
        __asm__("st1 {%[q].b}[0], [%[o]], %[s]\n"
                "st1 {%[q].b}[1], [%[o]], %[s]\n"
                "st1 {%[q].b}[2], [%[o]], %[s]\n"
                "st1 {%[q].b}[3], [%[o]], %[s]\n"
                "st1 {%[q].b}[4], [%[o]], %[s]\n"
                "st1 {%[q].b}[5], [%[o]], %[s]\n"
                "st1 {%[q].b}[6], [%[o]], %[s]\n"
                "st1 {%[q].b}[7], [%[o]], %[s]\n"
                : [o] "+r"(ob)
                : [q] "w"(q), [s] "r"(cstride)
                : "memory");
    }
    if (c < cn) {
        uint8_t qb[8];
        for (int i = c; i < cn; i++) acc[i] = acc[i] / count;
        em_qquant_row_neon(acc + c, cn - c, inv, z, qb);
        for (int i = 0; i < cn - c; i++, ob += cstride) *ob = qb[i];
    }
}
#endif

static int align_rois(const ualign_job *j, int r0, int r1) {
    const int C = j->C, H = j->H, W = j->W, PH = j->PH, PW = j->PW;
    const float s_in = j->s_in;
    const int32_t z_in = j->z_in;
    const em_qgemm_params *P = em_qgemm_params_current();
    em_roi_sample_t stack[14 * 14 * 4];
    float acc[CB];
    uint8_t qb[CB];
    for (int r = r0; r < r1; r++) {
        const float *b = j->rois + (size_t)r * 4;
        float sw = b[0] * j->spatial_scale, sh = b[1] * j->spatial_scale;
        float ew = b[2] * j->spatial_scale, eh = b[3] * j->spatial_scale;
        float rw = ew - sw, rh = eh - sh;
        if (rw < 1.0f) rw = 1.0f;
        if (rh < 1.0f) rh = 1.0f;
        float bh = rh / (float)PH, bw = rw / (float)PW;
        int gh = j->sampling_ratio, gw = j->sampling_ratio;
        if (gh <= 0) { // adaptive (torchvision sampling_ratio <= 0), as em_roi_align_f32
            gh = (int)ceilf(rh / (float)PH);
            gw = (int)ceilf(rw / (float)PW);
            if (gh < 0) gh = 0;
            if (gw < 0) gw = 0;
        }
        int cnt = gh * gw;
        float count = (float)(cnt > 1 ? cnt : 1);
        size_t nsamp = (size_t)PH * PW * gh * gw;
        em_roi_sample_t *pc = nsamp <= sizeof stack / sizeof stack[0] ? stack : malloc(nsamp * sizeof *pc);
        if (!pc) return -1;
        size_t i = 0;
        for (int ph = 0; ph < PH; ph++)
            for (int pw = 0; pw < PW; pw++)
                for (int iy = 0; iy < gh; iy++) {
                    float y = sh + (float)ph * bh + (float)(iy + 0.5f) * bh / (float)gh;
                    for (int ix = 0; ix < gw; ix++) {
                        float x = sw + (float)pw * bw + (float)(ix + 0.5f) * bw / (float)gw;
                        em_roi_sample_t s = em_roi_sample(H, W, y, x);
                        s.p1 *= C, s.p2 *= C, s.p3 *= C, s.p4 *= C;
                        pc[i++] = s;
                    }
                }
        uint8_t *o = j->out + j->out_offset[r];
        for (int c0 = 0; c0 < C; c0 += CB) {
            const int cn = C - c0 < CB ? C - c0 : CB;
            const uint8_t *f = j->feat + c0;
            size_t k = 0;
            for (int ph = 0; ph < PH; ph++)
                for (int pw = 0; pw < PW; pw++) {
                    for (int c = 0; c < cn; c++) acc[c] = 0.0f;
                    for (int s = 0; s < cnt; s++, k++) {
                        const em_roi_sample_t *q = &pc[k];
                        P->roi_row(f + q->p1, f + q->p2, f + q->p3, f + q->p4, q->w1, q->w2, q->w3,
                                   q->w4, z_in, s_in, cn, acc);
                    }
                    // the bin average, quantised as em_quantize_f32_u8 does (x * (1 / s_out))
                    uint8_t *ob = o + (size_t)c0 * j->cstride + (size_t)ph * j->ystride + pw;
#if defined(__aarch64__)
                    finish_bin_neon(acc, cn, count, j->inv_out, j->z_out, ob, j->cstride);
                    (void)qb;
#else
                    for (int c = 0; c < cn; c++) acc[c] = acc[c] / count;
                    P->quant_row(acc, cn, j->inv_out, j->z_out, qb);
                    for (int c = 0; c < cn; c++) ob[(size_t)c * j->cstride] = qb[c];
#endif
                }
        }
        if (pc != stack) free(pc);
    }
    return 0;
}

static void align_task(void *ctx, int t) {
    ualign_job *j = (ualign_job *)ctx;
    int n = j->ntasks;
    int r0, r1;
    em_task_range(j->R, t, n, &r0, &r1);
    if (align_rois(j, r0, r1) != 0) j->failed = 1;
}

int em_roi_align_u8_hwc(const uint8_t *feat, int C, int H, int W, float s_in, int32_t z_in,
                        float spatial_scale, int sampling_ratio, const float *rois, int R,
                        const size_t *out_offset, int PH, int PW, size_t cstride, size_t ystride,
                        float s_out, int32_t z_out, uint8_t *out) {
    if (!feat || !rois || !out_offset || !out || C <= 0 || H <= 0 || W <= 0 || R < 0 ||
        PH <= 0 || PW <= 0 || !(s_out > 0.0f))
        return -1;
    if (R == 0) return 0;
    ualign_job j = {feat, C, H, W, s_in, spatial_scale, 1.0f / s_out, z_in, z_out,
                    sampling_ratio, rois, R, out_offset, PH, PW, cstride, ystride, out, 1, 0};
    int nth = em_num_threads();
    if (nth > R) nth = R;
    if (nth <= 1) return align_rois(&j, 0, R);
    j.ntasks = nth;
    em_parallel(nth, align_task, &j);
    return j.failed ? -1 : 0;
}
