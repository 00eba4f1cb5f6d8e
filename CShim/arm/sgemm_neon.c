// NEON SGEMM micro-kernel, 8 x 12 register tile (24 q accumulators, 3 for B, 2 for A) using
// by-lane FMAs, with the fused bias/residual/ReLU epilogue. NEON is baseline on aarch64.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_internal.h"

void em_ukr_neon_8x12(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                      const em_epi *epi) {
    float32x4_t c[8][3];
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = c[i][2] = vdupq_n_f32(0.0f);
    for (int k = 0; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(Bp), b1 = vld1q_f32(Bp + 4), b2 = vld1q_f32(Bp + 8);
        float32x4_t a0 = vld1q_f32(Ap), a1 = vld1q_f32(Ap + 4);
#define ROW(i, av, lane)                                                                           \
    c[i][0] = vfmaq_laneq_f32(c[i][0], b0, av, lane);                                              \
    c[i][1] = vfmaq_laneq_f32(c[i][1], b1, av, lane);                                              \
    c[i][2] = vfmaq_laneq_f32(c[i][2], b2, av, lane);
        ROW(0, a0, 0)
        ROW(1, a0, 1)
        ROW(2, a0, 2)
        ROW(3, a0, 3)
        ROW(4, a1, 0)
        ROW(5, a1, 1)
        ROW(6, a1, 2)
        ROW(7, a1, 3)
#undef ROW
        Ap += 8;
        Bp += 12;
    }
    for (int i = 0; i < 8; i++) {
        float *p = C + (long)i * ldc;
        for (int t = 0; t < 3; t++) {
            float32x4_t x = c[i][t];
            if (load_c) x = vaddq_f32(vld1q_f32(p + 4 * t), x);
            if (epi) {
                if (epi->bias_row) x = vaddq_f32(x, vdupq_n_f32(epi->bias_row[i]));
                if (epi->bias_col) x = vaddq_f32(x, vld1q_f32(epi->bias_col + 4 * t));
                if (epi->res) x = vaddq_f32(x, vld1q_f32(epi->res + (long)i * epi->ldr + 4 * t));
                // fmax would turn NaN into 0; keep NaN like the scalar path: x < 0 ? 0 : x.
                if (epi->relu) x = vbslq_f32(vcltq_f32(x, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), x);
            }
            vst1q_f32(p + 4 * t, x);
        }
    }
}
#endif
