// Benchmark of em_conv2d_f32 / em_linear_f32 / em_deconv2x2s2_f32 on ResNet-50-FPN Mask R-CNN
// layer shapes, per ISA, in GFLOP/s (2 * MACs / time). Build (from the package root):
//   clang -O3 -ICShim/include bench/kernels_bench.c CShim/*.c CShim/ref/*.c CShim/x86/*.c \
//         CShim/arm/*.c -lm -lpthread -o /tmp/kbench
//   /tmp/kbench [isa ...]        (default: every supported ISA; EM_THREADS=n for threads)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_dispatch.h"
#include "em_kernels.h"

typedef struct {
    const char *name;
    int cin, h, w, cout, k, stride, pad;
} conv_shape;

static const conv_shape shapes[] = {
    // 800x1088 input
    {"800 conv1 7x7s2 3->64", 3, 800, 1088, 64, 7, 2, 3},
    {"800 l1 1x1 64->64", 64, 200, 272, 64, 1, 1, 0},
    {"800 l1 3x3 64->64", 64, 200, 272, 64, 3, 1, 1},
    {"800 l1 1x1 64->256", 64, 200, 272, 256, 1, 1, 0},
    {"800 l1 1x1 256->64", 256, 200, 272, 64, 1, 1, 0},
    {"800 l2 3x3 128 s2", 128, 200, 272, 128, 3, 2, 1},
    {"800 l2 3x3 128->128", 128, 100, 136, 128, 3, 1, 1},
    {"800 l2 1x1 512->128", 512, 100, 136, 128, 1, 1, 0},
    {"800 l3 3x3 256->256", 256, 50, 68, 256, 3, 1, 1},
    {"800 l3 1x1 1024->256", 1024, 50, 68, 256, 1, 1, 0},
    {"800 l4 3x3 512->512", 512, 25, 34, 512, 3, 1, 1},
    {"800 l4 1x1 512->2048", 512, 25, 34, 2048, 1, 1, 0},
    {"800 fpn 3x3 256 P2", 256, 200, 272, 256, 3, 1, 1},
    {"800 fpn 1x1 2048->256", 2048, 25, 34, 256, 1, 1, 0},
    // 416x416 input
    {"416 l1 3x3 64->64", 64, 104, 104, 64, 3, 1, 1},
    {"416 l1 1x1 64->256", 64, 104, 104, 256, 1, 1, 0},
    {"416 l3 3x3 256->256", 256, 26, 26, 256, 3, 1, 1},
    {"416 l4 1x1 512->2048", 512, 13, 13, 2048, 1, 1, 0},
    {"416 fpn 3x3 256 P2", 256, 104, 104, 256, 3, 1, 1},
    // mask head, one RoI
    {"mask 3x3 256 14x14", 256, 14, 14, 256, 3, 1, 1},
    // mask head as the pipeline runs it: 16 RoIs side by side with zero separator columns
    {"mask x16 3x3 256 14x239", 256, 14, 239, 256, 3, 1, 1},
};

