// The one place that decides which kernel paths run: CPU feature detection, the EDGE_MRCNN_ISA
// override and the per-ISA configs (float GEMM parameters, int8 configs). Also the small pthread
// pool behind em_set_num_threads. The public kernel entry points live with their drivers
// (gemm.c: float GEMM, convolution, deconvolution, linear; qgemm.c: the int8 ones).
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "em_internal.h"
#include "em_qinternal.h"
#include "em_qroi_grid.h"
#if defined(__x86_64__)
#include "x86/em_qpanel_x86.h"
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef AT_HWCAP2
#define AT_HWCAP2 26
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

// ---------------------------------------------------------------- ISA detection

static const char *const isa_names[EM_ISA_COUNT] = {"scalar", "sse41", "avx2", "avx512",
                                                   "avx512vnni", "neon", "neondot", "neoi8mm"};

const char *em_isa_name(int isa) {
    if (isa < 0 || isa >= EM_ISA_COUNT) return "unknown";
    return isa_names[isa];
}

int em_isa_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < EM_ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0) return i;
    return -1;
}

#if defined(__x86_64__)
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
static unsigned detect_mask(void) {
    unsigned m = 1u << EM_ISA_SCALAR;
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned maxleaf = r[0];
    cpuid(1, 0, r);
    int sse41 = (r[2] >> 19) & 1, fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1,
        avx = (r[2] >> 28) & 1;
    if (sse41) m |= 1u << EM_ISA_SSE41;
    if (!osxsave || !avx || maxleaf < 7) return m;
    unsigned long long xcr0 = xgetbv0();
    int ymm_os = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
    int zmm_os = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
    cpuid(7, 0, r);
    int avx2 = (r[1] >> 5) & 1, f = (r[1] >> 16) & 1, dq = (r[1] >> 17) & 1, bw = (r[1] >> 30) & 1,
        vl = (r[1] >> 31) & 1, vnni = (r[2] >> 11) & 1;
    if (ymm_os && avx2 && fma) m |= 1u << EM_ISA_AVX2;
    if (ymm_os && zmm_os && avx2 && fma && f && dq && bw && vl) {
        m |= 1u << EM_ISA_AVX512;
        if (vnni) m |= 1u << EM_ISA_AVX512VNNI;
    }
    return m;
}
#elif defined(__aarch64__)
static unsigned detect_mask(void) {
    unsigned m = (1u << EM_ISA_SCALAR) | (1u << EM_ISA_NEON); // NEON is baseline on aarch64
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & HWCAP_ASIMDDP) m |= 1u << EM_ISA_NEONDOT;
    // every i8mm core so far has dotprod too; the neoi8mm table uses both (sdot-free, but its
    // fallback rows are the neondot ones)
    if ((hw2 & HWCAP2_I8MM) && (hw & HWCAP_ASIMDDP)) m |= 1u << EM_ISA_NEOI8MM;
#endif
    return m;
}
#else
static unsigned detect_mask(void) { return 1u << EM_ISA_SCALAR; }
#endif

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static unsigned isa_mask;
static int isa_best_v;
static volatile int isa_cur = -1;

// GEMM parameters per ISA: register tile, cache blocks (kc x nr B micro-panel in L1, mc x kc A
// block in L2, kc x nc B block in L2/L3) and micro-kernel. Read-only after init; switching the
// ISA swaps one pointer, so a GEMM running meanwhile keeps a consistent set.
static em_gemm_params isa_params[EM_ISA_COUNT];
static const em_gemm_params *volatile params_cur;

