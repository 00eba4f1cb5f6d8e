// x86 builders of the int8 GEMM's activation panels (private to qgemm.c and x86/qpanel_avx512.c).
// The EM_QP_K4 panel of 48 pixels ([Kpad/4][48][4] u8, the avx512vnni micro-kernel's) built
// straight from the layer's source with AVX-512BW masked loads and byte zips: no im2col gather
// into a K1 buffer and no format pass. Used only while the ISA in use is avx512vnni (its checks
// include AVX-512 F/BW/DQ/VL); every other ISA keeps the generic gather + format path.
#ifndef EM_QPANEL_X86_H
#define EM_QPANEL_X86_H
#if defined(__x86_64__)
#include <stddef.h>
#include <stdint.h>

enum { EM_QPS_ROWS = 0, EM_QPS_CONV = 1 };

// The GEMM's B operand: B(k, n) for k < K, n < N; panel rows k in [K, Kpad) and pixels n >= N
// are the zero point z.
typedef struct em_qpsrc {
    int kind;
    const uint8_t *src;
    long ldk; // EM_QPS_ROWS: B(k, n) = src[k * ldk + n]
    int N, K, Kpad;
    // EM_QPS_CONV: k = (ci * KH + ky) * KW + kx, n = oy * OW + ox, B(k, n) = the input
    // src[(ci * H + iy) * W + ix] at iy = oy * stride - pad + ky, ix = ox * stride - pad + kx,
    // or z outside the input.
    int H, W, KH, KW, stride, pad, OW;
    // EM_QPS_CONV, 0 < tw < W: the columns form tiles of tw (W a multiple of tw; stride 1,
    // OW == W), each its own image: a tap outside its pixel's tile reads z (the RoI heads' batches
    // laid side by side without separator columns). 0: no tiles.
    int tw;
    uint8_t z;
} em_qpsrc;

// 1 when em_qpanels48_avx512 builds the panels of this source.
int em_qpanel48_covers(const em_qpsrc *s);
// Per layer and thread: the k -> tap tables (the calling thread's buffer, grows only). Returns
// 0, or -1 (allocation failure: build the panels another way).
int em_qpanel48_setup(const em_qpsrc *s);
// Panels of pixels [n0 + 48 c, n0 + 48 (c + 1)) for c < count at dst + c * pstride (after
// em_qpanel48_setup of the same source on this thread).
void em_qpanels48_avx512(const em_qpsrc *s, int n0, int count, uint8_t *dst, size_t pstride);

#endif
#endif
