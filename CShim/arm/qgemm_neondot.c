// NEON dot-product int8 micro-kernel (ISA "neondot": Armv8.2+ cores with dotprod, e.g. Cortex-A55,
// A76 (Raspberry Pi 5), RK3588, Neoverse N1). sdot by lane on the packed weight blocks as they are
// stored (no preparation); the activations are offset to s8 when the panel is packed (EM_QP_K4X:
// u8 ^ 0x80 = u8 - 128) and the driver adds 128 * rowsum[m] to the per-channel term, which makes
// the sum exactly the u8 x s8 one.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../em_qinternal.h"
#include "em_neon_ld.h"

#define EM_DOT __attribute__((target("dotprod")))

// 8 channels x 8 pixels; panel EM_QP_K4X with NR = 8 (32 bytes per group of 4 k). Four groups
// per iteration (64 sdot, 8 post-indexed ldp, the loop's subs and branch).
EM_DOT void em_qukr_u8s8_neondot_8x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                                     int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    const int8_t *p = (const int8_t *)panel;
    int32x4_t c[8][2];
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = vdupq_n_s32(0);
#define CH(i, wv, l, xa, xb)                                                                       \
    c[i][0] = vdotq_laneq_s32(c[i][0], xa, wv, l);                                                 \
    c[i][1] = vdotq_laneq_s32(c[i][1], xb, wv, l);
#define GROUP(x0, x1, w0, w1)                                                                      \
    CH(0, w0, 0, x0, x1) CH(1, w0, 1, x0, x1) CH(2, w0, 2, x0, x1) CH(3, w0, 3, x0, x1)            \
    CH(4, w1, 0, x0, x1) CH(5, w1, 1, x0, x1) CH(6, w1, 2, x0, x1) CH(7, w1, 3, x0, x1)
    int g = kp >> 2;
    for (int n = g >> 2; n != 0; n--) { // four groups per iteration: 64 sdot, 8 post-indexed ldp
        int8x16_t x0, x1, x2, x3, w0, w1, w2, w3;
        EM_LDP_POST(p, x0, x1, 32);
        EM_LDP_POST(w, w0, w1, 32);
        EM_LDP_POST(p, x2, x3, 32);
        EM_LDP_POST(w, w2, w3, 32);
        GROUP(x0, x1, w0, w1)
        GROUP(x2, x3, w2, w3)
        EM_LDP_POST(p, x0, x1, 32);
        EM_LDP_POST(w, w0, w1, 32);
        EM_LDP_POST(p, x2, x3, 32);
        EM_LDP_POST(w, w2, w3, 32);
        GROUP(x0, x1, w0, w1)
        GROUP(x2, x3, w2, w3)
    }
    for (g &= 3; g != 0; g--) {
        int8x16_t x0, x1, w0, w1;
        EM_LDP_POST(p, x0, x1, 32);
        EM_LDP_POST(w, w0, w1, 32);
        GROUP(x0, x1, w0, w1)
    }
#undef GROUP
#undef CH
    for (int i = 0; i < 8; i++) {
        if (accumulate) {
            c[i][0] = vaddq_s32(c[i][0], vld1q_s32(acc + i * 8));
            c[i][1] = vaddq_s32(c[i][1], vld1q_s32(acc + i * 8 + 4));
        }
        vst1q_s32(acc + i * 8, c[i][0]);
        vst1q_s32(acc + i * 8 + 4, c[i][1]);
    }
}
#endif