static void fill_params(void) {
    for (int i = 0; i < EM_ISA_COUNT; i++)
        isa_params[i] = (em_gemm_params){4, 16, 256, 96, 2048, em_ukr_generic_4x16, NULL};
#if defined(__x86_64__)
    isa_params[EM_ISA_SSE41] = (em_gemm_params){6, 8, 256, 96, 2048, em_ukr_sse41_6x8, NULL};
    isa_params[EM_ISA_AVX2] = (em_gemm_params){6, 16, 256, 72, 2048, em_ukr_avx2_6x16, NULL};
    isa_params[EM_ISA_AVX512] =
        (em_gemm_params){8, 32, 256, 128, 2048, em_ukr_avx512_8x32, em_ukr_avx512_8x16h};
    isa_params[EM_ISA_AVX512VNNI] = isa_params[EM_ISA_AVX512];
#endif
#if defined(__aarch64__)
    // Smaller B block: boards have 256 KB - 1 MB of L2 and often little or no L3.
    isa_params[EM_ISA_NEON] = (em_gemm_params){8, 12, 256, 96, 384, em_ukr_neon_8x12, NULL};
    isa_params[EM_ISA_NEONDOT] = isa_params[EM_ISA_NEON];
    isa_params[EM_ISA_NEOI8MM] = isa_params[EM_ISA_NEON];
#endif
}

// int8 kernels per ISA, one config each (as XNNPACK's src/configs/*-config.c): every field set by
// name, the generic C config first and each ISA's overriding what it has. Read-only after init,
// swapped by pointer like the float table.
static em_qgemm_params isa_qparams[EM_ISA_COUNT];
static const em_qgemm_params *volatile qparams_cur;

static const em_qgemm_params qconfig_generic = {
    .name = "generic_8x8", .mr = 8, .nr = 8, .kstep = 4, .panel = EM_QP_K4,
    .ukr = em_qukr_generic_8x8, .prep = NULL, .prep_bytes_per_k = 0, .prep_cstride = 4,
    .row = em_qrow_generic, .rows = NULL, .xor_term = 0,
    .add_row = em_qadd_row_generic, .quant_row = em_qquant_row_generic,
    .roi_row = em_qroi_row_generic, .dequant_row = em_qdequant_row_generic,
};

