// edge-mrcnn run-time ISA selection: the one place that decides which kernel paths run.
#ifndef EM_DISPATCH_H
#define EM_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum em_isa {
    EM_ISA_SCALAR = 0,
    EM_ISA_SSE41 = 1,
    EM_ISA_AVX2 = 2,       // AVX2 + FMA
    EM_ISA_AVX512 = 3,     // AVX-512 F/BW/DQ/VL
    EM_ISA_AVX512VNNI = 4, // AVX-512 + VNNI
    EM_ISA_NEON = 5,
    EM_ISA_NEONDOT = 6,    // NEON + dotprod
    EM_ISA_NEOI8MM = 7,    // NEON + dotprod + i8mm (Armv8.6 FEAT_I8MM)
    EM_ISA_COUNT = 8
} em_isa;

// Best ISA this CPU supports (cpuid / getauxval).
int em_isa_best(void);
// ISA in use. First call initialises from EDGE_MRCNN_ISA (if set and supported) or em_isa_best().
int em_isa_current(void);
// Force an ISA. Returns 0 on success, -1 if this CPU (or this build) cannot run it.
int em_isa_set(int isa);
// "scalar", "sse41", "avx2", "avx512", "avx512vnni", "neon", "neondot", "neoi8mm".
const char *em_isa_name(int isa);
// Inverse of em_isa_name; -1 for an unknown name.
int em_isa_from_name(const char *name);
// 1 if this CPU and build can run the ISA.
int em_isa_supported(int isa);
// Name of the int8 GEMM micro-kernel the current ISA runs (e.g. "neonmlal_4x8"), for logs.
const char *em_qgemm_kernel_name(void);

// ---------------------------------------------------------------- micro-kernel test hooks
// For the direct micro-kernel tester (Sources/EdgeMRCNN/SelfTest/MicroKernelTester.swift, run by
// `selftest` and by XCTest): the current ISA's micro-kernels called once, on operands the hooks
// put into the ISA's own layouts, with no driver around them.
// int8: *mr x *nr tile (channels x pixels), k granularity *kstep.
void em_qukr_info(int *mr, int *nr, int *kstep);
// acc [8 x nr] (row stride nr) = (accumulate ? acc : 0) + w [8 x K] (row-major, -127..127) times
// x [K x nr] (u8, row-major): w packed as one 8-channel block, x as one panel, the micro-kernel
// called for each mr-channel slice over K rounded up to kstep, then 128 * rowsum added for the
// ISAs that offset the activations (so the result is the plain u8 x s8 sum). Returns 0, or -1
// (bad K, allocation failure).
int em_qukr_call(int K, const int8_t *w, const uint8_t *x, int32_t *acc, int accumulate);
// The requantising micro-kernel of the current ISA (the driver's last K slice of a CHW output),
// called as the driver does: w [8 x K] and x [K x nr] as for em_qukr_call, the plain micro-kernel
// over all K slices of 512 but the last, then the requantising one over the last (adding the
// earlier slices' tile), writing rows i < rows (1..8) x pixels p < nv (1..nr) of the uint8 output
// dst[i * dst_ld + p] = requant(sum_i,p + terms[i]; mults[i], z_out, lo, res ? res[i * res_ld + p]
// : none, z_res, res_mult), and nothing else. Returns 0, 1 if the ISA has none (the driver then
// requantises in its epilogue), -1 on bad arguments or allocation failure.
int em_qukr_rq_call(int K, const int8_t *w, const uint8_t *x, int rows, int nv, const int32_t *terms,
                    const float *mults, int32_t z_out, int32_t lo, const uint8_t *res, long res_ld,
                    int32_t z_res, float res_mult, uint8_t *dst, long dst_ld);
// The reference requantisation of one row (the scalar definition, em_q_finish): dst[p] for p < n
// from acc[p] (term included), mult, z_out, lo and the optional residual row.
void em_qrow_ref_call(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                      const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst);
// float: *mr x *nr register tile.
void em_ukr_info(int *mr, int *nr);
// C [mr x nr] (row stride ldc) = (load_c ? C : 0) + A [mr x K] (row-major) * B [K x nr]
// (row-major), then + bias[i] per row if bias != NULL and ReLU if relu: one micro-kernel call
// (its fused epilogue). Returns 0, or -1.
int em_ukr_call(int K, const float *A, const float *B, float *C, long ldc, int load_c,
                const float *bias, int relu);

// Worker threads the kernels may use (>= 1). Results do not depend on it.
void em_set_num_threads(int n);
int em_num_threads(void);
// Runs fn(ctx, t) for t in [0, ntasks) on the kernel threads (task 0 on the calling thread; tasks
// beyond em_num_threads(), or all of them while the pool is busy, run on the calling thread) and
// returns when all are done. Kernels called from inside a task run single-threaded.
void em_run_tasks(int ntasks, void (*fn)(void *ctx, int t), void *ctx);
// Atomically adds 1 to *counter and returns its previous value (em_run_tasks tasks taking work
// items one at a time from a shared counter).
int em_take_next(int *counter);

#ifdef __cplusplus
}
#endif
#endif
