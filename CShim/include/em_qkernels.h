// edge-mrcnn int8 kernels (quantised inference).
//
// Same conventions as em_kernels.h: `em_X_ref` is the plain C reference (CShim/ref/qops.c),
// `em_X` the dispatched entry point (CShim/qgemm.c + per-ISA files CShim/x86/q*.c,
// CShim/arm/q*.c) running the path of em_isa_current(). Every path gives results bit-identical
// to the reference, for any em_num_threads(). Activations CHW, one image at a time.
//
// ---------------------------------------------------------------- quantisation scheme
// Activations: asymmetric uint8 per tensor, real = s * (q - z), z in 0..255.
// Weights: symmetric int8 per output channel, real = w_s[m] * w, w in -127..127 (never -128;
//   em_qpack_* clamps -128 to -127).
// Bias: int32 bias_q[m] = round(b[m] / (s_in * w_s[m])) (computed by the caller).
// Accumulator of output channel m (int32, exact; no overflow while 32385 K + |bias_q| < 2^31,
// i.e. K <= 65000 for any sane bias; FC6's K = 12544 is far inside):
//   acc[m] = bias_q[m] + sum_k w[m,k] * (x[k] - z_in)
//          = term[m] + sum_k w[m,k] * x[k],   term[m] = bias_q[m] - z_in * sum_k w[m,k]
//   (term is precomputed by em_qpack_*; z_in is therefore fixed at pack time).
//
// REQUANTISATION (identical on every ISA), with mult[m] = s_in * w_s[m] / s_out (float32):
//   v = (float)acc * mult[m]                      (IEEE int32->float round-to-nearest, one
//                                                  float multiply)
//   y = clamp(z_out + rne(clampf(v)), lo, hi)      lo = relu ? z_out : 0, hi = 255
// FUSED RESIDUAL (bottleneck conv3 + identity, then ReLU), r the residual u8 (scale s_r, zp z_r),
// r_mult = s_r / s_out:
//   v = (float)acc * mult[m] + (float)(r - z_r) * r_mult     (two products, then one add)
//   y = clamp(z_out + rne(clampf(v)), lo, hi)
// where rne = round half to even (the default IEEE rounding mode), and
//   clampf(v) = min(max(v, -2^24), 2^24), NaN -> -2^24 (only matters for absurd scales; it keeps
//   the float->int conversion in range so SIMD and scalar agree).
// The int32 accumulation is exact on every ISA (sse41/avx2: u8 and s8 widened to int16 and
// pmaddwd, never the saturating pmaddubsw; avx512vnni: vpdpbusd; neon: 8-bit smull/smlal2 of
// s8 x s8 (u8 ^ 0x80; |w| <= 127 so two products fit int16) then sadalp; neondot: sdot on
// u8 ^ 0x80; both with 128 * rowsum added back; neoi8mm: usmmla on u8 x s8), so only the
// requantisation could differ, and it is specified operation by operation:
// No FMA contraction anywhere (the C files use #pragma STDC FP_CONTRACT OFF; SIMD uses
// cvtdq2ps/mulps/addps/cvtps2dq resp. vcvtq_f32_s32/vmulq_f32/vaddq_f32/vcvtnq_s32_f32).
//
// ---------------------------------------------------------------- packed weights
// One packed layout for all ISAs (compute once, store in the model file, mmap it; the blob must
// be 64-byte aligned for speed, 4-byte aligned at least). Little-endian:
//   bytes [0, 64): header, int32 fields: magic 0x57514D45 ("EMQW"), version 1, M, K, Kp, Mp,
//                  z_in, 0 ... (rest zero)
//     Kp = K rounded up to a multiple of 4, Mp = M rounded up to a multiple of 8.
//   then int32 term[Mp]   (bias_q[m] - z_in * rowsum[m]; 0 for padding rows)
//   then int32 rowsum[Mp] (sum_k w[m,k]; used by ISAs that offset the activations)
//   then Mp/8 blocks of 8 output channels; block b is Kp/4 groups of 32 bytes; group g holds,
//     for channel c = 0..7 of the block, the 4 bytes w[8b + c, 4g + 0..3] (int8; zero where
//     k >= K or 8b + c >= M). I.e. byte offset of w[m,k] inside the weights:
//     ((m / 8) * (Kp / 4) + k / 4) * 32 + (m % 8) * 4 + k % 4.
// For a convolution, w[m, k] is the torch weight [Cout, Cin, KH, KW] flattened: M = Cout,
// k = (ci * KH + ky) * KW + kx, K = Cin * KH * KW. For Linear, w is the torch weight [M, K].
#ifndef EM_QKERNELS_H
#define EM_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bytes of a packed weight blob for an M x K matrix (0 if M or K <= 0).
size_t em_qpack_weights_bytes(int M, int K);
// Packs w [M x K] row-major int8 (-128 is clamped to -127), with bias_q [M] (NULL: zeros) and
// the input zero point z_in. packed: em_qpack_weights_bytes(M, K) bytes. Returns 0, -1 on bad
// arguments.
int em_qpack_weights(const int8_t *w, int M, int K, int32_t z_in, const int32_t *bias_q,
                     void *packed);
