// Quick standalone correctness check of the dispatched kernels vs the references, all ISAs.
// cc -O2 -ICShim/include bench/kcheck.c CShim/*.c CShim/ref/*.c CShim/x86/*.c CShim/arm/*.c -lm -lpthread
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_dispatch.h"
#include "em_kernels.h"

static unsigned rs = 12345;
static float rnd(void) { rs = rs * 1103515245u + 12345u; return ((rs >> 8) & 0xffff) / 32768.0f - 1.0f; }
static float *rv(size_t n) { float *p = malloc(n * 4 + 4); for (size_t i = 0; i < n; i++) p[i] = rnd(); return p; }
static int bad = 0;
static void cmp(const char *what, const float *a, const float *b, size_t n, int K) {
    double tol = 1e-5 * sqrt((double)K + 1);
    for (size_t i = 0; i < n; i++) {
        if (!(fabs(a[i] - b[i]) <= tol * (1 + fabs(b[i])))) {
            printf("  %s mismatch at %zu: %g vs ref %g\n", what, i, a[i], b[i]);
            bad++;
            return;
        }
    }
}
int main(void) {
    for (int isa = 0; isa < EM_ISA_COUNT; isa++) {
        if (!em_isa_supported(isa)) continue;
        em_isa_set(isa);
        for (int th = 1; th <= 3; th += 2) {
            em_set_num_threads(th);
            printf("isa %s threads %d\n", em_isa_name(isa), em_num_threads());
            int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {29, 70, 300}, {64, 17, 1}, {15, 100, 513}, {100, 3, 9}};
            for (int s = 0; s < 6; s++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                for (int acc = 0; acc < 2; acc++) {
                    float *A = rv((size_t)M * (K + 2)), *B = rv((size_t)K * (N + 3)), *bias = rv(M);
                    float *C0 = rv((size_t)M * (N + 1)), *C1 = malloc((size_t)M * (N + 1) * 4);
                    memcpy(C1, C0, (size_t)M * (N + 1) * 4);
                    em_sgemm(M, N, K, A, K + 2, B, N + 3, C0, N + 1, bias, acc, 1);
                    em_sgemm_ref(M, N, K, A, K + 2, B, N + 3, C1, N + 1, bias, acc, 1);
                    cmp("sgemm", C0, C1, (size_t)M * (N + 1), K);
                    free(A); free(B); free(bias); free(C0); free(C1);
                }
            }
            int cs[][7] = {{3, 13, 17, 5, 3, 1, 1}, {4, 9, 11, 7, 3, 2, 1}, {16, 8, 8, 33, 1, 1, 0},
                           {5, 20, 21, 9, 7, 2, 3}, {6, 10, 9, 3, 1, 2, 0}, {32, 15, 15, 40, 3, 1, 1}};
            for (int s = 0; s < 6; s++) {
                int Cin = cs[s][0], H = cs[s][1], W = cs[s][2], Cout = cs[s][3], Kk = cs[s][4], st = cs[s][5], pad = cs[s][6];
                int OH = (H + 2 * pad - Kk) / st + 1, OW = (W + 2 * pad - Kk) / st + 1;
                float *in = rv((size_t)Cin * H * W), *w = rv((size_t)Cout * Cin * Kk * Kk), *b = rv(Cout);
                float *res = rv((size_t)Cout * OH * OW);
                float *o0 = malloc((size_t)Cout * OH * OW * 4), *o1 = malloc((size_t)Cout * OH * OW * 4);
                for (int v = 0; v < 2; v++) {
                    em_conv2d_f32(in, Cin, H, W, w, b, Cout, Kk, Kk, st, pad, v ? res : NULL, v, o0, NULL);
                    em_conv2d_f32_ref(in, Cin, H, W, w, b, Cout, Kk, Kk, st, pad, v ? res : NULL, v, o1);
                    cmp("conv", o0, o1, (size_t)Cout * OH * OW, Cin * Kk * Kk);
                }
                free(in); free(w); free(b); free(res); free(o0); free(o1);
            }
            {
                int Cin = 19, H = 5, W = 7, Cout = 6;
                float *in = rv(Cin * H * W), *w = rv(Cin * Cout * 4), *b = rv(Cout);
                float *o0 = malloc(Cout * 4 * H * W * 4), *o1 = malloc(Cout * 4 * H * W * 4);
                void *scr = malloc(em_deconv2x2s2_f32_scratch_bytes(Cin, H, W, Cout));
                em_deconv2x2s2_f32(in, Cin, H, W, w, b, Cout, 1, o0, scr);
                em_deconv2x2s2_f32_ref(in, Cin, H, W, w, b, Cout, 1, o1);
                cmp("deconv", o0, o1, Cout * 4 * H * W, Cin);
                int N = 13, K = 77, M = 35;
                float *x = rv(N * K), *wl = rv(M * K), *bl = rv(M);
                float *l0 = malloc(N * M * 4), *l1 = malloc(N * M * 4);
                em_linear_f32(x, N, K, wl, bl, M, 1, l0);
                em_linear_f32_ref(x, N, K, wl, bl, M, 1, l1);
                cmp("linear", l0, l1, N * M, K);
            }
        }
    }
    printf(bad ? "FAILED %d\n" : "all ok\n", bad);
    return bad != 0;
}
