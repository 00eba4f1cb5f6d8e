// Private: the per-ISA peak loops behind em_peak.h (x86/peak_x86.c, arm/peak_arm.c). Each runs
// `iters` iterations of 12 or 24 independent multiply-accumulate instructions (per thread) and
// returns a checksum; EM_PEAK_* is the multiply-accumulates one iteration does.
#ifndef EM_PEAK_INTERNAL_H
#define EM_PEAK_INTERNAL_H
#include <stdint.h>

#if defined(__x86_64__)
int64_t em_peak_i8_avx512vnni(int64_t iters); // 24 vpdpbusd zmm
int64_t em_peak_i8_avx2(int64_t iters);       // 12 vpmaddwd ymm + vpaddd
int64_t em_peak_i8_sse41(int64_t iters);      // 12 pmaddwd xmm + paddd
int64_t em_peak_f32_avx512(int64_t iters);    // 24 vfmadd231ps zmm
int64_t em_peak_f32_avx2(int64_t iters);      // 12 vfmadd231ps ymm
int64_t em_peak_f32_sse(int64_t iters);       // 12 mulps + addps
#define EM_PEAK_I8_AVX512VNNI (24 * 64)
#define EM_PEAK_I8_AVX2 (12 * 16)
#define EM_PEAK_I8_SSE41 (12 * 8)
#define EM_PEAK_F32_AVX512 (24 * 16)
#define EM_PEAK_F32_AVX2 (12 * 8)
#define EM_PEAK_F32_SSE (12 * 4)
#endif
#if defined(__aarch64__)
int64_t em_peak_i8_neondot(int64_t iters); // 24 sdot
int64_t em_peak_i8_neon(int64_t iters);    // 12 x (smull + smlal2 + sadalp)
int64_t em_peak_i8_i8mm(int64_t iters);    // 24 smmla
int64_t em_peak_f32_neon(int64_t iters);   // 12 fmla .4s
#define EM_PEAK_I8_NEONDOT (24 * 16)
#define EM_PEAK_I8_NEON (12 * 16)
#define EM_PEAK_I8_I8MM (24 * 32)
#define EM_PEAK_F32_NEON (12 * 4)
#endif
#endif
