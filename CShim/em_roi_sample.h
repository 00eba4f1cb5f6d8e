// One bilinear sample point of torchvision roi_align (roi_align_common.h
// pre_calc_for_bilinear_interpolate): the four pixel indices (y * W + x) and weights. Shared by
// the float RoIAlign (ref/roi_paste.c) and the uint8 one (roi_align_u8.c), which must sample at
// exactly the same points with exactly the same weights.
//
// The sample is separable: em_roi_axis does one coordinate (the range check, the clamp to the
// border, the two neighbours and the two weights), em_roi_sample combines a y and an x axis (the
// same operations in the same order as torchvision's single function, so the same floats). The
// uint8 RoIAlign uses the axes directly to find the distinct rows and columns a RoI reads.
#ifndef EM_ROI_SAMPLE_H
#define EM_ROI_SAMPLE_H
#pragma STDC FP_CONTRACT OFF

typedef struct {
    int p1, p2, p3, p4;
    float w1, w2, w3, w4;
} em_roi_sample_t;

// One coordinate v of a sample on an axis of n pixels: ok = 0 when v is outside [-1, n] (the
// whole sample then has zero weights), else the neighbours i0 <= i1 and the weights
// h = 1 - l (of i0) and l (of i1).
typedef struct {
    int i0, i1;
    float l, h;
    int ok;
} em_roi_axis_t;

static inline em_roi_axis_t em_roi_axis(int n, float v) {
    em_roi_axis_t a = {0, 0, 0.0f, 0.0f, 0};
    if (v < -1.0f || v > (float)n) return a;
    if (v <= 0.0f) v = 0.0f;
    int i0 = (int)v, i1;
    if (i0 >= n - 1) {
        i1 = i0 = n - 1;
        v = (float)i0;
    } else {
        i1 = i0 + 1;
    }
    a.l = v - (float)i0;
    a.h = 1.0f - a.l;
    a.i0 = i0;
    a.i1 = i1;
    a.ok = 1;
    return a;
}

static inline em_roi_sample_t em_roi_sample(int H, int W, float y, float x) {
    em_roi_sample_t s = {0, 0, 0, 0, 0.0f, 0.0f, 0.0f, 0.0f};
    em_roi_axis_t ay = em_roi_axis(H, y), ax = em_roi_axis(W, x);
    if (!ay.ok || !ax.ok) return s;
    s.p1 = ay.i0 * W + ax.i0;
    s.p2 = ay.i0 * W + ax.i1;
    s.p3 = ay.i1 * W + ax.i0;
    s.p4 = ay.i1 * W + ax.i1;
    s.w1 = ay.h * ax.h;
    s.w2 = ay.h * ax.l;
    s.w3 = ay.l * ax.h;
    s.w4 = ay.l * ax.l;
    return s;
}
#endif