static void fill_qparams(void) {
    for (int i = 0; i < EM_ISA_COUNT; i++) isa_qparams[i] = qconfig_generic;
#if defined(__x86_64__)
    isa_qparams[EM_ISA_SSE41] = (em_qgemm_params){
        .name = "sse41_4x8", .mr = 4, .nr = 8, .kstep = 4, .panel = EM_QP_K2,
        .ukr = em_qukr_u8s8_sse41_4x8, .prep = em_qprep_s16_k2, .prep_bytes_per_k = 16,
        .prep_cstride = 4, .row = em_qrow_sse41, .rows = NULL, .xor_term = 0,
        .add_row = em_qadd_row_sse41, .quant_row = em_qquant_row_sse41,
        .roi_row = em_qroi_row_generic, .dequant_row = em_qdequant_row_generic,
    };
    isa_qparams[EM_ISA_AVX2] = (em_qgemm_params){
        .name = "avx2_4x16", .mr = 4, .nr = 16, .kstep = 4, .panel = EM_QP_K2,
        .ukr = em_qukr_u8s8_avx2_4x16, .prep = em_qprep_s16_k2, .prep_bytes_per_k = 16,
        .prep_cstride = 4, .row = em_qrow_avx2, .rows = em_qrows_avx2, .xor_term = 0,
        .add_row = em_qadd_row_sse41, .quant_row = em_qquant_row_sse41,
        .roi_row = em_qroi_row_avx2, .dequant_row = em_qdequant_row_generic,
        .roi_grid_deq = em_qroi_grid_deq_avx2, .roi_grid_bins = em_qroi_grid_bins_avx2,
    };
    isa_qparams[EM_ISA_AVX512] = isa_qparams[EM_ISA_AVX2];
    isa_qparams[EM_ISA_AVX512].roi_grid_deq = em_qroi_grid_deq_avx512;
    isa_qparams[EM_ISA_AVX512].roi_grid_bins = em_qroi_grid_bins_avx512;
    isa_qparams[EM_ISA_AVX512].row = em_qrow_avx512;
    isa_qparams[EM_ISA_AVX512].rows = em_qrows_avx512;
    isa_qparams[EM_ISA_AVX512].roi_row = em_qroi_row_avx512;
    isa_qparams[EM_ISA_AVX512VNNI] = (em_qgemm_params){
        .name = "avx512vnni_8x48", .mr = 8, .nr = 48, .kstep = 4, .panel = EM_QP_K4,
        .ukr = em_qukr_u8s8_avx512vnni_8x48, .ukr_rq = em_qukr_rq_u8s8_avx512vnni_8x48, .ukr_rqdc = em_qukr_rqdc_u8s8_avx512vnni_8x48, 
        .ukr_rqnm = em_qukr_rqnm_u8s8_avx512vnni_8x48, .rows1 = em_q1rows_unit_avx512vnni,
        .ukr_rqf = em_qukr_rqf_u8s8_avx512vnni_8x48,
        .prep = NULL, .prep_bytes_per_k = 0,
        .src_panels_setup = em_qpanel48_setup, .src_panels = em_qpanels48_avx512,
        .cols_panel = em_qcols_panel48_avx512,
        .roi_grid_deq = em_qroi_grid_deq_avx512, .roi_grid_bins = em_qroi_grid_bins_avx512,
        .prep_cstride = 4, .row = em_qrow_avx512, .rows = em_qrows_avx512, .xor_term = 0,
        .add_row = em_qadd_row_sse41, .quant_row = em_qquant_row_sse41,
        .roi_row = em_qroi_row_avx512, .dequant_row = em_qdequant_row_generic,
    };
    // the element-wise rows of both AVX-512 ISAs (x86/qops_avx512.c)
    static const int avx512_isas[2] = {EM_ISA_AVX512, EM_ISA_AVX512VNNI};
    for (int i = 0; i < 2; i++) {
        em_qgemm_params *q = &isa_qparams[avx512_isas[i]];
        q->add_row = em_qadd_row_avx512;
        q->add_up2_row = em_qaddup2_row_avx512;
        q->quant_row = em_qquant_row_avx512;
        q->dequant_row = em_qdequant_row_avx512;
    }
#endif
#if defined(__aarch64__)
    // The NEON rows (requantisation, add, quantise, dequantise, RoIAlign) are baseline NEON and
    // shared; the three ISAs differ in the micro-kernel, its panel and weight preparation.
    isa_qparams[EM_ISA_NEON] = (em_qgemm_params){
        .name = "neonmlal_4x8", .mr = 4, .nr = 8, .kstep = 8, .panel = EM_QP_K8X2,
        .ukr = em_qukr_s8s8_neonmlal_4x8, .prep = em_qprep_mlal, .prep_bytes_per_k = 16,
        .prep_cstride = 16, .row = em_qrow_neon, .rows = em_qrows_neon, .xor_term = 1,
        .add_row = em_qadd_row_neon, .quant_row = em_qquant_row_neon,
        // RoIAlign row: em_qroi_row_neon dequantises 16 bytes with 4 tbl (float bits 2^23 + q)
        // instead of widening; the earlier widening NEON row ran 515 M instructions under qemu
        // (cross/profile.sh, cortex-a76) where clang's vectorised generic row ran 447 M.
        .roi_row = em_qroi_row_neon, .dequant_row = em_qdequant_row_neon,
    };
    isa_qparams[EM_ISA_NEONDOT] = isa_qparams[EM_ISA_NEON];
    isa_qparams[EM_ISA_NEONDOT].name = "neondot_8x8";
    isa_qparams[EM_ISA_NEONDOT].mr = 8;
    isa_qparams[EM_ISA_NEONDOT].kstep = 4;
    isa_qparams[EM_ISA_NEONDOT].panel = EM_QP_K4X;
    isa_qparams[EM_ISA_NEONDOT].ukr = em_qukr_u8s8_neondot_8x8;
    isa_qparams[EM_ISA_NEONDOT].prep = NULL;
    isa_qparams[EM_ISA_NEONDOT].prep_bytes_per_k = 0;
    isa_qparams[EM_ISA_NEONDOT].prep_cstride = 4;
    isa_qparams[EM_ISA_NEONDOT].xor_term = 1;
    isa_qparams[EM_ISA_NEOI8MM] = isa_qparams[EM_ISA_NEON];
    isa_qparams[EM_ISA_NEOI8MM].name = "neoi8mm_8x8";
    isa_qparams[EM_ISA_NEOI8MM].mr = 8;
    isa_qparams[EM_ISA_NEOI8MM].kstep = 8;
    isa_qparams[EM_ISA_NEOI8MM].panel = EM_QP_K8;
    isa_qparams[EM_ISA_NEOI8MM].ukr = em_qukr_u8s8_neoi8mm_8x8;
    isa_qparams[EM_ISA_NEOI8MM].prep = em_qprep_i8mm;
    isa_qparams[EM_ISA_NEOI8MM].prep_bytes_per_k = 8;
    isa_qparams[EM_ISA_NEOI8MM].prep_cstride = 8;
    isa_qparams[EM_ISA_NEOI8MM].xor_term = 0;
#endif
}

