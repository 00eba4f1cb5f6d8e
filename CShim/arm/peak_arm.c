// Peak loops of the aarch64 int8 and float paths (the roofline of `bench`, em_peak.h): short
// in-register loops of the micro-kernels' multiply-accumulate instructions with 12 or 24
// independent accumulators, no loads; each returns a checksum so it cannot be optimised away. One function
// per instruction family, each with its own target attribute (the file compiles for baseline
// armv8-a; a function runs only when dispatch has checked the CPU has its feature).
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_peak_internal.h"

#define OPAQUE(x) __asm__ volatile("" : "+w"(x))
#define CALL12(S) S(c0); S(c1); S(c2); S(c3); S(c4); S(c5); S(c6); S(c7); S(c8); S(c9); S(c10); S(c11)
#define SUM12_S32(c) vaddvq_s32(vaddq_s32(vaddq_s32(vaddq_s32(vaddq_s32(c0, c1), vaddq_s32(c2, c3)), \
    vaddq_s32(vaddq_s32(c4, c5), vaddq_s32(c6, c7))), vaddq_s32(vaddq_s32(c8, c9), vaddq_s32(c10, c11))))

// neondot: sdot v.4s, v.16b, v.16b (16 MAC; 24 accumulators), as em_qukr_u8s8_neondot_8x8.
__attribute__((target("dotprod")))
int64_t em_peak_i8_neondot(int64_t iters) {
    int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    OPAQUE(a);
    OPAQUE(b);
    int32x4_t c[24];
#pragma clang loop unroll(full)
    for (int j = 0; j < 24; j++) c[j] = vdupq_n_s32(0);
    for (int64_t i = 0; i < iters; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 24; j++) c[j] = vdotq_s32(c[j], a, b);
        OPAQUE(a);
    }
#pragma clang loop unroll(full)
    for (int j = 1; j < 24; j++) c[0] = vaddq_s32(c[0], c[j]);
    return vaddvq_s32(c[0]);
}

// neon (no dotprod): 8-bit s8 x s8 products, smull + smlal2 into int16 pairs, sadalp into int32
// (16 MAC per three instructions), the formulation of the plain-NEON int8 kernel.
int64_t em_peak_i8_neon(int64_t iters) {
    int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    OPAQUE(a);
    OPAQUE(b);
    int32x4_t c0 = vdupq_n_s32(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,
              c8 = c0, c9 = c0, c10 = c0, c11 = c0;
#define S(c)                                                                                       \
    do {                                                                                           \
        OPAQUE(a); /* a product per accumulator, not one shared */                                 \
        int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));                                    \
        p = vmlal_high_s8(p, a, b);                                                                \
        c = vpadalq_s16(c, p);                                                                     \
    } while (0)
    for (int64_t i = 0; i < iters; i++) {
        CALL12(S);
        OPAQUE(a);
    }
#undef S
    return SUM12_S32(c);
}

// i8mm: smmla v.4s, v.16b, v.16b (2x8 by 8x2: 32 MAC; 24 accumulators).
__attribute__((target("i8mm")))
int64_t em_peak_i8_i8mm(int64_t iters) {
    int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    OPAQUE(a);
    OPAQUE(b);
    int32x4_t c[24];
#pragma clang loop unroll(full)
    for (int j = 0; j < 24; j++) c[j] = vdupq_n_s32(0);
    for (int64_t i = 0; i < iters; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 24; j++) c[j] = vmmlaq_s32(c[j], a, b);
        OPAQUE(a);
    }
#pragma clang loop unroll(full)
    for (int j = 1; j < 24; j++) c[0] = vaddq_s32(c[0], c[j]);
    return vaddvq_s32(c[0]);
}

// Float: fmla v.4s (4 MAC), as em_ukr_neon_8x12.
int64_t em_peak_f32_neon(int64_t iters) {
    float32x4_t a = vdupq_n_f32(1.0f), b = vdupq_n_f32(0.0f);
    OPAQUE(a);
    OPAQUE(b);
    float32x4_t c0 = vdupq_n_f32(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,
                c8 = c0, c9 = c0, c10 = c0, c11 = c0;
#define S(c) c = vfmaq_f32(c, a, b)
    for (int64_t i = 0; i < iters; i++) {
        CALL12(S);
        OPAQUE(a);
    }
#undef S
    float32x4_t s = vaddq_f32(vaddq_f32(vaddq_f32(vaddq_f32(c0, c1), vaddq_f32(c2, c3)),
                                        vaddq_f32(vaddq_f32(c4, c5), vaddq_f32(c6, c7))),
                              vaddq_f32(vaddq_f32(c8, c9), vaddq_f32(c10, c11)));
    return (int64_t)vaddvq_f32(s);
}
#endif
