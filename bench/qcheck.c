// Standalone bit-exactness check of the int8 kernels: every supported ISA, threads 1 and 3, vs
// the references (memcmp), and the references vs a direct int64 + float-formula computation.
// Host:    clang -O2 -ICShim/include bench/qcheck.c CShim/*.c CShim/ref/*.c CShim/x86/*.c \
//            CShim/arm/*.c -lm -lpthread
// aarch64: clang --target=aarch64-linux-gnu -O2 -static ... (same files), then
//          qemu-aarch64-static -cpu cortex-a53 ./a.out ; qemu-aarch64-static -cpu cortex-a76 ./a.out
#pragma STDC FP_CONTRACT OFF
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_dispatch.h"
#include "em_qkernels.h"

static unsigned long long rs = 88172645463325252ull;
static unsigned rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (unsigned)(rs >> 11); }
static int bad = 0, checks = 0;

static void fill_u8(uint8_t *p, size_t n, int mode) {
    for (size_t i = 0; i < n; i++) p[i] = mode == 1 ? 255 : mode == 2 ? 0 : (uint8_t)rnd();
}
static void fill_s8(int8_t *p, size_t n, int mode) {
    for (size_t i = 0; i < n; i++)
        p[i] = mode == 1 ? 127 : mode == 2 ? -127 : mode == 3 ? ((i & 1) ? 127 : -127)
                                                      : (int8_t)((int)(rnd() % 255) - 127);
}
static void same(const char *what, const void *a, const void *b, size_t n) {
    checks++;
    if (memcmp(a, b, n) != 0) {
        const uint8_t *x = a, *y = b;
        size_t i = 0;
        while (x[i] == y[i]) i++;
        printf("  MISMATCH %s (isa %s, threads %d) at byte %zu: %d vs %d\n", what,
               em_isa_name(em_isa_current()), em_num_threads(), i, x[i], y[i]);
        bad++;
    }
}

static uint8_t finish(float v, int z, int lo) {
    if (!(v >= -16777216.0f)) v = -16777216.0f;
    if (v > 16777216.0f) v = 16777216.0f;
    long y = z + lrintf(v);
    return (uint8_t)(y < lo ? lo : y > 255 ? 255 : y);
}

// One conv case: dispatched vs ref for every ISA/thread count; ref vs direct int64.
static void conv_case(int Cin, int H, int W, int Cout, int KH, int KW, int stride, int pad,
                      int mode, int use_res, int relu) {
    int K = Cin * KH * KW, OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    size_t nin = (size_t)Cin * H * W, nout = (size_t)Cout * OH * OW;
    uint8_t *in = malloc(nin), *res = malloc(nout), *ref = malloc(nout), *out = malloc(nout), *d = malloc(nout);
    int8_t *w = malloc((size_t)Cout * K);
    int32_t *bias = malloc(4 * Cout);
    float *mult = malloc(4 * Cout);
    fill_u8(in, nin, mode ? 1 : 0);
    fill_u8(res, nout, 0);
    fill_s8(w, (size_t)Cout * K, mode);
    int z_in = mode ? 0 : (int)(rnd() % 256), z_out = mode ? 128 : rnd() % 256, z_r = rnd() % 256;
    for (int m = 0; m < Cout; m++) {
        bias[m] = (int)(rnd() % 20001) - 10000;
        float u = (float)(rnd() % 1000 + 500) / 1000.0f;
        mult[m] = mode ? u * 100.0f / (32385.0f * K) : u * 0.012f / sqrtf((float)K);
    }
    float rmult = (float)(rnd() % 1000 + 1) / 700.0f;
    void *pk = malloc(em_qpack_weights_bytes(Cout, K));
    em_qpack_weights(w, Cout, K, z_in, bias, pk);
    if (em_qconv2d_u8_ref(in, Cin, H, W, z_in, pk, Cout, KH, KW, stride, pad, mult, z_out,
                          use_res ? res : NULL, z_r, rmult, relu, ref) != 0) {
        printf("  ref rejected conv case\n");
        bad++;
    }
    // direct int64
    for (int m = 0; m < Cout; m++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                long long acc = bias[m];
                for (int ci = 0; ci < Cin; ci++)
                    for (int ky = 0; ky < KH; ky++)
                        for (int kx = 0; kx < KW; kx++) {
                            int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            int x = (iy < 0 || iy >= H || ix < 0 || ix >= W) ? z_in : in[((size_t)ci * H + iy) * W + ix];
                            acc += (long long)w[((size_t)m * Cin + ci) * KH * KW + ky * KW + kx] * (x - z_in);
                        }
                size_t o = ((size_t)m * OH + oy) * OW + ox;
                float v = (float)(int)acc * mult[m];
                if (use_res) {
                    float b = (float)((int)res[o] - z_r) * rmult;
                    v = v + b;
                }
                d[o] = finish(v, z_out, relu ? z_out : 0);
            }
    same("conv ref vs int64", ref, d, nout);
    if (getenv("QDIAG")) { int sat = 0; for (size_t i = 0; i < nout; i++) sat += ref[i] == 0 || ref[i] == 255 || ref[i] == z_out; printf("  conv K=%d mode %d: %d/%zu at bounds\n", K, mode, sat, nout); }
    for (int isa = 0; isa < EM_ISA_COUNT; isa++) {
        if (em_isa_set(isa) != 0) continue;
        for (int th = 1; th <= 3; th += 2) {
            em_set_num_threads(th);
            memset(out, 0xA5, nout);
            uint8_t *r = use_res ? res : NULL;
            if (use_res && (th == 3)) { // in place: out aliases residual
                memcpy(out, res, nout);
                r = out;
            }
            em_qconv2d_u8(in, Cin, H, W, z_in, pk, Cout, KH, KW, stride, pad, mult, z_out, r, z_r,
                          rmult, relu, out, NULL);
            char what[128];
            snprintf(what, sizeof what, "conv %dx%dx%d->%d k%dx%d s%d p%d mode%d res%d relu%d", Cin,
                     H, W, Cout, KH, KW, stride, pad, mode, use_res, relu);
            same(what, out, ref, nout);
        }
    }
    free(in), free(res), free(ref), free(out), free(d), free(w), free(bias), free(mult), free(pk);
}

