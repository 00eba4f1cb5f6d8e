// edge-mrcnn run-time ISA selection: the one place that decides which kernel paths run.
#ifndef EM_DISPATCH_H
#define EM_DISPATCH_H

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

// Worker threads the kernels may use (>= 1). Results do not depend on it.
void em_set_num_threads(int n);
int em_num_threads(void);

#ifdef __cplusplus
}
#endif
#endif
