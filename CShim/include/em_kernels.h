// edge-mrcnn float kernels.
//
// The GEMM-based kernels (em_sgemm, em_conv2d_f32, em_deconv2x2s2_f32, em_linear_f32) exist
// twice: `em_X_ref` is the plain C reference (CShim/ref/), `em_X` the entry point in the GEMM
// driver (CShim/gemm.c) running the micro-kernel of the ISA in use (CShim/x86/, CShim/arm/, chosen
// by CShim/dispatch.c); tests compare the two. The other kernels here (max pooling, nearest
// upsample-add, normalise, resize, RoIAlign, paste) have one plain C implementation (CShim/ref/),
// checked against torch's formulas and the float pipeline's parity tests.
//
// Layout conventions: one image at a time, activations CHW (channel-major, row-major planes),
// float32. Boxes are (x1, y1, x2, y2) in pixels, as torchvision uses them.
// Kernels never allocate on their own unless documented: callers pass scratch memory sized by the
// matching *_scratch_bytes function (so that a planned arena can provide it).
// Documented exception: em_sgemm, em_conv2d_f32, em_deconv2x2s2_f32 and em_linear_f32 pack their
// operands into per-thread panel buffers that are allocated once per calling/worker thread (about
// 2.2 MB per thread on x86, 0.5 MB on aarch64) and reused; if that allocation fails they fall back
// to the reference path. Convolutions pack im2col tiles straight into those panels, so
// em_conv2d_f32_scratch_bytes is 0.
#ifndef EM_KERNELS_H
#define EM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- GEMM
// C[M x N] (+)= A[M x K] * B[K x N], all row-major with leading dimensions in elements.
// Then, per row m: C += bias[m] (if bias != NULL), then ReLU (if relu != 0).
// accumulate == 0 overwrites C; accumulate != 0 adds the product to what C holds.
void em_sgemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc, const float *bias, int accumulate, int relu);
void em_sgemm_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                  int ldc, const float *bias, int accumulate, int relu);

// ---------------------------------------------------------------- convolution
// 2-D convolution, groups 1, dilation 1, symmetric zero padding `pad`.
// in [Cin, H, W]; weight [Cout, Cin, KH, KW]; bias [Cout] or NULL;
// out [Cout, OH, OW] with OH = (H + 2 pad - KH) / stride + 1 (same for OW).
// If residual != NULL (shape of out): out = act(conv + bias + residual). act = ReLU if relu.
// scratch: em_conv2d_f32_scratch_bytes(...) bytes (may be 0; then scratch may be NULL).
size_t em_conv2d_f32_scratch_bytes(int Cin, int H, int W, int Cout, int KH, int KW, int stride,
                                   int pad);
void em_conv2d_f32(const float *in, int Cin, int H, int W, const float *weight, const float *bias,
                   int Cout, int KH, int KW, int stride, int pad, const float *residual, int relu,
                   float *out, void *scratch);
void em_conv2d_f32_ref(const float *in, int Cin, int H, int W, const float *weight,
                       const float *bias, int Cout, int KH, int KW, int stride, int pad,
                       const float *residual, int relu, float *out);

// Transposed convolution, kernel 2, stride 2, padding 0 (torch ConvTranspose2d(Cin, Cout, 2, 2)).
// in [Cin, H, W]; weight [Cin, Cout, 2, 2] (torch layout); bias [Cout] or NULL; out [Cout, 2H, 2W].
size_t em_deconv2x2s2_f32_scratch_bytes(int Cin, int H, int W, int Cout);
void em_deconv2x2s2_f32(const float *in, int Cin, int H, int W, const float *weight,
                        const float *bias, int Cout, int relu, float *out, void *scratch);
void em_deconv2x2s2_f32_ref(const float *in, int Cin, int H, int W, const float *weight,
                            const float *bias, int Cout, int relu, float *out);

