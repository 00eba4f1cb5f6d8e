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
    return 0;
}
