// torchvision roi_align (csrc/ops/cpu/roi_align_kernel.cpp) and paste_masks_in_image
// (models/detection/roi_heads.py) for one image, in float32 with torchvision's operation order.
#include <math.h>
#include <stdlib.h>

#include "em_kernels.h"
#include "em_dispatch.h"
#include "em_interp.h"
#include "../em_internal.h"
#include "../em_roi_sample.h"

#pragma STDC FP_CONTRACT OFF

void em_roi_align_f32(const float *feat, int C, int H, int W, float spatial_scale,
                      int sampling_ratio, int aligned, const float *rois, int R,
                      const int32_t *out_index, int PH, int PW, float *out) {
    if (C <= 0 || H <= 0 || W <= 0 || PH <= 0 || PW <= 0) return;
    em_roi_sample_t stack[7 * 7 * 4 * 4];
    for (int r = 0; r < R; r++) {
        const float *b = rois + (size_t)r * 4;
        float offset = aligned ? 0.5f : 0.0f;
        float sw = b[0] * spatial_scale - offset, sh = b[1] * spatial_scale - offset;
        float ew = b[2] * spatial_scale - offset, eh = b[3] * spatial_scale - offset;
        float rw = ew - sw, rh = eh - sh;
        if (!aligned) {
            if (rw < 1.0f) rw = 1.0f;
            if (rh < 1.0f) rh = 1.0f;
        }
        float bh = rh / (float)PH, bw = rw / (float)PW;
        int gh = sampling_ratio > 0 ? sampling_ratio : (int)ceilf(rh / (float)PH);
        int gw = sampling_ratio > 0 ? sampling_ratio : (int)ceilf(rw / (float)PW);
        if (gh < 0) gh = 0;
        if (gw < 0) gw = 0;
        int cnt = gh * gw;
        float count = (float)(cnt > 1 ? cnt : 1);
        size_t nsamp = (size_t)PH * PW * gh * gw;
        em_roi_sample_t *pc = nsamp <= sizeof stack / sizeof stack[0] ? stack : malloc(nsamp * sizeof *pc);
        if (!pc) nsamp = 0; // out of memory: the roi reads as zeros rather than crashing
        size_t i = 0;
        if (pc)
            for (int ph = 0; ph < PH; ph++)
                for (int pw = 0; pw < PW; pw++)
                    for (int iy = 0; iy < gh; iy++) {
                        float y = sh + (float)ph * bh + (float)(iy + 0.5f) * bh / (float)gh;
                        for (int ix = 0; ix < gw; ix++) {
                            float x = sw + (float)pw * bw + (float)(ix + 0.5f) * bw / (float)gw;
                            pc[i++] = em_roi_sample(H, W, y, x);
                        }
                    }
        size_t slot = out_index ? (size_t)out_index[r] : (size_t)r;
        float *o = out + slot * (size_t)C * PH * PW;
        for (int c = 0; c < C; c++) {
            const float *f = feat + (size_t)c * H * W;
            size_t k = 0;
            for (int p = 0; p < PH * PW; p++) {
                float acc = 0.0f;
                for (int s = 0; s < cnt && nsamp; s++, k++) {
                    const em_roi_sample_t *q = &pc[k];
                    acc += q->w1 * f[q->p1] + q->w2 * f[q->p2] + q->w3 * f[q->p3] + q->w4 * f[q->p4];
                }
                o[(size_t)c * PH * PW + p] = acc / count;
            }
        }
        if (pc != stack) free(pc);
    }
}

// Integer box of paste_masks_in_image: expand_boxes by (M+2)/M about the centre in float32, then
// .to(int64) (truncation toward zero).
static void paste_box(const float box[4], int M, long *bx0, long *by0, long *bx1, long *by1) {
    float scale = (float)((double)(M + 2) / (double)M);
    float w_half = (box[2] - box[0]) * 0.5f, h_half = (box[3] - box[1]) * 0.5f;
    float x_c = (box[2] + box[0]) * 0.5f, y_c = (box[3] + box[1]) * 0.5f;
    w_half *= scale;
    h_half *= scale;
    float e[4] = {x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half};
    long v[4];
    for (int i = 0; i < 4; i++) {
        float t = e[i];
        // Clamp to a sane range first so that the conversion is defined for absurd boxes.
        if (!(t > -1e9f)) t = -1e9f;
        if (t > 1e9f) t = 1e9f;
        v[i] = (long)t;
    }
    *bx0 = v[0];
    *by0 = v[1];
    *bx1 = v[2];
    *by1 = v[3];
}

void em_paste_mask_region(const float box[4], int M, int imgH, int imgW, int *x0, int *y0, int *w,
                          int *h) {
    long bx0, by0, bx1, by1;
    paste_box(box, M, &bx0, &by0, &bx1, &by1);
    long xa = bx0 > 0 ? bx0 : 0, xb = bx1 + 1 < imgW ? bx1 + 1 : imgW;
    long ya = by0 > 0 ? by0 : 0, yb = by1 + 1 < imgH ? by1 + 1 : imgH;
    if (xa > imgW) xa = imgW;
    if (ya > imgH) ya = imgH;
    *x0 = (int)xa;
    *y0 = (int)ya;
    *w = xb > xa ? (int)(xb - xa) : 0;
    *h = yb > ya ? (int)(yb - ya) : 0;
}

