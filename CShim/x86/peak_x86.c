// Peak loops of the x86 int8 and float paths (the roofline of `bench`, em_peak.h): short
// in-register loops of the micro-kernels' own multiply-accumulate instructions with independent
// accumulators (24 zmm, 12 xmm/ymm: all the registers allow), no loads. Each
// returns a checksum of its accumulators so that the loop cannot be optimised away; the MACs
// per iteration are the EM_PEAK_* constants of em_peak_internal.h.
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_peak_internal.h"

#define ACC12(T, z) T c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z, c9 = z, c10 = z, c11 = z
// opaque: the compiler must not know the operands are loop-invariant constants (and, where the
// product is a separate instruction, must not share one product between the accumulators)
#define OPAQUE(x) __asm__ volatile("" : "+v"(x))

// avx512vnni: vpdpbusd zmm (u8 x s8 -> 4 products summed per int32 lane, 64 MAC), 24
// accumulators as the 8x48 micro-kernel (12 leave it latency-bound on some cores).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
int64_t em_peak_i8_avx512vnni(int64_t iters) {
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    OPAQUE(a);
    OPAQUE(b);
    __m512i c[24];
#pragma clang loop unroll(full)
    for (int j = 0; j < 24; j++) c[j] = _mm512_setzero_si512();
    for (int64_t i = 0; i < iters; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 24; j++) c[j] = _mm512_dpbusd_epi32(c[j], a, b);
        OPAQUE(a);
    }
#pragma clang loop unroll(full)
    for (int j = 1; j < 24; j++) c[0] = _mm512_add_epi32(c[0], c[j]);
    return _mm512_reduce_add_epi32(c[0]);
}

// avx2 (and avx512 without VNNI, which runs the AVX2 int8 kernel): vpmaddwd ymm on int16-widened
// activations + vpaddd into int32 (16 MAC per pair), the formulation of em_qukr_u8s8_avx2_4x16.
__attribute__((target("avx2")))
int64_t em_peak_i8_avx2(int64_t iters) {
    __m256i a = _mm256_set1_epi16(3), b = _mm256_set1_epi16(-2);
    OPAQUE(a);
    OPAQUE(b);
    ACC12(__m256i, _mm256_setzero_si256());
#define S(c) OPAQUE(a); c = _mm256_add_epi32(c, _mm256_madd_epi16(a, b))
    for (int64_t i = 0; i < iters; i++) {
        S(c0); S(c1); S(c2); S(c3); S(c4); S(c5); S(c6); S(c7); S(c8); S(c9); S(c10); S(c11);
        OPAQUE(a);
    }
#undef S
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
    int32_t t[8];
    _mm256_storeu_si256((__m256i *)t, s);
    return (int64_t)t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

// sse41: pmaddwd xmm + paddd (8 MAC per pair), as em_qukr_u8s8_sse41_4x8.
__attribute__((target("sse4.1")))
int64_t em_peak_i8_sse41(int64_t iters) {
    __m128i a = _mm_set1_epi16(3), b = _mm_set1_epi16(-2);
    OPAQUE(a);
    OPAQUE(b);
    ACC12(__m128i, _mm_setzero_si128());
#define S(c) OPAQUE(a); c = _mm_add_epi32(c, _mm_madd_epi16(a, b))
    for (int64_t i = 0; i < iters; i++) {
        S(c0); S(c1); S(c2); S(c3); S(c4); S(c5); S(c6); S(c7); S(c8); S(c9); S(c10); S(c11);
        OPAQUE(a);
    }
#undef S
    __m128i s = _mm_add_epi32(_mm_add_epi32(_mm_add_epi32(c0, c1), _mm_add_epi32(c2, c3)),
                              _mm_add_epi32(_mm_add_epi32(c4, c5), _mm_add_epi32(c6, c7)));
    s = _mm_add_epi32(s, _mm_add_epi32(_mm_add_epi32(c8, c9), _mm_add_epi32(c10, c11)));
    return (int64_t)_mm_extract_epi32(s, 0) + _mm_extract_epi32(s, 1) + _mm_extract_epi32(s, 2) +
           _mm_extract_epi32(s, 3);
}

// Float: vfmadd231ps zmm (16 MAC, 24 accumulators), ymm (8), SSE mulps + addps (4; the SSE4.1
// float kernel has no FMA).
__attribute__((target("avx512f")))
int64_t em_peak_f32_avx512(int64_t iters) {
    __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0.0f);
    OPAQUE(a);
    OPAQUE(b);
    __m512 c[24];
#pragma clang loop unroll(full)
    for (int j = 0; j < 24; j++) c[j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < iters; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 24; j++) c[j] = _mm512_fmadd_ps(a, b, c[j]);
        OPAQUE(a);
    }
#pragma clang loop unroll(full)
    for (int j = 1; j < 24; j++) c[0] = _mm512_add_ps(c[0], c[j]);
    return (int64_t)_mm512_reduce_add_ps(c[0]);
}

__attribute__((target("avx2,fma")))
int64_t em_peak_f32_avx2(int64_t iters) {
    __m256 a = _mm256_set1_ps(1.0f), b = _mm256_set1_ps(0.0f);
    OPAQUE(a);
    OPAQUE(b);
    ACC12(__m256, _mm256_setzero_ps());
#define S(c) c = _mm256_fmadd_ps(a, b, c)
    for (int64_t i = 0; i < iters; i++) {
        S(c0); S(c1); S(c2); S(c3); S(c4); S(c5); S(c6); S(c7); S(c8); S(c9); S(c10); S(c11);
        OPAQUE(a);
    }
#undef S
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float t[8];
    _mm256_storeu_ps(t, s);
    return (int64_t)(t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7]);
}

int64_t em_peak_f32_sse(int64_t iters) {
    __m128 a = _mm_set1_ps(1.0f), b = _mm_set1_ps(0.0f);
    OPAQUE(a);
    OPAQUE(b);
    ACC12(__m128, _mm_setzero_ps());
#define S(c) OPAQUE(a); c = _mm_add_ps(c, _mm_mul_ps(a, b))
    for (int64_t i = 0; i < iters; i++) {
        S(c0); S(c1); S(c2); S(c3); S(c4); S(c5); S(c6); S(c7); S(c8); S(c9); S(c10); S(c11);
        OPAQUE(a);
    }
#undef S
    __m128 s = _mm_add_ps(_mm_add_ps(_mm_add_ps(c0, c1), _mm_add_ps(c2, c3)),
                          _mm_add_ps(_mm_add_ps(c4, c5), _mm_add_ps(c6, c7)));
    s = _mm_add_ps(s, _mm_add_ps(_mm_add_ps(c8, c9), _mm_add_ps(c10, c11)));
    float t[4];
    _mm_storeu_ps(t, s);
    return (int64_t)(t[0] + t[1] + t[2] + t[3]);
}
#endif