// ConvTranspose2d(Cin, Cout, 2, stride 2) weights, torch layout w [Cin, Cout, 2, 2], bias_q
// [Cout]: packed as the M = 4 * Cout, K = Cin matrix with row m = co * 4 + dy * 2 + dx,
// w'[m, ci] = w[ci, co, dy, dx], bias'[m] = bias_q[co]. Bytes: em_qpack_weights_bytes(4*Cout, Cin).
int em_qpack_deconv2x2_weights(const int8_t *w, int Cin, int Cout, int32_t z_in,
                               const int32_t *bias_q, void *packed);
// ConvTranspose2d(Cin, Cout, 4, stride 2, padding 1) weights (the keypoint predictor), torch
// layout w [Cin, Cout, 4, 4], bias_q [Cout]: the M = 16 * Cout, K = Cin matrix with row
// m = co * 16 + ky * 4 + kx, w'[m, ci] = w[ci, co, ky, kx]. The bias sits in the rows of the inner
// taps (ky, kx in {1, 2}) only: every output pixel receives exactly one of those (from an input
// pixel inside the map), so the scatter-add adds it once. Bytes: em_qpack_weights_bytes(16*Cout, Cin).
int em_qpack_deconv4x4s2p1_weights(const int8_t *w, int Cin, int Cout, int32_t z_in,
                                   const int32_t *bias_q, void *packed);
// The rows of blob a then those of blob b (the same K and z_in) as one blob of Ma + Mb rows: row
// m < Ma is a's row m, row Ma + i b's row i (weights, term and row sum as they are). One GEMM over
// it gives each row's int32 sum exactly as its own blob's GEMM. out: em_qpack_weights_bytes(Ma + Mb,
// K) bytes. Returns 0, or -1 (an invalid blob, K or z_in differ).
int em_qpack_concat(const void *a, const void *b, void *out);
// Reads the header: returns 0 and M, K, z_in (any pointer may be NULL), or -1 if `packed` is
// not a valid blob of `bytes` bytes (bytes == 0: size not checked).
int em_qpacked_info(const void *packed, size_t bytes, int *M, int *K, int32_t *z_in);

// The GEMM-based kernels below (conv, deconv, linear) return 0, or -1 on bad arguments (shapes not
// matching the packed blob, z_in different from the packed one, invalid sizes); then `out` is
// untouched. They split output tiles over em_num_threads() threads.

// ---------------------------------------------------------------- convolution
// 2-D convolution, groups 1, dilation 1, symmetric padding `pad` with the value z_in (= real 0).
// in u8 [Cin, H, W] (scale s_in, zero point z_in); packed: em_qpack_weights of the [Cout,
// Cin*KH*KW] weight with this z_in; mult [Cout]; out u8 [Cout, OH, OW], OH = (H + 2 pad - KH) /
// stride + 1 (same for OW). residual: NULL, or u8 of out's shape with zero point z_res and
// res_mult = s_res / s_out (fused residual formula above). relu: lo = z_out.
// 1x1 stride-1 pad-0 convolutions read the input directly (no im2col gathers).
// out must not alias in (it may alias residual).
size_t em_qconv2d_u8_scratch_bytes(int Cin, int H, int W, int Cout, int KH, int KW, int stride,
                                   int pad); // currently 0: the kernels use per-thread buffers
int em_qconv2d_u8(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                  int Cout, int KH, int KW, int stride, int pad, const float *mult, int32_t z_out,
                  const uint8_t *residual, int32_t z_res, float res_mult, int relu, uint8_t *out,
                  void *scratch);