// The region's rows split over the thread pool (em_parallel_for) for large regions: each pixel
// goes through the same operations whatever the split, so the bytes do not depend on the
// threads. The column sources and weights are made once, before the split.
enum { PASTE_CAP = 2048 };

typedef struct {
    const float *mask;
    int M, P, rx0, ry0, rw, cache;
    long bx0, by0, bw, bh;
    float thresh;
    const int *xi0, *xi1;
    const float *xl0, *xl1;
    uint8_t *region_out;
#if defined(__x86_64__)
    const float *pad; // the padded map, rows of 32 floats (AVX-512 rows), or NULL
#endif
} paste_ctx;

#if defined(__x86_64__)
void em_paste_row_avx512(const float *r0, const float *r1, const int *xi0, const int *xi1,
                         const float *xl0, const float *xl1, int rw, float wy0, float wy1,
                         float thresh, uint8_t *orow);
#endif

static void paste_rows(void *v, long y_lo, long y_hi) {
    const paste_ctx *j = (const paste_ctx *)v;
    const float *mask = j->mask;
    const int M = j->M, P = j->P, rx0 = j->rx0, ry0 = j->ry0, rw = j->rw, cache = j->cache;
    const long bx0 = j->bx0, by0 = j->by0, bw = j->bw, bh = j->bh;
    const float thresh = j->thresh;
#define PADV(yy, xx)                                                                                   \
    (((yy) >= 1 && (yy) <= M && (xx) >= 1 && (xx) <= M) ? mask[(size_t)((yy)-1) * M + ((xx)-1)] : 0.0f)
    for (long y = y_lo; y < y_hi; y++) {
        int a0, a1;
        float wy0, wy1;
        em_linear_src(P, bh, (long)(ry0 + y) - by0, &a0, &a1, &wy0, &wy1);
        uint8_t *orow = j->region_out + (size_t)y * rw;
#if defined(__x86_64__)
        if (j->pad) {
            em_paste_row_avx512(j->pad + (size_t)a0 * 32, j->pad + (size_t)a1 * 32, j->xi0, j->xi1,
                                j->xl0, j->xl1, rw, wy0, wy1, thresh, orow);
            continue;
        }
#endif
        for (int x = 0; x < rw; x++) {
            int c0, c1;
            float wx0, wx1;
            if (cache) {
                c0 = j->xi0[x];
                c1 = j->xi1[x];
                wx0 = j->xl0[x];
                wx1 = j->xl1[x];
            } else {
                em_linear_src(P, bw, (long)(rx0 + x) - bx0, &c0, &c1, &wx0, &wx1);
            }
            float t0 = PADV(a0, c0) * wx0 + PADV(a0, c1) * wx1;
            float t1 = PADV(a1, c0) * wx0 + PADV(a1, c1) * wx1;
            float v = t0 * wy0 + t1 * wy1;
            orow[x] = v > thresh ? 1 : 0;
        }
    }
#undef PADV
}

void em_paste_mask_f32(const float *mask, int M, const float box[4], int imgH, int imgW,
                       float thresh, uint8_t *region_out) {
    long bx0, by0, bx1, by1;
    paste_box(box, M, &bx0, &by0, &bx1, &by1);
    int rx0, ry0, rw, rh;
    em_paste_mask_region(box, M, imgH, imgW, &rx0, &ry0, &rw, &rh);
    if (rw <= 0 || rh <= 0) return;
    long bw = bx1 - bx0 + 1, bh = by1 - by0 + 1;
    if (bw < 1) bw = 1;
    if (bh < 1) bh = 1;
    int P = M + 2; // padded map: p(y, x) = mask[y-1][x-1] inside, 0 on the border
    int xi0[PASTE_CAP], xi1[PASTE_CAP];
    float xl0[PASTE_CAP], xl1[PASTE_CAP];
    int cache = rw <= PASTE_CAP;
    if (cache)
        for (int x = 0; x < rw; x++)
            em_linear_src(P, bw, (long)(rx0 + x) - bx0, &xi0[x], &xi1[x], &xl0[x], &xl1[x]);
    paste_ctx j = {mask, M, P, rx0, ry0, rw, cache, bx0, by0, bw, bh, thresh, xi0, xi1, xl0, xl1, region_out};
#if defined(__x86_64__)
    // AVX-512: the map padded once (PADV's values: 0 on the border) into rows of 32 floats
    float pad[32 * 32];
    j.pad = NULL;
    if (cache && P <= 32 && em_isa_current() >= EM_ISA_AVX512 && em_isa_current() <= EM_ISA_AVX512VNNI) {
        for (int yy = 0; yy < P; yy++)
            for (int xx = 0; xx < 32; xx++)
                pad[yy * 32 + xx] = yy >= 1 && yy <= M && xx >= 1 && xx <= M ? mask[(size_t)(yy - 1) * M + (xx - 1)] : 0.0f;
        j.pad = pad;
    }
#endif
    // ~4 K pixels per task at least (a pool hand-off costs a few microseconds)
    em_parallel_for(rh, rw >= 4096 ? 1 : 4096 / rw, paste_rows, &j);
}
