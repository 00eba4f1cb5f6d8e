// The small float ops of em_kernels.h (one plain implementation each; they are memory-bound and
// cheap next to the convolutions). Arithmetic follows torch/torchvision operation by operation
// (float32, same order), see /work/shared/notes/formats.md section 7.
#include <math.h>
#include <string.h>

#include "em_kernels.h"
#include "em_interp.h"
#include "../em_internal.h"
#include "../em_qinternal.h"

#pragma STDC FP_CONTRACT OFF

void em_maxpool2d_f32(const float *in, int C, int H, int W, int k, int stride, int pad, float *out) {
    int OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    if (OH <= 0 || OW <= 0) return;
    for (int c = 0; c < C; c++) {
        const float *p = in + (size_t)c * H * W;
        float *o = out + (size_t)c * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = oy * stride - pad, y1 = y0 + k;
            if (y0 < 0) y0 = 0;
            if (y1 > H) y1 = H;
            for (int ox = 0; ox < OW; ox++) {
                int x0 = ox * stride - pad, x1 = x0 + k;
                if (x0 < 0) x0 = 0;
                if (x1 > W) x1 = W;
                float m = -INFINITY;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        float v = p[(size_t)y * W + x];
                        if (v > m || v != v) m = v; // torch propagates NaN
                    }
                o[(size_t)oy * OW + ox] = m;
            }
        }
    }
}

