// torch's linear-interpolation source index rule, the one copy (UpSampleKernel.cpp
// HelperInterpLinear / area_pixel_compute_source_index with align_corners=False), used by the
// bilinear resize (ops.c) and the mask paste (roi_paste.c):
//   scale = (float)in / (float)out; src = max(scale * (dst + 0.5) - 0.5, 0) in float;
//   i0 = min((int)floor(src), in - 1); lambda = clamp(src - i0, 0, 1); i1 = i0 + (i0 < in - 1);
//   weights l0 = 1 - lambda, l1 = lambda.
#ifndef EM_INTERP_H
#define EM_INTERP_H
#pragma STDC FP_CONTRACT OFF
#include <math.h>

static inline void em_linear_src(long in, long out, long d, int *i0, int *i1, float *l0,
                                 float *l1) {
    float scale = (float)in / (float)out;
    float src = scale * ((float)d + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    long i = (long)floorf(src);
    if (i > in - 1) i = in - 1;
    float lam = src - (float)i;
    if (lam < 0.0f) lam = 0.0f;
    if (lam > 1.0f) lam = 1.0f;
    *i0 = (int)i;
    *i1 = i < in - 1 ? (int)i + 1 : (int)i;
    *l0 = 1.0f - lam;
    *l1 = lam;
}
#endif