const char *em_qgemm_kernel_name(void) { return em_qgemm_params_current()->name; }

static void select_params(int isa) {
    params_cur = &isa_params[isa];
    qparams_cur = &isa_qparams[isa];
}

static void isa_init(void) {
    fill_params();
    fill_qparams();
    isa_mask = detect_mask();
    isa_best_v = EM_ISA_SCALAR;
    for (int i = EM_ISA_COUNT - 1; i >= 0; i--)
        if (isa_mask & (1u << i)) {
            isa_best_v = i;
            break;
        }
    int cur = isa_best_v;
    const char *env = getenv("EDGE_MRCNN_ISA");
    if (env && *env) {
        int want = em_isa_from_name(env);
        // An unknown or unsupported request falls back silently; the CLI compares and reports.
        if (want >= 0 && (isa_mask & (1u << want))) cur = want;
    }
    select_params(cur);
    isa_cur = cur;
}

int em_isa_best(void) {
    pthread_once(&isa_once, isa_init);
    return isa_best_v;
}

int em_isa_supported(int isa) {
    pthread_once(&isa_once, isa_init);
    if (isa < 0 || isa >= EM_ISA_COUNT) return 0;
    return (isa_mask >> isa) & 1;
}

int em_isa_current(void) {
    pthread_once(&isa_once, isa_init);
    return isa_cur;
}

int em_isa_set(int isa) {
    if (!em_isa_supported(isa)) return -1;
    select_params(isa);
    isa_cur = isa;
    return 0;
}

const em_gemm_params *em_gemm_params_current(void) {
    pthread_once(&isa_once, isa_init);
    return params_cur;
}

const em_qgemm_params *em_qgemm_params_current(void) {
    pthread_once(&isa_once, isa_init);
    return qparams_cur;
}

// ---------------------------------------------------------------- thread pool

#define EM_MAX_THREADS 64

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;   // guards the fields below
static pthread_cond_t pool_cv_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_cv_done = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER; // one parallel job at a time
static int pool_threads = 1;     // requested thread count
static int pool_workers = 0;     // worker threads started (they never exit)
static unsigned long pool_gen = 0;
static int pool_ntasks = 0, pool_pending = 0;
static void (*pool_fn)(void *, int);
static void *pool_ctx;

// x86-64: hand-offs spin briefly before sleeping: a worker that finished a task polls the
// generation for up to EM_POOL_SPIN pause instructions (~0.1 ms on the Xeon of
// bench/results/roofline_s5_x86.md, ~27 ns each) before it waits on the condition variable, and
// the caller polls the pending count likewise before waiting for the workers. Consecutive
// layers then start and finish without a futex wake-up (tens of microseconds on a virtual
// machine) per call. pool_gen and pool_pending change under pool_mu; the polls only read them
// (atomically) and take pool_mu before acting. Elsewhere no spin (0): the aarch64 instruction
// counts of cross/profile.sh stay deterministic.
#if defined(__x86_64__)
#define EM_POOL_SPIN 4000
static inline void pool_relax(void) { __builtin_ia32_pause(); }
#else
#define EM_POOL_SPIN 0
static inline void pool_relax(void) {}
#endif

