// Plain C references of the int8 kernels (em_qkernels.h): direct loops over the packed weights,
// int32 accumulation, the scalar requantisation of em_qinternal.h. Every SIMD path must match
// these bit for bit.
#pragma STDC FP_CONTRACT OFF
#include <stdlib.h>
#include <string.h>

#include "../em_qinternal.h"

// ---------------------------------------------------------------- packing (shared by all ISAs)

size_t em_qpack_weights_bytes(int M, int K) {
    if (M <= 0 || K <= 0) return 0;
    size_t Kp = ((size_t)K + 3) / 4 * 4, Mp = ((size_t)M + 7) / 8 * 8;
    return EM_QW_HEADER + 8 * Mp + Mp * Kp;
}

static void qpack_header(int M, int K, int32_t z_in, void *packed) {
    int32_t *h = (int32_t *)packed;
    memset(h, 0, EM_QW_HEADER);
    h[0] = EM_QW_MAGIC;
    h[1] = 1;
    h[2] = M;
    h[3] = K;
    h[4] = (K + 3) / 4 * 4;
    h[5] = (M + 7) / 8 * 8;
    h[6] = z_in;
}

// w(m, k) = src[m * rs + k * cs]; bias(m) = bias_q[m / bdiv].
static int qpack(const int8_t *src, long rs, long cs, int M, int K, int32_t z_in,
                 const int32_t *bias_q, int bdiv, void *packed) {
    if (!src || !packed || M <= 0 || K <= 0 || z_in < 0 || z_in > 255) return -1;
    qpack_header(M, K, z_in, packed);
    em_qw q;
    if (em_qw_open(packed, &q) != 0) return -1;
    int32_t *term = (int32_t *)q.term, *rowsum = (int32_t *)q.rowsum;
    int8_t *w = (int8_t *)q.w;
    memset(term, 0, (size_t)8 * q.Mp);
    memset(w, 0, (size_t)q.Mp * q.Kp);
    for (int m = 0; m < M; m++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) {
            int v = src[m * rs + k * cs];
            if (v < -127) v = -127;
            w[((size_t)(m >> 3) * (q.Kp >> 2) + (k >> 2)) * 32 + (m & 7) * 4 + (k & 3)] = (int8_t)v;
            s += v;
        }
        rowsum[m] = s;
        term[m] = (bias_q ? bias_q[m / bdiv] : 0) - z_in * s;
    }
    return 0;
}

int em_qpack_weights(const int8_t *w, int M, int K, int32_t z_in, const int32_t *bias_q,
                     void *packed) {
    return qpack(w, K, 1, M, K, z_in, bias_q, 1, packed);
}

int em_qpack_concat(const void *a, const void *b, void *out) {
    em_qw qa, qb, q;
    if (!out || em_qw_open(a, &qa) != 0 || em_qw_open(b, &qb) != 0 || qa.K != qb.K || qa.z_in != qb.z_in) return -1;
    qpack_header(qa.M + qb.M, qa.K, qa.z_in, out);
    if (em_qw_open(out, &q) != 0) return -1;
    int32_t *term = (int32_t *)q.term, *rowsum = (int32_t *)q.rowsum;
    int8_t *w = (int8_t *)q.w;
    memset(term, 0, (size_t)8 * q.Mp);
    memset(w, 0, (size_t)q.Mp * q.Kp);
    for (int m = 0; m < q.M; m++) {
        const em_qw *s = m < qa.M ? &qa : &qb;
        const int r = m < qa.M ? m : m - qa.M;
        term[m] = s->term[r];
        rowsum[m] = s->rowsum[r];
        for (int k = 0; k < q.K; k++)
            w[((size_t)(m >> 3) * (q.Kp >> 2) + (k >> 2)) * 32 + (m & 7) * 4 + (k & 3)] = (int8_t)em_qw_at(s, r, k);
    }
    return 0;
}

int em_qpack_deconv2x2_weights(const int8_t *w, int Cin, int Cout, int32_t z_in,
                               const int32_t *bias_q, void *packed) {
    // row m = co * 4 + d (d = dy * 2 + dx), column ci: w[ci, co, dy, dx] = w[ci * 4 Cout + m].
    return qpack(w, 1, 4L * Cout, 4 * Cout, Cin, z_in, bias_q, 4, packed);
}

int em_qpack_deconv4x4s2p1_weights(const int8_t *w, int Cin, int Cout, int32_t z_in,
                                   const int32_t *bias_q, void *packed) {
    if (Cout <= 0 || Cin <= 0) return -1;
    int M = 16 * Cout;
    int32_t *b = (int32_t *)calloc((size_t)M, sizeof(int32_t));
    if (!b) return -1;
    if (bias_q)
        for (int co = 0; co < Cout; co++)
            for (int ky = 1; ky <= 2; ky++)
                for (int kx = 1; kx <= 2; kx++) b[co * 16 + ky * 4 + kx] = bias_q[co];
    // row m = co * 16 + ky * 4 + kx, column ci: w[ci, co, ky, kx] = w[ci * 16 Cout + m].
    int rc = qpack(w, 1, (long)M, M, Cin, z_in, b, 1, packed);
    free(b);
    return rc;
}