static void linear_case(int N, int K, int M, int mode) {
    uint8_t *in = malloc((size_t)N * K), *ref = malloc((size_t)N * M), *out = malloc((size_t)N * M), *d = malloc((size_t)N * M);
    float *reff = malloc(4 * (size_t)N * M), *outf = malloc(4 * (size_t)N * M), *df = malloc(4 * (size_t)N * M);
    int8_t *w = malloc((size_t)M * K);
    int32_t *bias = malloc(4 * M);
    float *mult = malloc(4 * M), *deq = malloc(4 * M);
    fill_u8(in, (size_t)N * K, mode ? 1 : 0);
    fill_s8(w, (size_t)M * K, mode);
    int z_in = mode ? 0 : rnd() % 256, z_out = mode ? 128 : rnd() % 256;
    for (int m = 0; m < M; m++) {
        bias[m] = (int)(rnd() % 2001) - 1000;
        float u = (float)(rnd() % 1000 + 500) / 1000.0f;
        mult[m] = mode ? u * 100.0f / (32385.0f * K) : u * 0.012f / sqrtf((float)K);
        deq[m] = (float)(rnd() % 1000 + 1) * 1e-5f;
    }
    void *pk = malloc(em_qpack_weights_bytes(M, K));
    em_qpack_weights(w, M, K, z_in, bias, pk);
    em_qlinear_u8_ref(in, N, K, z_in, pk, M, mult, z_out, 1, ref);
    em_qlinear_u8_f32_ref(in, N, K, z_in, pk, M, deq, reff);
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            long long acc = bias[m];
            for (int k = 0; k < K; k++) acc += (long long)w[(size_t)m * K + k] * (in[(size_t)n * K + k] - z_in);
            d[(size_t)n * M + m] = finish((float)(int)acc * mult[m], z_out, z_out);
            df[(size_t)n * M + m] = (float)(int)acc * deq[m];
        }
    same("linear ref vs int64", ref, d, (size_t)N * M);
    same("linear f32 ref vs int64", reff, df, 4 * (size_t)N * M);
    for (int isa = 0; isa < EM_ISA_COUNT; isa++) {
        if (em_isa_set(isa) != 0) continue;
        for (int th = 1; th <= 3; th += 2) {
            em_set_num_threads(th);
            memset(out, 0xA5, (size_t)N * M);
            memset(outf, 0xA5, 4 * (size_t)N * M);
            em_qlinear_u8(in, N, K, z_in, pk, M, mult, z_out, 1, out);
            em_qlinear_u8_f32(in, N, K, z_in, pk, M, deq, outf);
            same("linear", out, ref, (size_t)N * M);
            same("linear f32", outf, reff, 4 * (size_t)N * M);
        }
    }
    free(in), free(ref), free(out), free(d), free(reff), free(outf), free(df), free(w), free(bias), free(mult), free(deq), free(pk);
}

