// Private declarations shared by dispatch.c, the GEMM driver and the per-ISA files. Not part of
// the CShim module interface.
#ifndef EM_INTERNAL_H
#define EM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "em_dispatch.h"
#include "em_kernels.h"

// Fused epilogue of a full tile, applied in this order after the product:
// + bias_row[i] (per row), + bias_col[j] (per column), + res[i * ldr + j], ReLU. Pointers are
// already offset to the tile's first row/column; NULL/0 = absent.
typedef struct em_epi {
    const float *bias_row, *bias_col, *res;
    long ldr;
    int relu;
} em_epi;

// Micro-kernel: C[MR x NR] = (load_c ? C : 0) + Ap * Bp over kc steps, then epi (if not NULL).
// Ap: packed A panel, kc groups of MR values (column k of the MR rows).
// Bp: packed B panel, kc groups of NR values (row k of the NR columns).
// The tile is always full (the driver uses a temporary tile at the edges).
typedef void (*em_ukernel_fn)(int kc, const float *Ap, const float *Bp, float *C, long ldc,
                              int load_c, const em_epi *epi);

typedef struct em_gemm_params {
    int mr, nr;     // register tile
    int kc, mc, nc; // cache blocks (mc multiple of mr, nc multiple of nr)
    em_ukernel_fn ukr;
    // Optional MR x (NR/2) kernel on the same NR-wide panels, for edge tiles of <= NR/2 columns.
    em_ukernel_fn ukr_half;
} em_gemm_params;

// Filled by dispatch.c for the ISA in use.
const em_gemm_params *em_gemm_params_current(void);

// Micro-kernels of the per-ISA files (each exists only when its file compiles for this target).
void em_ukr_generic_4x16(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                         const em_epi *epi);
#if defined(__x86_64__)
void em_ukr_sse41_6x8(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                      const em_epi *epi);
void em_ukr_avx2_6x16(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                         const em_epi *epi);
void em_ukr_avx512_8x32(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                        const em_epi *epi);
void em_ukr_avx512_8x16h(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                         const em_epi *epi);
#endif
#if defined(__aarch64__)
void em_ukr_neon_8x12(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                         const em_epi *epi);
#endif

// One GEMM problem as the driver sees it: C[M x N] (+)= A * B (+ bias) (+ residual), ReLU.
enum { EM_B_STRIDED = 0, EM_B_CONV = 1 };
typedef struct em_gemm_job {
    int M, N, K;
    const float *A;
    long a_rs, a_cs; // A(m, k) = A[m * a_rs + k * a_cs]
    int b_kind;
    const float *B;
    long b_rs, b_cs; // EM_B_STRIDED: B(k, n) = B[k * b_rs + n * b_cs]
    // EM_B_CONV: B = im2col of `B` viewed as [Cin, H, W]; k = (ci, ky, kx), n = (oy, ox).
    int H, W, KH, KW, stride, pad, OW;
    float *C;
    long ldc;
    const float *bias_row; // [M] or NULL
    const float *bias_col; // [N] or NULL
    const float *res;      // [M x N] with leading dimension ldr, or NULL (must not alias C)
    long ldr;
    int accumulate, relu;
} em_gemm_job;

// Runs a job with the current ISA's micro-kernel, split over em_num_threads() threads. Returns 0,
// or -1 if the packing buffers could not be allocated (the caller then falls back).
int em_gemm_run(const em_gemm_job *job);

// One output-row segment of an im2col gather (float gemm.c and int8 qgemm.c): output pixels
// t = 0..len-1 of the segment read input column ix0 + t * s of a row W wide. [*tlo, *thi) are
// the t whose column is inside the row (the rest is padding), clamped to [0, len].
static inline void em_conv_segment(int ix0, int s, int W, int len, int *tlo, int *thi) {
    int lo, hi;
    if (s == 1) {
        lo = ix0 >= 0 ? 0 : -ix0;
        hi = W - ix0;
    } else {
        lo = ix0 >= 0 ? 0 : (-ix0 + s - 1) / s;
        hi = ix0 < W ? (W - 1 - ix0) / s + 1 : 0;
    }
    if (lo > len) lo = len;
    if (hi > len) hi = len;
    if (hi < lo) hi = lo;
    *tlo = lo;
    *thi = hi;
}

// Task t of ntasks gets tiles [*lo, *hi) of `tiles` (contiguous, sizes differing by at most 1).
static inline void em_task_range(int tiles, int t, int ntasks, int *lo, int *hi) {
    *lo = (int)((long)tiles * t / ntasks);
    *hi = (int)((long)tiles * (t + 1) / ntasks);
}

// Thread pool: runs fn(ctx, t) for t in [0, ntasks), ntasks <= em_num_threads(); task 0 runs on
// the calling thread. Returns after all tasks finished.
void em_parallel(int ntasks, void (*fn)(void *ctx, int t), void *ctx);
// fn(ctx, lo, hi) over [0, n) split into at most em_num_threads() contiguous ranges of at least
// `grain` items each (one call on the calling thread when n < 2 * grain): for element-wise work
// whose result does not depend on the split.
void em_parallel_for(long n, long grain, void (*fn)(void *ctx, long lo, long hi), void *ctx);

#endif