int em_qpacked_info(const void *packed, size_t bytes, int *M, int *K, int32_t *z_in) {
    em_qw q;
    if (bytes != 0 && bytes < EM_QW_HEADER) return -1;
    if (em_qw_open(packed, &q) != 0) return -1;
    if (bytes != 0 && bytes != em_qpack_weights_bytes(q.M, q.K)) return -1;
    if (M) *M = q.M;
    if (K) *K = q.K;
    if (z_in) *z_in = q.z_in;
    return 0;
}

// ---------------------------------------------------------------- references

static inline uint8_t rq(int32_t acc, float mult, int32_t z_out, int32_t lo) {
    float v = (float)acc * mult;
    return em_q_finish(v, z_out, lo);
}
static inline uint8_t rq_res(int32_t acc, float mult, int32_t z_out, int32_t lo, uint8_t r,
                             int32_t z_r, float r_mult) {
    float a = (float)acc * mult;
    float b = (float)((int32_t)r - z_r) * r_mult;
    float v = a + b;
    return em_q_finish(v, z_out, lo);
}

// The int32 accumulator of output (m, oy, ox) of a convolution: term + sum w * x, padding z_in.
static int32_t conv_acc(const em_qw *q, const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                        int KH, int KW, int stride, int pad, int m, int oy, int ox) {
    int32_t acc = q->term[m];
    for (int ci = 0; ci < Cin; ci++)
        for (int ky = 0; ky < KH; ky++)
            for (int kx = 0; kx < KW; kx++) {
                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                int x = (iy < 0 || iy >= H || ix < 0 || ix >= W) ? z_in
                                                                 : in[((size_t)ci * H + iy) * W + ix];
                acc += em_qw_at(q, m, (ci * KH + ky) * KW + kx) * x;
            }
    return acc;
}

int em_qconv2d_u8_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                      int Cout, int KH, int KW, int stride, int pad, const float *mult,
                      int32_t z_out, const uint8_t *residual, int32_t z_res, float res_mult,
                      int relu, uint8_t *out) {
    em_qw q;
    if (!in || !out || !mult || em_qw_open(packed, &q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || KH <= 0 || KW <= 0 || stride <= 0 || pad < 0) return -1;
    if (q.M != Cout || q.K != Cin * KH * KW || q.z_in != z_in) return -1;
    if (H + 2 * pad < KH || W + 2 * pad < KW) return -1;
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    int32_t lo = relu ? z_out : 0;
    for (int m = 0; m < Cout; m++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int32_t acc = conv_acc(&q, in, Cin, H, W, z_in, KH, KW, stride, pad, m, oy, ox);
                size_t o = ((size_t)m * OH + oy) * OW + ox;
                out[o] = residual ? rq_res(acc, mult[m], z_out, lo, residual[o], z_res, res_mult)
                                  : rq(acc, mult[m], z_out, lo);
            }
    return 0;
}

int em_qdeconv2x2s2_u8_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                           const void *packed, int Cout, const float *mult, int32_t z_out,
                           int relu, uint8_t *out) {
    em_qw q;
    if (!in || !out || !mult || em_qw_open(packed, &q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || q.M != 4 * Cout || q.K != Cin || q.z_in != z_in) return -1;
    int32_t lo = relu ? z_out : 0;
    for (int co = 0; co < Cout; co++)
        for (int d = 0; d < 4; d++) {
            int m = co * 4 + d, dy = d >> 1, dx = d & 1;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int32_t acc = q.term[m];
                    for (int ci = 0; ci < Cin; ci++)
                        acc += em_qw_at(&q, m, ci) * in[((size_t)ci * H + y) * W + x];
                    out[((size_t)co * 2 * H + 2 * y + dy) * 2 * W + 2 * x + dx] =
                        rq(acc, mult[co], z_out, lo);
                }
        }
    return 0;
}