static void deconv_case(int Cin, int H, int W, int Cout, int mode) {
    size_t nin = (size_t)Cin * H * W, nout = (size_t)Cout * 4 * H * W;
    uint8_t *in = malloc(nin), *ref = malloc(nout), *out = malloc(nout), *d = malloc(nout);
    int8_t *w = malloc((size_t)Cin * Cout * 4);
    int32_t *bias = malloc(4 * Cout);
    float *mult = malloc(4 * Cout);
    fill_u8(in, nin, mode ? 1 : 0);
    fill_s8(w, (size_t)Cin * Cout * 4, mode);
    int z_in = mode ? 0 : rnd() % 256, z_out = mode ? 128 : rnd() % 256;
    for (int m = 0; m < Cout; m++) {
        bias[m] = (int)(rnd() % 2001) - 1000;
        mult[m] = (float)(rnd() % 1000 + 500) / 1000.0f * (mode ? 100.0f / (32385.0f * Cin) : 0.012f / sqrtf((float)Cin));
    }
    void *pk = malloc(em_qpack_weights_bytes(4 * Cout, Cin));
    em_qpack_deconv2x2_weights(w, Cin, Cout, z_in, bias, pk);
    em_qdeconv2x2s2_u8_ref(in, Cin, H, W, z_in, pk, Cout, mult, z_out, 1, ref);
    for (int co = 0; co < Cout; co++)
        for (int y = 0; y < 2 * H; y++)
            for (int x = 0; x < 2 * W; x++) {
                long long acc = bias[co];
                for (int ci = 0; ci < Cin; ci++)
                    acc += (long long)w[(((size_t)ci * Cout + co) * 2 + (y & 1)) * 2 + (x & 1)] *
                           (in[((size_t)ci * H + y / 2) * W + x / 2] - z_in);
                d[((size_t)co * 2 * H + y) * 2 * W + x] = finish((float)(int)acc * mult[co], z_out, z_out);
            }
    same("deconv ref vs int64", ref, d, nout);
    for (int isa = 0; isa < EM_ISA_COUNT; isa++) {
        if (em_isa_set(isa) != 0) continue;
        for (int th = 1; th <= 3; th += 2) {
            em_set_num_threads(th);
            memset(out, 0xA5, nout);
            em_qdeconv2x2s2_u8(in, Cin, H, W, z_in, pk, Cout, mult, z_out, 1, out, NULL);
            same("deconv", out, ref, nout);
        }
    }
    free(in), free(ref), free(out), free(d), free(w), free(bias), free(mult), free(pk);
}

