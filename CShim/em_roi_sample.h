// One bilinear sample point of torchvision roi_align (roi_align_common.h
// pre_calc_for_bilinear_interpolate): the four pixel indices (y * W + x) and weights. Shared by
// the float RoIAlign (ref/roi_paste.c) and the uint8 one (roi_align_u8.c), which must sample at
// exactly the same points with exactly the same weights.
#ifndef EM_ROI_SAMPLE_H
#define EM_ROI_SAMPLE_H
#pragma STDC FP_CONTRACT OFF

typedef struct {
    int p1, p2, p3, p4;
    float w1, w2, w3, w4;
} em_roi_sample_t;

static inline em_roi_sample_t em_roi_sample(int H, int W, float y, float x) {
    em_roi_sample_t s = {0, 0, 0, 0, 0.0f, 0.0f, 0.0f, 0.0f};
    if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) return s;
    if (y <= 0.0f) y = 0.0f;
    if (x <= 0.0f) x = 0.0f;
    int y0 = (int)y, x0 = (int)x, y1, x1;
    if (y0 >= H - 1) {
        y1 = y0 = H - 1;
        y = (float)y0;
    } else {
        y1 = y0 + 1;
    }
    if (x0 >= W - 1) {
        x1 = x0 = W - 1;
        x = (float)x0;
    } else {
        x1 = x0 + 1;
    }
    float ly = y - (float)y0, lx = x - (float)x0;
    float hy = 1.0f - ly, hx = 1.0f - lx;
    s.p1 = y0 * W + x0;
    s.p2 = y0 * W + x1;
    s.p3 = y1 * W + x0;
    s.p4 = y1 * W + x1;
    s.w1 = hy * hx;
    s.w2 = hy * lx;
    s.w3 = ly * hx;
    s.w4 = ly * lx;
    return s;
}
#endif