int em_qdeconv4x4s2p1_u8_f32_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                                 const void *packed, int Cout, const float *deq, float *out) {
    em_qw q;
    if (!in || !out || !deq || em_qw_open(packed, &q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || Cout <= 0 || q.M != 16 * Cout || q.K != Cin || q.z_in != z_in)
        return -1;
    int OH = 2 * H, OW = 2 * W;
    for (int co = 0; co < Cout; co++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int32_t acc = 0;
                for (int ky = 0; ky < 4; ky++) {
                    int ty = oy + 1 - ky;
                    if (ty < 0 || (ty & 1) || ty / 2 >= H) continue;
                    int iy = ty / 2;
                    for (int kx = 0; kx < 4; kx++) {
                        int tx = ox + 1 - kx;
                        if (tx < 0 || (tx & 1) || tx / 2 >= W) continue;
                        int ix = tx / 2, m = co * 16 + ky * 4 + kx;
                        acc += q.term[m];
                        for (int ci = 0; ci < Cin; ci++)
                            acc += em_qw_at(&q, m, ci) * in[((size_t)ci * H + iy) * W + ix];
                    }
                }
                out[((size_t)co * OH + oy) * OW + ox] = (float)acc * deq[co];
            }
    return 0;
}

static int qlinear_check(const uint8_t *in, int N, int K, int32_t z_in, const void *packed, int M,
                         const float *mult, const void *out, em_qw *q) {
    if (!in || !out || !mult || N <= 0 || em_qw_open(packed, q) != 0) return -1;
    if (q->M != M || q->K != K || q->z_in != z_in) return -1;
    return 0;
}

int em_qlinear_u8_ref(const uint8_t *in, int N, int K, int32_t z_in, const void *packed, int M,
                      const float *mult, int32_t z_out, int relu, uint8_t *out) {
    em_qw q;
    if (qlinear_check(in, N, K, z_in, packed, M, mult, out, &q) != 0) return -1;
    int32_t lo = relu ? z_out : 0;
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            int32_t acc = q.term[m];
            for (int k = 0; k < K; k++) acc += em_qw_at(&q, m, k) * in[(size_t)n * K + k];
            out[(size_t)n * M + m] = rq(acc, mult[m], z_out, lo);
        }
    return 0;
}

int em_qlinear_u8_f32_ref(const uint8_t *in, int N, int K, int32_t z_in, const void *packed,
                          int M, const float *deq, float *out) {
    em_qw q;
    if (qlinear_check(in, N, K, z_in, packed, M, deq, out, &q) != 0) return -1;
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            int32_t acc = q.term[m];
            for (int k = 0; k < K; k++) acc += em_qw_at(&q, m, k) * in[(size_t)n * K + k];
            out[(size_t)n * M + m] = (float)acc * deq[m];
        }
    return 0;
}

void em_qadd_u8_ref(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                    float b_mult, size_t n, int32_t z_out, int relu, uint8_t *out) {
    int32_t lo = relu ? z_out : 0;
    for (size_t i = 0; i < n; i++) {
        float pa = (float)((int32_t)a[i] - z_a) * a_mult;
        float pb = (float)((int32_t)b[i] - z_b) * b_mult;
        float v = pa + pb;
        out[i] = em_q_finish(v, z_out, lo);
    }
}

void em_qadd_upsample_nearest_u8_ref(const uint8_t *lat, int32_t z_lat, float lat_mult,
                                     const uint8_t *top, int32_t z_top, float top_mult, int C,
                                     int TH, int TW, int H, int W, int32_t z_out, uint8_t *out) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++) {
            int sy = (int)floorf(y * (float)TH / (float)H);
            if (sy > TH - 1) sy = TH - 1;
            for (int x = 0; x < W; x++) {
                int sx = (int)floorf(x * (float)TW / (float)W);
                if (sx > TW - 1) sx = TW - 1;
                size_t o = ((size_t)c * H + y) * W + x;
                float pa = (float)((int32_t)lat[o] - z_lat) * lat_mult;
                float pb = (float)((int32_t)top[((size_t)c * TH + sy) * TW + sx] - z_top) * top_mult;
                float v = pa + pb;
                out[o] = em_q_finish(v, z_out, 0);
            }
        }
}

void em_quantize_f32_u8_ref(const float *x, size_t n, float scale, int32_t z, uint8_t *out) {
    float inv = 1.0f / scale;
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * inv;
        out[i] = em_q_finish(v, z, 0);
    }
}

void em_dequantize_u8_f32_ref(const uint8_t *q, size_t n, float scale, int32_t z, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = (float)((int32_t)q[i] - z) * scale;
}

void em_qmaxpool2d_u8_ref(const uint8_t *in, int C, int H, int W, int k, int stride, int pad,
                          uint8_t *out) {
    if (C <= 0 || H <= 0 || W <= 0 || k <= 0 || stride <= 0 || pad < 0) return;
    int OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int m = 0;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        int v = in[((size_t)c * H + iy) * W + ix];
                        if (v > m) m = v;
                    }
                out[((size_t)c * OH + oy) * OW + ox] = (uint8_t)m;
            }
}

int em_qconv2d_u8_f32_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                          const void *packed, int Cout, int KH, int KW, int stride, int pad,
                          const float *deq, float *out) {
    em_qw q;
    if (!in || !out || !deq || em_qw_open(packed, &q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || KH <= 0 || KW <= 0 || stride <= 0 || pad < 0) return -1;
    if (q.M != Cout || q.K != Cin * KH * KW || q.z_in != z_in) return -1;
    if (H + 2 * pad < KH || W + 2 * pad < KW) return -1;
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    for (int m = 0; m < Cout; m++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int32_t acc = conv_acc(&q, in, Cin, H, W, z_in, KH, KW, stride, pad, m, oy, ox);
                out[((size_t)m * OH + oy) * OW + ox] = (float)acc * deq[m];
            }
    return 0;
}