static void eltwise_cases(void) {
    size_t n = 1003;
    uint8_t *a = malloc(n), *b = malloc(n), *r = malloc(n), *o = malloc(n), *d = malloc(n);
    float *x = malloc(4 * n), *xf = malloc(4 * n), *xr = malloc(4 * n);
    fill_u8(a, n, 0);
    fill_u8(b, n, 0);
    for (size_t i = 0; i < n; i++) x[i] = ((int)(rnd() % 20001) - 10000) * 0.00137f;
    x[0] = NAN, x[1] = INFINITY, x[2] = -INFINITY, x[3] = 0.5f * 0.05f, x[4] = 1.5f * 0.05f, x[5] = -2.5f * 0.05f;
    em_qadd_u8_ref(a, 17, 0.73f, b, 200, 1.31f, n, 91, 1, r);
    for (size_t i = 0; i < n; i++) {
        float p = (float)(a[i] - 17) * 0.73f, q = (float)(b[i] - 200) * 1.31f;
        d[i] = finish(p + q, 91, 91);
    }
    same("qadd ref vs formula", r, d, n);
    em_quantize_f32_u8_ref(x, n, 0.05f, 113, r);
    float inv = 1.0f / 0.05f;
    for (size_t i = 0; i < n; i++) d[i] = finish(x[i] * inv, 113, 0);
    same("quantize ref vs formula", r, d, n);
    // 0.5 -> 10 + 113 exactly representable? x*inv rounding: just check the NaN slot is z_out - 2^24 clamp -> 0
    if (r[0] != 0) { printf("  quantize NaN -> %d (want 0)\n", r[0]); bad++; }
    for (int isa = 0; isa < EM_ISA_COUNT; isa++) {
        if (em_isa_set(isa) != 0) continue;
        em_qadd_u8_ref(a, 17, 0.73f, b, 200, 1.31f, n, 91, 1, r);
        em_qadd_u8(a, 17, 0.73f, b, 200, 1.31f, n, 91, 1, o);
        same("qadd", o, r, n);
        em_quantize_f32_u8_ref(x, n, 0.05f, 113, r);
        em_quantize_f32_u8(x, n, 0.05f, 113, o);
        same("quantize", o, r, n);
        em_dequantize_u8_f32_ref(a, n, 0.05f, 113, xr);
        em_dequantize_u8_f32(a, n, 0.05f, 113, xf);
        same("dequantize", xf, xr, 4 * n);
        // upsample add: lat [5, 13, 11], top [5, 7, 6]
        int C = 5, H = 13, W = 11, TH = 7, TW = 6;
        em_qadd_upsample_nearest_u8_ref(a, 3, 0.9f, b, 250, 0.6f, C, TH, TW, H, W, 128, r);
        memcpy(o, a, (size_t)C * H * W);
        em_qadd_upsample_nearest_u8(o, 3, 0.9f, b, 250, 0.6f, C, TH, TW, H, W, 128, o);
        same("qadd upsample (in place)", o, r, (size_t)C * H * W);
        em_qmaxpool2d_u8_ref(a, 3, 17, 19, 3, 2, 1, r);
        em_qmaxpool2d_u8(a, 3, 17, 19, 3, 2, 1, o);
        same("maxpool", o, r, (size_t)3 * 9 * 10);
    }
    free(a), free(b), free(r), free(o), free(d), free(x), free(xf), free(xr);
}

int main(int argc, char **argv) {
    int big = argc > 1;
    printf("ISAs:");
    for (int i = 0; i < EM_ISA_COUNT; i++)
        if (em_isa_supported(i)) printf(" %s", em_isa_name(i));
    printf("\n");
    for (int mode = 0; mode <= 3; mode++) {
        conv_case(3, 13, 11, 5, 3, 3, 1, 1, mode, 0, 0);
        conv_case(7, 9, 10, 19, 1, 1, 1, 0, mode, 1, 1);
        conv_case(5, 17, 15, 33, 3, 3, 2, 1, mode, 0, 1);
        conv_case(6, 12, 9, 9, 1, 1, 2, 0, mode, 1, 0);
        conv_case(3, 23, 21, 8, 7, 7, 2, 3, mode, 0, 1);
    }
    conv_case(1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0);
    conv_case(2, 3, 3, 3, 3, 3, 1, 1, 0, 1, 1);
    conv_case(37, 21, 19, 70, 3, 3, 1, 1, 0, 1, 1);
    conv_case(64, 14, 13, 41, 1, 1, 1, 0, 0, 1, 1);
    conv_case(515, 5, 4, 9, 3, 3, 1, 1, 1, 0, 0); // K = 4635, all 255 x 127
    conv_case(515, 5, 4, 9, 3, 3, 1, 1, 2, 0, 0); // all 255 x -127, z_in 255
    conv_case(515, 5, 4, 9, 3, 3, 1, 1, 3, 1, 1);
    if (big) conv_case(256, 50, 38, 256, 3, 3, 1, 1, 0, 0, 1);
    for (int mode = 0; mode <= 3; mode++) {
        linear_case(7, 37, 13, mode);
        linear_case(33, 257, 70, mode);
    }
    linear_case(1, 12545, 9, 1);
    deconv_case(5, 7, 6, 3, 0);
    deconv_case(33, 14, 14, 17, 0);
    deconv_case(300, 3, 5, 9, 1);
    eltwise_cases();
    printf("%d checks, %d mismatches\n", checks, bad);
    return bad != 0;
}