// ConvTranspose2d(Cin, Cout, 4, stride 2, padding 1) (the keypoint predictor): in [Cin, H, W];
// weight [Cin, Cout, 4, 4]; out [Cout, 2H, 2W] = bias + sum over taps with oy = 2 iy - 1 + ky,
// ox = 2 ix - 1 + kx. One GEMM to columns [16 Cout, H W] (scratch), then a scatter-add.
size_t em_deconv4x4s2p1_f32_scratch_bytes(int Cin, int H, int W, int Cout);
void em_deconv4x4s2p1_f32(const float *in, int Cin, int H, int W, const float *weight,
                          const float *bias, int Cout, float *out, void *scratch);
void em_deconv4x4s2p1_f32_ref(const float *in, int Cin, int H, int W, const float *weight,
                              const float *bias, int Cout, float *out);

// Fully connected (torch Linear): out[N x M] = in[N x K] * weight[M x K]^T + bias[M]; ReLU if relu.
void em_linear_f32(const float *in, int N, int K, const float *weight, const float *bias, int M,
                   int relu, float *out);
void em_linear_f32_ref(const float *in, int N, int K, const float *weight, const float *bias,
                       int M, int relu, float *out);

// ---------------------------------------------------------------- small ops
// Max pooling (square window k, stride, padding treated as -inf). out [C, OH, OW],
// OH = (H + 2 pad - k) / stride + 1.
void em_maxpool2d_f32(const float *in, int C, int H, int W, int k, int stride, int pad, float *out);

// FPN top-down step: inout[c, y, x] += top[c, sy, sx] with torch's nearest interpolation from
// (TH, TW) to (H, W): sy = min((int)floorf(y * ((float)TH / (float)H)), TH - 1), same for x
// (the scale is computed first, as torch does).
void em_upsample_nearest_add_f32(const float *top, int C, int TH, int TW, float *inout, int H,
                                 int W);

// RGB8 interleaved [H, W, 3] -> float CHW [3, H, W]: (v / 255 - mean[c]) / std[c].
void em_normalize_rgb8_f32(const uint8_t *rgb, int H, int W, const float mean[3],
                           const float std[3], float *out);

// Bilinear resize of CHW float planes with torch F.interpolate(mode="bilinear",
// align_corners=False, antialias=False) semantics and scale = in/out (recompute_scale_factor=True):
// src = max((dst + 0.5) * (in/out) - 0.5, 0); i0 = (int)src; i1 = min(i0 + 1, in - 1).
void em_resize_bilinear_f32(const float *in, int C, int H, int W, float *out, int OH, int OW);

// em_normalize_rgb8_f32 then em_resize_bilinear_f32 to [3, OH, OW], written into the top-left of
// a zero-padded [3, PH, PW] plane set: the same values bit for bit, without the full-size float
// image (each normalised value is looked up per byte).
void em_normalize_resize_pad_rgb8_f32(const uint8_t *rgb, int H, int W, const float mean[3],
                                      const float std[3], int OH, int OW, int PH, int PW,
                                      float *out);
// The same values quantised to uint8 with (scale, z) as em_quantize_f32_u8 quantises them (one
// pass, no float map): the same bytes as em_normalize_resize_pad_rgb8_f32 then
// em_quantize_f32_u8. Returns 0, or -1 on bad arguments or OW > 4096 (then take the float path).
int em_normalize_resize_pad_rgb8_u8(const uint8_t *rgb, int H, int W, const float mean[3],
                                    const float std[3], int OH, int OW, int PH, int PW,
                                    float scale, int32_t z, uint8_t *out);

// ---------------------------------------------------------------- RoIAlign
// torchvision roi_align on one feature map feat [C, H, W]. rois [R, 4] (x1, y1, x2, y2) in image
// pixels. For roi i the pooled result [C, PH, PW] is written at out + out_index[i] * C*PH*PW
// (out_index may be NULL: then slot i). aligned=0 is torchvision's MultiScaleRoIAlign setting.
void em_roi_align_f32(const float *feat, int C, int H, int W, float spatial_scale,
                      int sampling_ratio, int aligned, const float *rois, int R,
                      const int32_t *out_index, int PH, int PW, float *out);

