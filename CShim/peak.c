// em_peak.h: runs the ISA's peak loop (x86/peak_x86.c, arm/peak_arm.c, the scalar one here) on
// the kernel thread pool and reports multiply-accumulates per second.
#define _GNU_SOURCE
#include <stdint.h>
#include <time.h>

#include "em_internal.h"
#include "em_peak_internal.h"
#include "include/em_peak.h"

typedef int64_t (*peak_fn)(int64_t iters);

// Scalar: 32-bit multiply-add, 12 independent chains (kept scalar: each accumulator is opaque to
// the vectoriser).
static int64_t peak_i32_scalar(int64_t iters) {
    int32_t a = 3, b = -2;
    __asm__ volatile("" : "+r"(a), "+r"(b));
    int32_t c[12] = {0};
    for (int64_t i = 0; i < iters; i++) {
        for (int j = 0; j < 12; j++) {
            c[j] += a * b;
            __asm__ volatile("" : "+r"(c[j]));
        }
    }
    int64_t s = 0;
    for (int j = 0; j < 12; j++) s += c[j];
    return s;
}

#if defined(__x86_64__)
#define FOPAQUE(x) __asm__ volatile("" : "+x"(x))
#elif defined(__aarch64__)
#define FOPAQUE(x) __asm__ volatile("" : "+w"(x))
#else
#define FOPAQUE(x) __asm__ volatile("" : "+m"(x))
#endif

static int64_t peak_f32_scalar(int64_t iters) {
    float a = 1.0f, b = 0.0f;
    FOPAQUE(a);
    FOPAQUE(b);
    float c[12] = {0};
    for (int64_t i = 0; i < iters; i++) {
        for (int j = 0; j < 12; j++) {
            c[j] += a * b;
            FOPAQUE(c[j]);
        }
    }
    float s = 0;
    for (int j = 0; j < 12; j++) s += c[j];
    return (int64_t)s;
}

// The loop, its MACs per iteration and its name for an ISA; fn NULL if unknown.
static peak_fn pick(int isa, int f32, int *macs, const char **name) {
    *macs = 12;
    *name = f32 ? "scalar mul + add" : "scalar imul + add";
    peak_fn fn = f32 ? peak_f32_scalar : peak_i32_scalar;
    switch (isa) {
#if defined(__x86_64__)
    case EM_ISA_SSE41:
        if (f32) *macs = EM_PEAK_F32_SSE, *name = "mulps + addps xmm", fn = em_peak_f32_sse;
        else *macs = EM_PEAK_I8_SSE41, *name = "pmaddwd + paddd xmm", fn = em_peak_i8_sse41;
        break;
    case EM_ISA_AVX2:
        if (f32) *macs = EM_PEAK_F32_AVX2, *name = "vfmadd231ps ymm", fn = em_peak_f32_avx2;
        else *macs = EM_PEAK_I8_AVX2, *name = "vpmaddwd + vpaddd ymm", fn = em_peak_i8_avx2;
        break;
    case EM_ISA_AVX512: // the int8 path of plain AVX-512 is the AVX2 kernel
        if (f32) *macs = EM_PEAK_F32_AVX512, *name = "vfmadd231ps zmm", fn = em_peak_f32_avx512;
        else *macs = EM_PEAK_I8_AVX2, *name = "vpmaddwd + vpaddd ymm", fn = em_peak_i8_avx2;
        break;
    case EM_ISA_AVX512VNNI:
        if (f32) *macs = EM_PEAK_F32_AVX512, *name = "vfmadd231ps zmm", fn = em_peak_f32_avx512;
        else *macs = EM_PEAK_I8_AVX512VNNI, *name = "vpdpbusd zmm", fn = em_peak_i8_avx512vnni;
        break;
#endif
#if defined(__aarch64__)
    case EM_ISA_NEON:
        if (f32) *macs = EM_PEAK_F32_NEON, *name = "fmla .4s", fn = em_peak_f32_neon;
        else *macs = EM_PEAK_I8_NEON, *name = "smull + smlal2 + sadalp", fn = em_peak_i8_neon;
        break;
    case EM_ISA_NEONDOT:
        if (f32) *macs = EM_PEAK_F32_NEON, *name = "fmla .4s", fn = em_peak_f32_neon;
        else *macs = EM_PEAK_I8_NEONDOT, *name = "sdot", fn = em_peak_i8_neondot;
        break;
    case EM_ISA_NEOI8MM:
        if (f32) *macs = EM_PEAK_F32_NEON, *name = "fmla .4s", fn = em_peak_f32_neon;
        else *macs = EM_PEAK_I8_I8MM, *name = "smmla", fn = em_peak_i8_i8mm;
        break;
#endif
    default:
        break;
    }
    return fn;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define PEAK_MAX_THREADS 64

typedef struct {
    peak_fn fn;
    double seconds;
    int64_t iters[PEAK_MAX_THREADS];
    double best[PEAK_MAX_THREADS]; // fastest batch, iterations per second
    volatile int64_t sink[PEAK_MAX_THREADS];
} peak_ctx;

static void peak_task(void *vctx, int task) {
    peak_ctx *x = (peak_ctx *)vctx;
    const int64_t batch = 4096; // ~10-100 us between clock reads on a desktop core
    int64_t n = 0, s = 0;
    double t0 = now_s(), t = t0, best = 0;
    do {
        s += x->fn(batch);
        n += batch;
        double t1 = now_s();
        if (t1 > t && batch / (t1 - t) > best) best = batch / (t1 - t);
        t = t1;
    } while (t - t0 < x->seconds);
    x->iters[task] = n;
    x->best[task] = best;
    x->sink[task] = s;
}

static double run_peak(int isa, int f32, int threads, double seconds, double *burst) {
    if (burst) *burst = -1.0;
    if (!em_isa_supported(isa)) return -1.0;
    int macs;
    const char *name;
    peak_fn fn = pick(isa, f32, &macs, &name);
    int nt = threads < 1 ? 1 : threads;
    int pool = em_num_threads();
    if (nt > pool) nt = pool;
    if (nt > PEAK_MAX_THREADS) nt = PEAK_MAX_THREADS;
    if (!(seconds >= 0.001)) seconds = 0.001;
    if (seconds > 10) seconds = 10;
    peak_ctx x = {.fn = fn, .seconds = seconds};
    double t0 = now_s();
    em_parallel(nt, peak_task, &x);
    double wall = now_s() - t0;
    double total = 0, best = 0;
    for (int t = 0; t < nt; t++) {
        total += (double)x.iters[t] * macs;
        best += x.best[t] * macs;
    }
    if (burst) *burst = best > 0 ? best : -1.0;
    return wall > 0 ? total / wall : -1.0;
}

double em_int8_peak_macs_per_s(int isa, int threads, double seconds, double *burst) {
    return run_peak(isa, 0, threads, seconds, burst);
}

double em_f32_peak_macs_per_s(int isa, int threads, double seconds, double *burst) {
    return run_peak(isa, 1, threads, seconds, burst);
}

const char *em_int8_peak_instruction(int isa) {
    int macs;
    const char *name;
    pick(isa, 0, &macs, &name);
    return name;
}

const char *em_f32_peak_instruction(int isa) {
    int macs;
    const char *name;
    pick(isa, 1, &macs, &name);
    return name;
}