// torch nearest (legacy "nearest" mode): scale = (float)in / out, src = min(floor(dst * scale), in - 1).
static inline int nearest_src(int dst, float scale, int in) {
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void em_upsample_nearest_add_f32(const float *top, int C, int TH, int TW, float *inout, int H,
                                 int W) {
    if (H <= 0 || W <= 0 || TH <= 0 || TW <= 0) return;
    float sh = (float)TH / (float)H, sw = (float)TW / (float)W;
    int xs_stack[1024];
    int *xs = W <= 1024 ? xs_stack : NULL;
    for (int c = 0; c < C; c++) {
        const float *t = top + (size_t)c * TH * TW;
        float *o = inout + (size_t)c * H * W;
        for (int y = 0; y < H; y++) {
            const float *tr = t + (size_t)nearest_src(y, sh, TH) * TW;
            float *orow = o + (size_t)y * W;
            if (xs) {
                if (c == 0 && y == 0)
                    for (int x = 0; x < W; x++) xs[x] = nearest_src(x, sw, TW);
                for (int x = 0; x < W; x++) orow[x] += tr[xs[x]];
            } else {
                for (int x = 0; x < W; x++) orow[x] += tr[nearest_src(x, sw, TW)];
            }
        }
    }
}

void em_normalize_rgb8_f32(const uint8_t *rgb, int H, int W, const float mean[3],
                           const float std[3], float *out) {
    size_t n = (size_t)H * W;
    for (int c = 0; c < 3; c++) {
        float m = mean[c], s = std[c];
        float *o = out + (size_t)c * n;
        for (size_t i = 0; i < n; i++) o[i] = ((float)rgb[i * 3 + c] / 255.0f - m) / s;
    }
}

// torch's linear interpolation weights for one axis (em_interp.h's rule at every index).
static void linear_axis(int in, int out, int *i0, int *i1, float *l0, float *l1) {
    for (int d = 0; d < out; d++) em_linear_src(in, out, d, &i0[d], &i1[d], &l0[d], &l1[d]);
}

// One output value: interpolate along x in rows i0 and i1 first, then along y (torch's order).
static inline float bilerp(const float *p, int W, int y0, int y1, float wy0, float wy1, int x0,
                           int x1, float wx0, float wx1) {
    float t0 = p[(size_t)y0 * W + x0] * wx0 + p[(size_t)y0 * W + x1] * wx1;
    float t1 = p[(size_t)y1 * W + x0] * wx0 + p[(size_t)y1 * W + x1] * wx1;
    return t0 * wy0 + t1 * wy1;
}

enum { NRP_CAP = 4096 }; // output columns up to which the x axis is tabulated and rows cached

typedef struct {
    const uint8_t *rgb;
    int H, W, OH, OW, PH, PW, tab;
    const float (*lut)[256];
    const int *xi0, *xi1;
    const float *xl0, *xl1;
    float *out;
    // uint8 output (em_normalize_resize_pad_rgb8_u8): each float row quantised by the ISA's
    // quant_row as em_quantize_f32_u8 would quantise it (out is then NULL)
    uint8_t *qout;
    float inv;
    int32_t z;
    const em_qgemm_params *P;
} nrp_ctx;

// Source row sy of channel c interpolated along x into h[0..OW): t[x0] * wx0 + t[x1] * wx1, the
// first step of every output value of that source row (tabulated x axis).
static void nrp_hrow(const nrp_ctx *j, int c, int sy, float *h) {
    const float *t = j->lut[c];
    const uint8_t *ra = j->rgb + (size_t)sy * j->W * 3 + c;
    const int *xi0 = j->xi0, *xi1 = j->xi1;
    const float *xl0 = j->xl0, *xl1 = j->xl1;
    for (int x = 0; x < j->OW; x++)
        h[x] = t[ra[(size_t)xi0[x] * 3]] * xl0[x] + t[ra[(size_t)xi1[x] * 3]] * xl1[x];
}

// Output row y of channel c (float, PW values, padded) into o; with the tabulated x axis the two
// x-interpolated source rows come from a two-row cache (key c * H + sy; neighbouring output rows
// share source rows), else each value is computed as before. Same operations either way.
static void nrp_row(const nrp_ctx *j, int c, int y, float *o, float (*hb)[NRP_CAP], long *key) {
    const int H = j->H, W = j->W, OH = j->OH, OW = j->OW, PW = j->PW;
    if (y >= OH) {
        memset(o, 0, (size_t)PW * sizeof(float));
        return;
    }
    int y0, y1;
    float wy0, wy1;
    em_linear_src(H, OH, y, &y0, &y1, &wy0, &wy1);
    if (j->tab) {
        const long k0 = (long)c * H + y0, k1 = (long)c * H + y1;
        int s0 = key[0] == k0 ? 0 : key[1] == k0 ? 1 : -1;
        if (s0 < 0) { // evict the other row's slot never; else the older (smaller key)
            s0 = key[0] == k1 ? 1 : key[1] == k1 ? 0 : key[0] < key[1] ? 0 : 1;
            nrp_hrow(j, c, y0, hb[s0]);
            key[s0] = k0;
        }
        int s1 = key[0] == k1 ? 0 : key[1] == k1 ? 1 : -1;
        if (s1 < 0) {
            s1 = 1 - s0;
            nrp_hrow(j, c, y1, hb[s1]);
            key[s1] = k1;
        }
        const float *t0 = hb[s0], *t1 = hb[s1];
        for (int x = 0; x < OW; x++) o[x] = t0[x] * wy0 + t1[x] * wy1;
    } else {
        const float *t = j->lut[c];
        const uint8_t *ra = j->rgb + (size_t)y0 * W * 3 + c, *rb = j->rgb + (size_t)y1 * W * 3 + c;
        for (int x = 0; x < OW; x++) {
            int x0, x1;
            float wx0, wx1;
            em_linear_src(W, OW, x, &x0, &x1, &wx0, &wx1);
            float t0 = t[ra[(size_t)x0 * 3]] * wx0 + t[ra[(size_t)x1 * 3]] * wx1;
            float t1 = t[rb[(size_t)x0 * 3]] * wx0 + t[rb[(size_t)x1 * 3]] * wx1;
            o[x] = t0 * wy0 + t1 * wy1;
        }
    }
    for (int x = OW; x < PW; x++) o[x] = 0.0f;
}

// Output rows [r0, r1) of the 3 x PH padded planes (row r: channel r / PH, y = r % PH).
static void nrp_rows(void *v, long r0, long r1) {
    const nrp_ctx *j = (const nrp_ctx *)v;
    const int PH = j->PH, PW = j->PW;
    float hb[2][NRP_CAP];
    long key[2] = {-1, -1};
    float fb[NRP_CAP + 32]; // uint8 output: the float row before quantisation (PW <= OW + 31)
    for (long r = r0; r < r1; r++) {
        const int c = (int)(r / PH), y = (int)(r % PH);
        if (!j->qout) {
            nrp_row(j, c, y, j->out + ((size_t)c * PH + y) * PW, hb, key);
            continue;
        }
        nrp_row(j, c, y, fb, hb, key);
        j->P->quant_row(fb, PW, j->inv, j->z, j->qout + ((size_t)c * PH + y) * PW);
    }
}

static int nrp_run(const uint8_t *rgb, int H, int W, const float mean[3], const float std[3], int OH,
                   int OW, int PH, int PW, float *out, uint8_t *qout, float scale, int32_t z) {
    // The normalised value of a byte depends only on the byte: a table per channel gives exactly
    // em_normalize_rgb8_f32's values without the full-size float image.
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
    int xi0[NRP_CAP], xi1[NRP_CAP];
    float xl0[NRP_CAP], xl1[NRP_CAP];
    int tab = OW <= NRP_CAP;
    if (qout && (!tab || PW > NRP_CAP + 32)) return -1;
    if (tab) linear_axis(W, OW, xi0, xi1, xl0, xl1);
    nrp_ctx j = {rgb, H, W, OH, OW, PH, PW, tab, (const float (*)[256])lut, xi0, xi1, xl0, xl1, out,
                 qout, qout ? 1.0f / scale : 0.0f, z, qout ? em_qgemm_params_current() : NULL};
    em_parallel_for(3L * PH, PW >= 16384 ? 1 : 16384 / PW, nrp_rows, &j);
    return 0;
}

// The output rows split over the thread pool (em_parallel_for): every value goes through the same
// operations whatever the split.
void em_normalize_resize_pad_rgb8_f32(const uint8_t *rgb, int H, int W, const float mean[3],
                                      const float std[3], int OH, int OW, int PH, int PW,
                                      float *out) {
    if (H <= 0 || W <= 0 || OH <= 0 || OW <= 0 || PH < OH || PW < OW) return;
    nrp_run(rgb, H, W, mean, std, OH, OW, PH, PW, out, NULL, 1.0f, 0);
}

int em_normalize_resize_pad_rgb8_u8(const uint8_t *rgb, int H, int W, const float mean[3],
                                    const float std[3], int OH, int OW, int PH, int PW,
                                    float scale, int32_t z, uint8_t *out) {
    if (!rgb || !out || H <= 0 || W <= 0 || OH <= 0 || OW <= 0 || PH < OH || PW < OW || !(scale > 0.0f))
        return -1;
    return nrp_run(rgb, H, W, mean, std, OH, OW, PH, PW, NULL, out, scale, z);
}

void em_resize_bilinear_f32(const float *in, int C, int H, int W, float *out, int OH, int OW) {
    if (C <= 0 || H <= 0 || W <= 0 || OH <= 0 || OW <= 0) return;
    // Small fixed stack buffers for typical sizes; larger sizes fall back to per-pixel recompute.
    enum { CAP = 2048 };
    int yi0[CAP], yi1[CAP], xi0[CAP], xi1[CAP];
    float yl0[CAP], yl1[CAP], xl0[CAP], xl1[CAP];
    if (OH <= CAP && OW <= CAP) {
        linear_axis(H, OH, yi0, yi1, yl0, yl1);
        linear_axis(W, OW, xi0, xi1, xl0, xl1);
        for (int c = 0; c < C; c++) {
            const float *p = in + (size_t)c * H * W;
            float *o = out + (size_t)c * OH * OW;
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++)
                    o[(size_t)y * OW + x] = bilerp(p, W, yi0[y], yi1[y], yl0[y], yl1[y], xi0[x],
                                                   xi1[x], xl0[x], xl1[x]);
        }
        return;
    }
    for (int c = 0; c < C; c++) {
        const float *p = in + (size_t)c * H * W;
        float *o = out + (size_t)c * OH * OW;
        for (int y = 0; y < OH; y++) {
            int a0, a1;
            float b0, b1;
            em_linear_src(H, OH, y, &a0, &a1, &b0, &b1);
            for (int x = 0; x < OW; x++) {
                int c0, c1;
                float l0, l;
                em_linear_src(W, OW, x, &c0, &c1, &l0, &l);
                o[(size_t)y * OW + x] = bilerp(p, W, a0, a1, b0, b1, c0, c1, l0, l);
            }
        }
    }
}