// ---------------------------------------------------------------- mask paste
// torchvision paste_masks_in_image for one mask: the M x M probability map is padded by one zero
// pixel on each side, the box scaled about its centre by (M+2)/M and truncated to int, the padded
// map bilinearly resized (align_corners=False) to the box and pasted into an imgH x imgW image.
// em_paste_mask_region gives the clipped image region the mask covers: columns [*x0, *x0 + *w),
// rows [*y0, *y0 + *h) (w or h may be 0). em_paste_mask_f32 writes that region, row-major
// [h, w], as 0/1 bytes: 1 where the pasted probability > thresh.
void em_paste_mask_region(const float box[4], int M, int imgH, int imgW, int *x0, int *y0, int *w,
                          int *h);
void em_paste_mask_f32(const float *mask, int M, const float box[4], int imgH, int imgW,
                       float thresh, uint8_t *region_out);

// ---------------------------------------------------------------- detection post-processing
// (CShim/post.c) The loops of the RPN's proposals, the box head's postprocess_detections and the
// mask head's sigmoid, with the float operations of the Swift code they serve (Stages/).
//
// The k best anchors of one RPN level by objectness logit, best first, ties: lower index first.
// logits [a, hw] (channel-major); anchor index i = pix * a + ai. heap:
// em_topk_anchors_scratch_bytes(k) of scratch (large levels split over the thread pool). Writes the indices to out[0..<count] and returns count (min(k, hw * a)); -1 if a logit is NaN
// (the caller's own path then decides).
size_t em_topk_anchors_scratch_bytes(int k);
int em_topk_anchors(const float *logits, long hw, int a, int k, uint64_t *heap, int32_t *out);
// Boxes.greedyBatchedNMS: candidates in score order (descending, ties: lower index first), each
// kept unless IoU > iou_threshold with a kept box of its group (groups[i] in [0, ngroups)), until
// `limit` are kept. Writes the kept indices to keep and returns their count; -1 if a score is NaN.
size_t em_greedy_nms_scratch_bytes(int n, int limit, int groups);
int em_greedy_nms(const float *boxes, const float *scores, const int32_t *groups, int n, int ngroups,
                  double iou_threshold, int limit, void *scratch, int32_t *keep);
// Row-wise softmax of rows x k floats (rows spread over the thread pool).
void em_softmax_rows_f32(const float *in, float *out, long rows, int k);
// postprocess_detections after the softmax: candidates (RoI i, class c >= 1) with probs > thresh,
// decoded (BoxCoder wx, wy, ww, wh, clip) from deltas [rows, 4k] and proposals [rows, 4], clipped
// to height x width, at least min_size wide and high, then greedy batched NMS per class until
// `limit` are kept, decoding lazily in score order. Returns the kept count with their boxes,
// scores and labels, or -1 when no more than `greedy_above` candidates pass the filters (the
// caller then runs torchvision's small-count path) or rows * k does not fit 32 bits.
size_t em_box_detections_scratch_bytes(long rows, int k, int limit);
int em_box_detections(const float *probs, const float *deltas, const float *proposals, long rows, int k,
                      float score_thresh, float wx, float wy, float ww, float wh, float clip, float height,
                      float width, float min_size, double iou_threshold, int limit, int greedy_above,
                      void *scratch, float *out_boxes, float *out_scores, int32_t *out_labels);
// x = 1 / (1 + exp(-x)) element-wise (spread over the thread pool when large).
void em_sigmoid_f32(float *x, long n);
// Columns first, first + step, ... (count of them) of every row of a rows x width map set to
// value (the separators of side-by-side RoI batches; rows spread over the thread pool).
void em_set_columns_u8(uint8_t *x, long rows, long width, int first, int step, int count, uint8_t value);
void em_set_columns_f32(float *x, long rows, long width, int first, int step, int count, float value);

#ifdef __cplusplus
}
#endif
#endif