// em_qconv2d_u8 (no residual) on an input of tiles: the W columns are W / tw images of tw
// columns side by side, each convolved on its own (its padding, not its neighbours' columns, at
// its edges), into the output's tiles likewise. Stride 1 and same width (OW == W); tw divides W.
// The RoI heads' side-by-side batches without separator columns (Executor.sideBySide).
// em_qconv_tiles_direct: 1 when the ISA in use runs it as one GEMM (x86 avx512vnni); elsewhere it
// runs tile by tile through copies (the same bytes, slower: the callers keep separators there).
int em_qconv_tiles_direct(int Cin, int H, int W, int KH, int KW, int stride, int pad, int tw);
int em_qconv2d_u8_tiles(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                        int Cout, int KH, int KW, int stride, int pad, int tw, const float *mult,
                        int32_t z_out, int relu, uint8_t *out);
int em_qconv2d_u8_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                      int Cout, int KH, int KW, int stride, int pad, const float *mult,
                      int32_t z_out, const uint8_t *residual, int32_t z_res, float res_mult,
                      int relu, uint8_t *out);

// ConvTranspose2d(Cin, Cout, 2, stride 2, padding 0). in u8 [Cin, H, W]; packed:
// em_qpack_deconv2x2_weights; mult [Cout] (per co); out u8 [Cout, 2H, 2W]:
// out[co, 2y+dy, 2x+dx] = requant(term + sum_ci w[ci,co,dy,dx] * in[ci,y,x], mult[co]).
size_t em_qdeconv2x2s2_u8_scratch_bytes(int Cin, int H, int W, int Cout); // currently 0
int em_qdeconv2x2s2_u8(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                       int Cout, const float *mult, int32_t z_out, int relu, uint8_t *out,
                       void *scratch);
int em_qdeconv2x2s2_u8_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                           const void *packed, int Cout, const float *mult, int32_t z_out,
                           int relu, uint8_t *out);

// ConvTranspose2d(Cin, Cout, 4, stride 2, padding 1) with float output (the keypoint logits).
// in u8 [Cin, H, W]; packed: em_qpack_deconv4x4s2p1_weights; deq [Cout] = s_in * w_s[co];
// out f32 [Cout, 2H, 2W]: out[co, oy, ox] = (float)acc * deq[co], acc the exact int32 sum over the
// taps (ky, kx) with oy = 2 iy - 1 + ky, ox = 2 ix - 1 + kx inside the input of
// term[m] + sum_ci w'[m, ci] * in[ci, iy, ix] (m = co * 16 + ky * 4 + kx). The fast path runs the
// int8 GEMM to int32 columns [16 Cout, H W] (scratch) and scatter-adds them in int32 (scratch):
// bit-identical to the reference. scratch NULL: the reference.
size_t em_qdeconv4x4s2p1_u8_f32_scratch_bytes(int Cin, int H, int W, int Cout);
int em_qdeconv4x4s2p1_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                             const void *packed, int Cout, const float *deq, float *out,
                             void *scratch);
int em_qdeconv4x4s2p1_u8_f32_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                                 const void *packed, int Cout, const float *deq, float *out);

// ---------------------------------------------------------------- fully connected
// torch Linear on u8 rows: in u8 [N, K] (z_in), packed [M x K] weights. out u8 [N, M]:
// out[n, m] = requant(acc[n, m], mult[m]).
int em_qlinear_u8(const uint8_t *in, int N, int K, int32_t z_in, const void *packed, int M,
                  const float *mult, int32_t z_out, int relu, uint8_t *out);
int em_qlinear_u8_ref(const uint8_t *in, int N, int K, int32_t z_in, const void *packed, int M,
                      const float *mult, int32_t z_out, int relu, uint8_t *out);
// Float output (last layers: cls_score, bbox_pred): out[n, m] = (float)acc[n, m] * deq[m], one
// float multiply, deq[m] = s_in * w_s[m] (the bias is inside acc as bias_q). out f32 [N, M].
int em_qlinear_u8_f32(const uint8_t *in, int N, int K, int32_t z_in, const void *packed, int M,
                      const float *deq, float *out);
int em_qlinear_u8_f32_ref(const uint8_t *in, int N, int K, int32_t z_in, const void *packed,
                          int M, const float *deq, float *out);