// With one thread the CPU time of the calling thread is used (robust when the machine is shared:
// time spent descheduled does not count); with more threads, wall-clock time.
static int use_cputime = 1;
static double now(void) {
    struct timespec t;
    clock_gettime(use_cputime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *rv(size_t n) {
    float *p = malloc(n * sizeof(float));
    unsigned s = 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = ((s >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

// Median-free: best of `reps` after one warm-up, repeated until >= 0.3 s spent.
static double best_time(void (*fn)(void *), void *ctx) {
    fn(ctx);
    double best = 1e30, spent = 0;
    int reps = 0;
    while (reps < 3 || (spent < 0.3 && reps < 50)) {
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
    float *in, *w, *b, *out;
} conv_ctx;
static void run_conv(void *v) {
    conv_ctx *c = v;
    const conv_shape *s = c->s;
    em_conv2d_f32(c->in, s->cin, s->h, s->w, c->w, c->b, s->cout, s->k, s->k, s->stride, s->pad, NULL, 1,
                  c->out, NULL);
}
typedef struct {
    float *in, *w, *b, *out;
    int N, K, M;
} lin_ctx;
static void run_lin(void *v) {
    lin_ctx *c = v;
    em_linear_f32(c->in, c->N, c->K, c->w, c->b, c->M, 1, c->out);
}
typedef struct {
    float *in, *w, *b, *out;
    void *scr;
} dec_ctx;
static void run_dec(void *v) {
    dec_ctx *c = v;
    em_deconv2x2s2_f32(c->in, 256, 14, 14, c->w, c->b, 256, 1, c->out, c->scr);
}

// EM_NET=path: time every layer listed in bench/r50fpn_layers.txt (count x single-image calls,
// as the pipeline runs them), print per-layer ms and the total per ISA.
typedef struct {
    char kind[8];
    int a, b, c, d, e, f, g, count;
    float *in, *w, *bias, *out;
    void *scr;
} net_layer;
static void run_net_layer(void *v) {
    net_layer *L = v;
    if (!strcmp(L->kind, "conv"))
        em_conv2d_f32(L->in, L->a, L->b, L->c, L->w, L->bias, L->d, L->e, L->e, L->f, L->g, NULL, 1, L->out, NULL);
    else if (!strcmp(L->kind, "deconv"))
        em_deconv2x2s2_f32(L->in, L->a, L->b, L->c, L->w, L->bias, L->d, 1, L->out, L->scr);
    else
        em_linear_f32(L->in, L->a, L->b, L->w, L->bias, L->c, 1, L->out);
}
static int run_net(const char *path, int *isas, int nisa) {
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("cannot open %s\n", path);
        return 1;
    }
    net_layer L[128];
    int n = 0;
    char line[256];
    while (fgets(line, sizeof line, f) && n < 128) {
        if (line[0] == '#') continue;
        net_layer *l = &L[n];
        if (sscanf(line, "%7s %d %d %d %d %d %d %d %d", l->kind, &l->a, &l->b, &l->c, &l->d, &l->e, &l->f, &l->g,
                   &l->count) == 9)
            n++;
    }
    fclose(f);
    double total[EM_ISA_COUNT] = {0}, gflop_total = 0;
    printf("%-40s %6s %8s", "layer (count x)", "count", "GFLOP");
    for (int i = 0; i < nisa; i++) printf(" %9s ms", em_isa_name(isas[i]));
    printf("\n");
    for (int li = 0; li < n; li++) {
        net_layer *l = &L[li];
        size_t nin, nw, nout;
        double flop;
        if (!strcmp(l->kind, "conv")) {
            int oh = (l->b + 2 * l->g - l->e) / l->f + 1, ow = (l->c + 2 * l->g - l->e) / l->f + 1;
            nin = (size_t)l->a * l->b * l->c, nw = (size_t)l->d * l->a * l->e * l->e, nout = (size_t)l->d * oh * ow;
            flop = 2.0 * nout * l->a * l->e * l->e;
        } else if (!strcmp(l->kind, "deconv")) {
            nin = (size_t)l->a * l->b * l->c, nw = (size_t)l->a * l->d * 4, nout = (size_t)l->d * 4 * l->b * l->c;
            flop = 2.0 * nout * l->a;
        } else {
            nin = (size_t)l->a * l->b, nw = (size_t)l->c * l->b, nout = (size_t)l->a * l->c;
            flop = 2.0 * nout * l->b;
        }
        l->in = rv(nin), l->w = rv(nw), l->bias = rv(l->d > l->c ? l->d : l->c + 1), l->out = malloc(nout * 4);
        l->scr = malloc(nout * 4);
        char name[64];
        snprintf(name, sizeof name, "%s %d %d %d %d k%d s%d p%d", l->kind, l->a, l->b, l->c, l->d, l->e, l->f, l->g);
        printf("%-40s %6d %8.3f", name, l->count, flop * l->count * 1e-9);
        gflop_total += flop * l->count * 1e-9;
        for (int i = 0; i < nisa; i++) {
            em_isa_set(isas[i]);
            double t = best_time(run_net_layer, l) * l->count;
            total[i] += t;
            printf(" %12.1f", t * 1e3);
            fflush(stdout);
        }
        printf("\n");
        free(l->in), free(l->w), free(l->bias), free(l->out), free(l->scr);
    }
    printf("%-40s %6s %8.1f", "TOTAL", "", gflop_total);
    for (int i = 0; i < nisa; i++) printf(" %12.1f", total[i] * 1e3);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    int isas[EM_ISA_COUNT], nisa = 0;
    for (int i = 1; i < argc; i++) {
        int k = em_isa_from_name(argv[i]);
        if (k >= 0 && em_isa_supported(k)) isas[nisa++] = k;
    }
    if (!nisa)
        for (int k = 0; k < EM_ISA_COUNT; k++)
            if (em_isa_supported(k) && k != EM_ISA_SCALAR) isas[nisa++] = k;
    const char *th = getenv("EM_THREADS");
    em_set_num_threads(th ? atoi(th) : 1);
    use_cputime = em_num_threads() == 1;
    if (getenv("EM_NET")) return run_net(getenv("EM_NET"), isas, nisa);
    printf("threads %d (%s time); GFLOP/s (2*MAC/s), best of runs\n%-26s %8s", em_num_threads(), use_cputime ? "thread CPU" : "wall", "shape", "GFLOP");
    for (int i = 0; i < nisa; i++) printf(" %10s", em_isa_name(isas[i]));
    printf("\n");
    int ns = sizeof shapes / sizeof shapes[0];
    for (int si = 0; si < ns; si++) {
        const conv_shape *s = &shapes[si];
        if (getenv("EM_ONLY") && !strstr(s->name, getenv("EM_ONLY"))) continue;
        int oh = (s->h + 2 * s->pad - s->k) / s->stride + 1, ow = (s->w + 2 * s->pad - s->k) / s->stride + 1;
        double flop = 2.0 * s->cout * oh * ow * (double)s->cin * s->k * s->k;
        conv_ctx c = {s, rv((size_t)s->cin * s->h * s->w), rv((size_t)s->cout * s->cin * s->k * s->k),
                      rv(s->cout), malloc((size_t)s->cout * oh * ow * sizeof(float))};
        printf("%-26s %8.3f", s->name, flop * 1e-9);
        for (int i = 0; i < nisa; i++) {
            em_isa_set(isas[i]);
            double t = best_time(run_conv, &c);
            printf(" %10.1f", flop / t * 1e-9);
            fflush(stdout);
        }
        printf("\n");
        free(c.in), free(c.w), free(c.b), free(c.out);
    }
    if (!getenv("EM_ONLY")) {
        lin_ctx c = {rv(1000 * 12544), rv(1024 * 12544), rv(1024), malloc(1000 * 1024 * 4), 1000, 12544, 1024};
        double flop = 2.0 * 1000 * 12544 * 1024;
        printf("%-26s %8.3f", "fc6 1000x12544x1024", flop * 1e-9);
        for (int i = 0; i < nisa; i++) {
            em_isa_set(isas[i]);
            printf(" %10.1f", flop / best_time(run_lin, &c) * 1e-9);
            fflush(stdout);
        }
        printf("\n");
    }
    if (!getenv("EM_ONLY")) {
        dec_ctx c = {rv(256 * 196), rv(256 * 256 * 4), rv(256), malloc(256 * 784 * 4),
                     malloc(em_deconv2x2s2_f32_scratch_bytes(256, 14, 14, 256))};
        double flop = 2.0 * 256 * 256 * 4 * 196;
        printf("%-26s %8.3f", "deconv 256 14->28", flop * 1e-9);
        for (int i = 0; i < nisa; i++) {
            em_isa_set(isas[i]);
            printf(" %10.1f", flop / best_time(run_dec, &c) * 1e-9);
            fflush(stdout);
        }
        printf("\n");
    }
    return 0;
}