static void *pool_main(void *arg) {
    int id = (int)(intptr_t)arg; // worker id >= 1 runs task id
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < EM_POOL_SPIN && __atomic_load_n(&pool_gen, __ATOMIC_ACQUIRE) == seen; i++)
            pool_relax();
        pthread_mutex_lock(&pool_mu);
        while (pool_gen == seen) pthread_cond_wait(&pool_cv_work, &pool_mu);
        seen = pool_gen;
        if (id < pool_ntasks) {
            void (*fn)(void *, int) = pool_fn;
            void *ctx = pool_ctx;
            pthread_mutex_unlock(&pool_mu);
            fn(ctx, id);
            pthread_mutex_lock(&pool_mu);
            if (__atomic_sub_fetch(&pool_pending, 1, __ATOMIC_RELEASE) == 0) pthread_cond_signal(&pool_cv_done);
        }
        pthread_mutex_unlock(&pool_mu);
    }
    return NULL;
}

void em_set_num_threads(int n) {
    if (n < 1) n = 1;
    if (n > EM_MAX_THREADS) n = EM_MAX_THREADS;
    pthread_mutex_lock(&pool_busy);
    pthread_mutex_lock(&pool_mu);
    while (pool_workers < n - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 1 << 20);
        int ok = pthread_create(&th, &at, pool_main, (void *)(intptr_t)(pool_workers + 1)) == 0;
        pthread_attr_destroy(&at);
        if (!ok) break;
        pthread_detach(th);
        pool_workers++;
    }
    pool_threads = pool_workers + 1 < n ? pool_workers + 1 : n;
    pthread_mutex_unlock(&pool_mu);
    pthread_mutex_unlock(&pool_busy);
}

int em_num_threads(void) {
    pthread_mutex_lock(&pool_mu);
    int n = pool_threads;
    pthread_mutex_unlock(&pool_mu);
    return n;
}

void em_parallel(int ntasks, void (*fn)(void *ctx, int t), void *ctx) {
    if (ntasks <= 0) return;
    // Serial when there is one task, or when another thread is using the pool right now (the
    // results do not depend on how tasks are spread).
    if (ntasks == 1 || pthread_mutex_trylock(&pool_busy) != 0) {
        for (int t = 0; t < ntasks; t++) fn(ctx, t);
        return;
    }
    pthread_mutex_lock(&pool_mu);
    int nw = pool_workers;
    int par = ntasks - 1 < nw ? ntasks - 1 : nw; // tasks 1..par go to workers
    pool_fn = fn;
    pool_ctx = ctx;
    pool_ntasks = par + 1;
    pool_pending = par;
    __atomic_add_fetch(&pool_gen, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool_cv_work);
    pthread_mutex_unlock(&pool_mu);
    fn(ctx, 0);
    for (int t = par + 1; t < ntasks; t++) fn(ctx, t); // more tasks than workers: run them here
    for (int i = 0; i < EM_POOL_SPIN && __atomic_load_n(&pool_pending, __ATOMIC_ACQUIRE) > 0; i++) pool_relax();
    pthread_mutex_lock(&pool_mu);
    while (pool_pending > 0) pthread_cond_wait(&pool_cv_done, &pool_mu);
    pthread_mutex_unlock(&pool_mu);
    pthread_mutex_unlock(&pool_busy);
}

void em_run_tasks(int ntasks, void (*fn)(void *ctx, int t), void *ctx) {
    if (fn) em_parallel(ntasks, fn, ctx);
}

int em_take_next(int *counter) { return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

typedef struct {
    void (*fn)(void *, long, long);
    void *ctx;
    long n;
    int nt;
} prange;

static void prange_task(void *v, int t) {
    const prange *p = (const prange *)v;
    long lo = p->n * t / p->nt, hi = p->n * (t + 1) / p->nt;
    if (lo < hi) p->fn(p->ctx, lo, hi);
}

void em_parallel_for(long n, long grain, void (*fn)(void *ctx, long lo, long hi), void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    long nt = em_num_threads(), most = n / grain;
    if (nt > most) nt = most;
    if (nt <= 1) {
        fn(ctx, 0, n);
        return;
    }
    prange p = {fn, ctx, n, (int)nt};
    em_parallel((int)nt, prange_task, &p);
}