// Convolution with float output straight from the int32 accumulators (the RPN heads and the mask
// logits): out[m, oy, ox] = (float)acc * deq[m] (as em_qlinear_u8_f32), CHW [Cout, OH, OW];
// shapes as em_qconv2d_u8. 1x1 stride-1 convolutions read the input rows directly.
int em_qconv2d_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                      int Cout, int KH, int KW, int stride, int pad, const float *deq, float *out);
// One 8-channel block of a 1x1 convolution with float output (em_qconv2d_u8_f32's packed weights,
// deq [M]) over the wh x ww window at (y0, x0) of the CHW input [Cin, H, W]: out [rows][wh * ww]
// with rows = min(8, M - 8 * block), channel 8 * block + c in row c, bit-identical to those
// channels of em_qconv2d_u8_f32 on the whole input. The int8 mask logits of one RoI's predicted
// label (the mask head needs one class per RoI, not all of them on the whole batch). x86
// avx512vnni (windows at least 16 wide): 16 channels of the window at a time are copied into a
// buffer of the calling thread and the panels built from it, no GEMM setup per window; other ISAs
// copy the whole window into such a buffer (Cin * wh * ww bytes, kept) and run the GEMM on it.
// Returns 0, or -1.
int em_qconv1x1_block_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                             const void *packed, int M, int block, int y0, int x0, int wh, int ww,
                             const float *deq, float *out);
// em_qconv1x1_block_u8_f32 for `count` windows at once (window i: block blocks[i], columns from
// x0s[i], rows from y0; out + i * 8 * wh * ww), the windows spread over the kernel threads (each
// one's GEMM on one thread). Returns 0, or -1 if any was refused.
int em_qconv1x1_blocks_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                              const void *packed, int M, int count, const int32_t *blocks,
                              const int32_t *x0s, int y0, int wh, int ww, const float *deq,
                              float *out);
// em_qconv2d_u8 (no residual) followed by a 1x1 convolution with float output on its output
// (em_qconv2d_u8_f32 with head_packed: K = Cout, its z_in = z_out; head_out [head_M][OH * OW]):
// the RPN head's conv with cls_logits + bbox_pred (em_qpack_concat). The same bytes and floats as
// the two calls; x86: one GEMM whose pixel chunks run the head's GEMM as soon as all their
// channels are written (in cache; the output is still written whole). Returns 0, or -1 on bad
// arguments.
int em_qconv2d_u8_head_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                           int Cout, int KH, int KW, int stride, int pad, const float *mult,
                           int32_t z_out, int relu, uint8_t *out, const void *head_packed, int head_M,
                           const float *head_deq, float *head_out);
// One output channel per window (the mask logits: each RoI's label only): for windows r < count
// (wh x ww at column x0s[r], row y0 of the [Cin][H][W] map) channel rows[r] into out + r * wh * ww
// (row-major), the floats em_qconv2d_u8_f32 gives for that channel at those pixels. x86
// avx512vnni: straight from the map, one weight row per pixel, the work over the kernel threads,
// when the windows are sorted by column, disjoint and at least 8 wide; elsewhere nothing is done.
// Returns 0; 1 when not done (another ISA, windows not so, no memory: the caller computes the
// channels another way, e.g. em_qconv1x1_blocks_u8_f32); -1 on bad arguments.
int em_qconv1x1_rows_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                            const void *packed, int M, int count, const int32_t *rows,
                            const int32_t *x0s, int y0, int wh, int ww, const float *deq,
                            float *out);
int em_qconv2d_u8_f32_ref(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                          const void *packed, int Cout, int KH, int KW, int stride, int pad,
                          const float *deq, float *out);

// ---------------------------------------------------------------- RoIAlign on uint8 maps
// CHW -> HWC copy of a uint8 map (RoIAlign samples all channels of a pixel at once).
void em_transpose_chw_hwc_u8(const uint8_t *in, int C, int H, int W, uint8_t *out);
// torchvision roi_align (aligned = false semantics and sample points as em_roi_align_f32) on a
// uint8 feature map in HWC layout [H, W, C] with quantisation (s_in, z_in), output quantised with
// (s_out, z_out). Each tap is dequantised as (float)(q - z_in) * s_in, the bin average is formed
// with em_roi_align_f32's float operations in the same order and quantised as em_quantize_f32_u8
// does: the result equals em_dequantize_u8_f32 -> em_roi_align_f32 -> em_quantize_f32_u8 bit for
// bit, on every ISA and for any thread count. RoI r writes its pooled [C, PH, PW] block to
// out[out_offset[r] + c * cstride + ph * ystride + pw]. Returns 0, or -1 on bad arguments.
int em_roi_align_u8_hwc(const uint8_t *feat, int C, int H, int W, float s_in, int32_t z_in,
                        float spatial_scale, int sampling_ratio, const float *rois, int R,
                        const size_t *out_offset, int PH, int PW, size_t cstride, size_t ystride,
                        float s_out, int32_t z_out, uint8_t *out);
