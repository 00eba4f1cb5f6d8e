// Benchmark of the int8 convolution (em_qconv2d_u8) on ResNet-50-FPN Mask R-CNN layer shapes, per
// ISA, in GMAC/s, next to the float kernel (em_conv2d_f32) on the best ISA. Not a test.
//   clang -O3 -ICShim/include bench/qkernels_bench.c CShim/*.c CShim/ref/*.c CShim/x86/*.c \
//         CShim/arm/*.c -lm -lpthread -o /tmp/qbench
//   /tmp/qbench [isa ...]        (default: every supported ISA; EM_THREADS=n, EM_ONLY=substring)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_dispatch.h"
#include "em_kernels.h"
#include "em_qkernels.h"

typedef struct {
    const char *name;
    int cin, h, w, cout, k, stride, pad;
} conv_shape;

static const conv_shape shapes[] = {
    {"416 conv1 7x7s2 3->64", 3, 416, 416, 64, 7, 2, 3},
    {"416 l1 1x1 64->64", 64, 104, 104, 64, 1, 1, 0},
    {"416 l1 3x3 64->64", 64, 104, 104, 64, 3, 1, 1},
    {"416 l1 1x1 64->256", 64, 104, 104, 256, 1, 1, 0},
    {"416 l2 3x3 128 s2", 128, 104, 104, 128, 3, 2, 1},
    {"416 l2 1x1 512->128", 512, 52, 52, 128, 1, 1, 0},
    {"416 l3 3x3 256->256", 256, 26, 26, 256, 3, 1, 1},
    {"416 l3 1x1 1024->256", 1024, 26, 26, 256, 1, 1, 0},
    {"416 l4 3x3 512->512", 512, 13, 13, 512, 3, 1, 1},
    {"416 l4 1x1 512->2048", 512, 13, 13, 2048, 1, 1, 0},
    {"416 fpn 3x3 256 P2", 256, 104, 104, 256, 3, 1, 1},
    {"416 rpn 3x3 256 P3", 256, 52, 52, 256, 3, 1, 1},
    {"800 l3 3x3 256->256", 256, 50, 68, 256, 3, 1, 1},
    {"mask 3x3 256 14x14", 256, 14, 14, 256, 3, 1, 1},
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double best_time(void (*fn)(void *), void *ctx) {
    fn(ctx);
    double best = 1e30, spent = 0;
    int reps = 0;
    while (reps < 3 || (spent < 0.3 && reps < 30)) {
        double t0 = now();
        fn(ctx);
        double dt = now() - t0;
        spent += dt;
        if (dt < best) best = dt;
        reps++;
    }
    return best;
}

typedef struct {
    const conv_shape *s;
    uint8_t *in, *out;
    void *pk;
    float *mult;
    float *fin, *fw, *fb, *fout;
} ctx_t;

static void run_q(void *v) {
    ctx_t *c = v;
    const conv_shape *s = c->s;
    em_qconv2d_u8(c->in, s->cin, s->h, s->w, 7, c->pk, s->cout, s->k, s->k, s->stride, s->pad, c->mult,
                  100, NULL, 0, 0.0f, 1, c->out, NULL);
}
static void run_f(void *v) {
    ctx_t *c = v;
    const conv_shape *s = c->s;
    em_conv2d_f32(c->fin, s->cin, s->h, s->w, c->fw, c->fb, s->cout, s->k, s->k, s->stride, s->pad,
                  NULL, 1, c->fout, NULL);
}

typedef struct {
    int N, K, M;
    uint8_t *in, *out;
    void *pk;
    float *mult, *fin, *fw, *fb, *fout;
} lin_ctx;
static void run_ql(void *v) {
    lin_ctx *c = v;
    em_qlinear_u8(c->in, c->N, c->K, 7, c->pk, c->M, c->mult, 100, 1, c->out);
}
static void run_fl(void *v) {
    lin_ctx *c = v;
    em_linear_f32(c->fin, c->N, c->K, c->fw, c->fb, c->M, 1, c->fout);
}
static void *rbytes(size_t n) {
    uint8_t *p = malloc(n);
    unsigned r = 7;
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((r = r * 1103515245u + 12345u) >> 20);
    return p;
}
static float *rfloats(size_t n) {
    float *p = malloc(4 * n);
    unsigned r = 9;
    for (size_t i = 0; i < n; i++) p[i] = (float)((r = r * 1103515245u + 12345u) >> 20) / 4096.0f - 0.5f;
    return p;
}
static void bench_linear(lin_ctx *c, const int *isas, int nisa, int best) {
    double mac = (double)c->N * c->K * c->M;
    int8_t *w = rbytes((size_t)c->M * c->K);
    for (size_t i = 0; i < (size_t)c->M * c->K; i++)
        if (w[i] == -128) w[i] = -127;
    c->in = rbytes((size_t)c->N * c->K), c->out = malloc((size_t)c->N * c->M);
    c->pk = malloc(em_qpack_weights_bytes(c->M, c->K));
    em_qpack_weights(w, c->M, c->K, 7, NULL, c->pk);
    c->mult = rfloats(c->M), c->fin = rfloats((size_t)c->N * c->K), c->fw = rfloats((size_t)c->M * c->K);
    c->fb = rfloats(c->M), c->fout = malloc(4 * (size_t)c->N * c->M);
    printf("%-24s %7.3f", "fc6 512x12544->1024", mac * 1e-9);
    em_isa_set(best);
    printf(" %8.1f", mac / best_time(run_fl, c) * 1e-9);
    for (int i = 0; i < nisa; i++) {
        em_isa_set(isas[i]);
        printf(" %10.1f", mac / best_time(run_ql, c) * 1e-9);
        fflush(stdout);
    }
    printf("\n");
}
typedef struct {
    int Cin, H, W, Cout;
    uint8_t *in, *out;
    void *pk;
    float *mult, *fin, *fw, *fb, *fout;
    void *scr;
} dec_ctx;
static void run_qd(void *v) {
    dec_ctx *c = v;
    em_qdeconv2x2s2_u8(c->in, c->Cin, c->H, c->W, 7, c->pk, c->Cout, c->mult, 100, 1, c->out, NULL);
}
static void run_fd(void *v) {
    dec_ctx *c = v;
    em_deconv2x2s2_f32(c->fin, c->Cin, c->H, c->W, c->fw, c->fb, c->Cout, 1, c->fout, c->scr);
}
static void bench_deconv(dec_ctx *c, const int *isas, int nisa, int best) {
    double mac = 4.0 * c->Cin * c->Cout * c->H * c->W;
    size_t nw = (size_t)4 * c->Cin * c->Cout, nin = (size_t)c->Cin * c->H * c->W, nout = (size_t)4 * c->Cout * c->H * c->W;
    int8_t *w = rbytes(nw);
    for (size_t i = 0; i < nw; i++)
        if (w[i] == -128) w[i] = -127;
    c->in = rbytes(nin), c->out = malloc(nout);
    c->pk = malloc(em_qpack_weights_bytes(4 * c->Cout, c->Cin));
    em_qpack_deconv2x2_weights(w, c->Cin, c->Cout, 7, NULL, c->pk);
    c->mult = rfloats(c->Cout), c->fin = rfloats(nin), c->fw = rfloats(nw), c->fb = rfloats(c->Cout);
    c->fout = malloc(4 * nout);
    c->scr = malloc(em_deconv2x2s2_f32_scratch_bytes(c->Cin, c->H, c->W, c->Cout) + 64);
    printf("%-24s %7.3f", "deconv 256 14->28", mac * 1e-9);
    em_isa_set(best);
    printf(" %8.1f", mac / best_time(run_fd, c) * 1e-9);
    for (int i = 0; i < nisa; i++) {
        em_isa_set(isas[i]);
        printf(" %10.1f", mac / best_time(run_qd, c) * 1e-9);
        fflush(stdout);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    int isas[EM_ISA_COUNT], nisa = 0;
    for (int i = 1; i < argc; i++) {
        int k = em_isa_from_name(argv[i]);
        if (k >= 0 && em_isa_supported(k)) isas[nisa++] = k;
    }
    if (!nisa)
        for (int k = 0; k < EM_ISA_COUNT; k++)
            if (em_isa_supported(k)) isas[nisa++] = k;
    const char *th = getenv("EM_THREADS");
    em_set_num_threads(th ? atoi(th) : 1);
    int best = em_isa_best();
    printf("threads %d; GMAC/s, best of runs; f32 = em_conv2d_f32 on %s\n%-24s %7s %8s", em_num_threads(),
           em_isa_name(best), "shape", "GMAC", "f32");
    for (int i = 0; i < nisa; i++) printf(" %10s", em_isa_name(isas[i]));
    printf("\n");
    unsigned r = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const conv_shape *s = &shapes[si];
        if (getenv("EM_ONLY") && !strstr(s->name, getenv("EM_ONLY"))) continue;
        int oh = (s->h + 2 * s->pad - s->k) / s->stride + 1, ow = (s->w + 2 * s->pad - s->k) / s->stride + 1;
        int K = s->cin * s->k * s->k;
        double mac = (double)s->cout * oh * ow * K;
        size_t nin = (size_t)s->cin * s->h * s->w, nout = (size_t)s->cout * oh * ow;
        ctx_t c = {s, malloc(nin), malloc(nout), malloc(em_qpack_weights_bytes(s->cout, K)),
                   malloc(4 * s->cout), malloc(4 * nin), malloc(4 * (size_t)s->cout * K),
                   calloc(s->cout, 4), malloc(4 * nout)};
        int8_t *w = malloc((size_t)s->cout * K);
        for (size_t i = 0; i < nin; i++) c.in[i] = (uint8_t)(r = r * 1103515245u + 12345u) >> 3, c.fin[i] = c.in[i] * 0.01f;
        for (size_t i = 0; i < (size_t)s->cout * K; i++) {
            r = r * 1103515245u + 12345u;
            w[i] = (int8_t)((int)((r >> 16) % 255) - 127);
            c.fw[i] = w[i] * 0.001f;
        }
        for (int m = 0; m < s->cout; m++) c.mult[m] = 0.001f;
        em_qpack_weights(w, s->cout, K, 7, NULL, c.pk);
        printf("%-24s %7.3f", s->name, mac * 1e-9);
        em_isa_set(best);
        printf(" %8.1f", mac / best_time(run_f, &c) * 1e-9);
        fflush(stdout);
        for (int i = 0; i < nisa; i++) {
            em_isa_set(isas[i]);
            printf(" %10.1f", mac / best_time(run_q, &c) * 1e-9);
            fflush(stdout);
        }
        printf("\n");
        free(c.in), free(c.out), free(c.pk), free(c.mult), free(c.fin), free(c.fw), free(c.fb), free(c.fout), free(w);
    }
    if (!getenv("EM_ONLY")) { // box head FC6 (512 RoIs) and mask-head deconv
        lin_ctx l = {512, 12544, 1024};
        bench_linear(&l, isas, nisa, best);
        dec_ctx d = {256, 14, 14, 256};
        bench_deconv(&d, isas, nisa, best);
    }
    return 0;
}
