// The grid path of the uint8 RoIAlign (roi_align_u8.c): the sample list of one RoI over its
// dequantised grid of distinct feature pixels, and the x86 vector pieces that fill the grid and
// finish the bins 32 channels (one grid group) at a time. Same floats in the same operations as
// the portable pieces in roi_align_u8.c (grid_deq_c, bin_finish_c), so the same bytes.
#ifndef EM_QROI_GRID_H
#define EM_QROI_GRID_H
#include <stddef.h>
#include <stdint.h>

enum { EM_QROI_GC = 32 }; // channels per grid group

typedef struct em_qroi_gsamp {
    const float *g[4]; // the four taps' grid pixels (GC floats each)
    float w[4];
} em_qroi_gsamp_t;

#if defined(__x86_64__)
// Grid of ny x nx pixels (rows ys, columns xs of a [H, W, C] uint8 map, channels f[0..32)):
// G[(gy * nx + gx) * 32 + c] = (float)(f[(ys[gy] * W + xs[gx]) * C + c] - z) * s.
void em_qroi_grid_deq_avx512(const uint8_t *f, const int *ys, int ny, const int *xs, int nx,
                             size_t W, size_t C, int32_t z, float s, float *G);
void em_qroi_grid_deq_avx2(const uint8_t *f, const int *ys, int ny, const int *xs, int nx,
                           size_t W, size_t C, int32_t z, float s, float *G);
// Every bin (PH x PW, nb[bin] samples each, in order in S) of one 32-channel group: the sum of
// its samples' w1 g1 + w2 g2 + w3 g3 + w4 g4, then em_q_finish((sum / count) * inv, z, 0) stored
// at o + c * cstride + ph * ystride + pw.
void em_qroi_grid_bins_avx512(const em_qroi_gsamp_t *S, const int *nb, int PH, int PW, float count,
                              float inv, int32_t z, uint8_t *o, size_t cstride, size_t ystride);
void em_qroi_grid_bins_avx2(const em_qroi_gsamp_t *S, const int *nb, int PH, int PW, float count,
                            float inv, int32_t z, uint8_t *o, size_t cstride, size_t ystride);
#endif
#endif