// em_roi_align_u8_hwc over the L levels of a pyramid (MultiScaleRoIAlign) in one call: RoI r is
// pooled from level level[r] (feat[l] [H[l], W[l], C[l]] with (s_in[l], z_in[l]) and
// spatial_scale[l]) exactly as em_roi_align_u8_hwc pools it; the RoIs of all levels are shared
// out over the threads together. L <= 8. Returns 0, or -1 on bad arguments.
int em_roi_align_u8_hwc_levels(int L, const uint8_t *const *feat, const int *C, const int *H,
                               const int *W, const float *s_in, const int32_t *z_in,
                               const float *spatial_scale, int sampling_ratio, const float *rois,
                               const int32_t *level, int R, const size_t *out_offset, int PH, int PW,
                               size_t cstride, size_t ystride, float s_out, int32_t z_out,
                               uint8_t *out);

// ---------------------------------------------------------------- element-wise
// Rescaled add, n elements: a_mult = s_a / s_out, b_mult = s_b / s_out,
//   v = (float)(a - z_a) * a_mult + (float)(b - z_b) * b_mult    (two products, then one add)
//   out = clamp(z_out + rne(clampf(v)), relu ? z_out : 0, 255).  out may alias a or b.
void em_qadd_u8(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                float b_mult, size_t n, int32_t z_out, int relu, uint8_t *out);
void em_qadd_u8_ref(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                    float b_mult, size_t n, int32_t z_out, int relu, uint8_t *out);
// FPN top-down: out[c, y, x] = qadd(lat[c, y, x], top[c, sy, sx]) with the formula above
// (a = lat, b = top) and torch's nearest index sy = min((int)floorf(y * (float)TH / (float)H),
// TH - 1), same for x (as em_upsample_nearest_add_f32). lat, out [C, H, W]; top [C, TH, TW].
// out may alias lat.
void em_qadd_upsample_nearest_u8(const uint8_t *lat, int32_t z_lat, float lat_mult,
                                 const uint8_t *top, int32_t z_top, float top_mult, int C, int TH,
                                 int TW, int H, int W, int32_t z_out, uint8_t *out);
void em_qadd_upsample_nearest_u8_ref(const uint8_t *lat, int32_t z_lat, float lat_mult,
                                     const uint8_t *top, int32_t z_top, float top_mult, int C,
                                     int TH, int TW, int H, int W, int32_t z_out, uint8_t *out);

// Quantise: q = clamp(z + rne(clampf(x * inv_scale)), 0, 255) with inv_scale = 1.0f / scale
// computed once (torch's quantize_per_tensor formula); NaN -> 0.
void em_quantize_f32_u8(const float *x, size_t n, float scale, int32_t z, uint8_t *out);
void em_quantize_f32_u8_ref(const float *x, size_t n, float scale, int32_t z, uint8_t *out);
// Dequantise: x = (float)(q - z) * scale.
void em_dequantize_u8_f32(const uint8_t *q, size_t n, float scale, int32_t z, float *out);
void em_dequantize_u8_f32_ref(const uint8_t *q, size_t n, float scale, int32_t z, float *out);

// Max pooling on u8 (exact: max commutes with the monotone dequantisation). Square window k,
// stride, padding ignored (as -inf). out [C, OH, OW], OH = (H + 2 pad - k) / stride + 1. Same
// scale and zero point in and out.
void em_qmaxpool2d_u8(const uint8_t *in, int C, int H, int W, int k, int stride, int pad,
                      uint8_t *out);
void em_qmaxpool2d_u8_ref(const uint8_t *in, int C, int H, int W, int k, int stride, int pad,
                          uint8_t *out);

#ifdef __cplusplus
}
#endif
#endif
