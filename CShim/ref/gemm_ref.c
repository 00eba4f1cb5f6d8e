// Plain C references of the GEMM-shaped kernels (em_kernels.h). Written for obviousness, not speed:
// every output element is one dot product accumulated in double, so the references are also more
// accurate than any blocked float path they are compared with.
#include "em_kernels.h"

#pragma STDC FP_CONTRACT OFF

void em_sgemm_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                  int ldc, const float *bias, int accumulate, int relu) {
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += (double)A[(size_t)m * lda + k] * (double)B[(size_t)k * ldb + n];
            float v = (float)s;
            if (accumulate) v = C[(size_t)m * ldc + n] + v;
            if (bias) v += bias[m];
            if (relu && v < 0.0f) v = 0.0f;
            C[(size_t)m * ldc + n] = v;
        }
    }
}

void em_conv2d_f32_ref(const float *in, int Cin, int H, int W, const float *weight,
                       const float *bias, int Cout, int KH, int KW, int stride, int pad,
                       const float *residual, int relu, float *out) {
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    if (OH <= 0 || OW <= 0) return;
    for (int co = 0; co < Cout; co++) {
        for (int oy = 0; oy < OH; oy++) {
            for (int ox = 0; ox < OW; ox++) {
                double s = 0.0;
                for (int ci = 0; ci < Cin; ci++) {
                    for (int ky = 0; ky < KH; ky++) {
                        int iy = oy * stride - pad + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < KW; kx++) {
                            int ix = ox * stride - pad + kx;
                            if (ix < 0 || ix >= W) continue;
                            s += (double)in[((size_t)ci * H + iy) * W + ix] *
                                 (double)weight[(((size_t)co * Cin + ci) * KH + ky) * KW + kx];
                        }
                    }
                }
                size_t o = ((size_t)co * OH + oy) * OW + ox;
                float v = (float)s;
                if (bias) v += bias[co];
                if (residual) v += residual[o];
                if (relu && v < 0.0f) v = 0.0f;
                out[o] = v;
            }
        }
    }
}

void em_deconv2x2s2_f32_ref(const float *in, int Cin, int H, int W, const float *weight,
                            const float *bias, int Cout, int relu, float *out) {
    int OH = 2 * H, OW = 2 * W;
    for (int co = 0; co < Cout; co++) {
        for (int oy = 0; oy < OH; oy++) {
            for (int ox = 0; ox < OW; ox++) {
                int y = oy / 2, x = ox / 2, dy = oy % 2, dx = ox % 2;
                double s = 0.0;
                for (int ci = 0; ci < Cin; ci++)
                    s += (double)in[((size_t)ci * H + y) * W + x] *
                         (double)weight[(((size_t)ci * Cout + co) * 2 + dy) * 2 + dx];
                float v = (float)s;
                if (bias) v += bias[co];
                if (relu && v < 0.0f) v = 0.0f;
                out[((size_t)co * OH + oy) * OW + ox] = v;
            }
        }
    }
}

void em_deconv4x4s2p1_f32_ref(const float *in, int Cin, int H, int W, const float *weight,
                              const float *bias, int Cout, float *out) {
    int OH = 2 * H, OW = 2 * W;
    for (int co = 0; co < Cout; co++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double s = 0.0;
                for (int ky = 0; ky < 4; ky++) {
                    int ty = oy + 1 - ky;
                    if (ty < 0 || (ty & 1) || ty / 2 >= H) continue;
                    for (int kx = 0; kx < 4; kx++) {
                        int tx = ox + 1 - kx;
                        if (tx < 0 || (tx & 1) || tx / 2 >= W) continue;
                        for (int ci = 0; ci < Cin; ci++)
                            s += (double)in[((size_t)ci * H + ty / 2) * W + tx / 2] *
                                 (double)weight[(((size_t)ci * Cout + co) * 4 + ky) * 4 + kx];
                    }
                }
                float v = (float)s;
                if (bias) v += bias[co];
                out[((size_t)co * OH + oy) * OW + ox] = v;
            }
}

void em_linear_f32_ref(const float *in, int N, int K, const float *weight, const float *bias,
                       int M, int relu, float *out) {
    for (int n = 0; n < N; n++) {
        for (int m = 0; m < M; m++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += (double)in[(size_t)n * K + k] * (double)weight[(size_t)m * K + k];
            float v = (float)s;
            if (bias) v += bias[m];
            if (relu && v < 0.0f) v = 0.0f;
            out[(size_t)n * M + m] = v;
        }
    }
}
