// Private declarations of the int8 kernels: the packed-blob accessors, the scalar requantisation
// (the definition every SIMD path must reproduce bit for bit), and the per-ISA int8 GEMM
// parameters that dispatch.c selects. Not part of the CShim module interface.
#ifndef EM_QINTERNAL_H
#define EM_QINTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "em_dispatch.h"
#include "em_qkernels.h"

#define EM_QW_MAGIC 0x57514D45
#define EM_QW_HEADER 64

typedef struct em_qw {
    int M, K, Kp, Mp;
    int32_t z_in;
    const int32_t *term, *rowsum;
    const int8_t *w; // Mp/8 blocks of Kp/4 groups of 32 bytes
} em_qw;

// Parses a packed blob (no size check). Returns 0 or -1.
// 4 bytes at any address (u8 rows have no alignment): memcpy compiles to one mov and, unlike a
// cast to int32_t *, is not undefined behaviour when the address is not a multiple of 4.
static inline int32_t em_ld32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline void em_st32(void *p, int32_t v) { memcpy(p, &v, 4); }

static inline int em_qw_open(const void *packed, em_qw *q) {
    if (!packed) return -1;
    const int32_t *h = (const int32_t *)packed;
    if (h[0] != EM_QW_MAGIC || h[1] != 1) return -1;
    q->M = h[2];
    q->K = h[3];
    q->Kp = h[4];
    q->Mp = h[5];
    q->z_in = h[6];
    if (q->M <= 0 || q->K <= 0 || q->Kp != (q->K + 3) / 4 * 4 || q->Mp != (q->M + 7) / 8 * 8)
        return -1;
    q->term = h + EM_QW_HEADER / 4;
    q->rowsum = q->term + q->Mp;
    q->w = (const int8_t *)(q->rowsum + q->Mp);
    return 0;
}

static inline int em_qw_at(const em_qw *q, int m, int k) {
    return q->w[((size_t)(m >> 3) * (q->Kp >> 2) + (k >> 2)) * 32 + (m & 7) * 4 + (k & 3)];
}

// clampf + round half even + zero point + clamp: the one scalar requantisation.
#define EM_QF_LIM 16777216.0f
static inline uint8_t em_q_finish(float v, int32_t z_out, int32_t lo) {
    if (!(v >= -EM_QF_LIM)) v = -EM_QF_LIM; // NaN too
    if (v > EM_QF_LIM) v = EM_QF_LIM;
    int32_t y = z_out + (int32_t)rintf(v); // default rounding mode: half to even
    if (y < lo) y = lo;
    if (y > 255) y = 255;
    return (uint8_t)y;
}

// ---------------------------------------------------------------- int8 GEMM driver

// Panel formats (the packed activations of NR output pixels, per ISA):
enum {
    EM_QP_K4 = 0,   // [Kp/4][NR][4] u8: 4 consecutive k of each pixel (VNNI, generic)
    EM_QP_K4X = 1,  // as K4 with every byte xor 0x80 (u8 - 128 as s8: sdot)
    EM_QP_K2 = 2,   // [Kp/2][NR][2] u8 (pmaddwd)
    EM_QP_K1 = 3,   // [Kp][NR] u8 (widening multiply-accumulate by lane)
    EM_QP_K8X2 = 4, // [Kp8/8][NR/2][16] s8 = u8 ^ 0x80: per pixel pair p0, p1 the bytes
                    // [p0 k0-3][p1 k0-3][p0 k4-7][p1 k4-7] (8-bit smull/smlal2, neon)
    EM_QP_K8 = 5,   // [Kp8/8][NR][8] u8: 8 consecutive k of each pixel (usmmla, neoi8mm)
};
// Kp8: Kp rounded up to a multiple of 8. ISAs with kstep 8 get k slices rounded up to 8; the
// panel rows past Kp hold z_in (xor'd like the rest) and the prepared weights there are zero.

// Micro-kernel: acc[MR x NR] (row stride NR, int32) = (accumulate ? acc : 0) + the sum over kp
// values of k of the packed weights of MR channels times the panel. wblk: channel c0 of a packed
// 8-channel block (or of the prepared weights, see prep) at the first k; panel: the panel at the
// first k. kp is a multiple of the ISA's kstep (4 or 8). Adds nothing else (no term).
typedef void (*em_qukr_fn)(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                           int accumulate);
// Optional weight preparation (e.g. s8 -> s16) of kp values of k of one 8-channel block (blk at
// the first k) into dst; the micro-kernel gets dst + c0 * prep_cstride bytes.
typedef void (*em_qprep_fn)(int kp, const int8_t *blk, void *dst);
// Requantise one row of n accumulators (term already added) into dst (stride 1).
// res == NULL: no residual.
typedef void (*em_qrow_fn)(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                           const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst);
// A whole accumulator tile at once (the CHW output path): for rows i < rows,
// row(acc + i * ld_acc + terms[i] (added in int32), n, mults[i], z_out, lo,
//     res ? res + i * res_ld : NULL, z_res, res_mult, dst + i * dst_ld).
// acc is modified (the terms are added in place).
typedef void (*em_qrows_fn)(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                            const float *mults, int32_t z_out, int32_t lo, const uint8_t *res,
                            size_t res_ld, int32_t z_res, float res_mult, uint8_t *dst,
                            size_t dst_ld);

// The micro-kernel with the requantisation fused into its store (ukr_rq): the last K slice of one
// MR x NR tile, its int32 sums (plus acc's, the earlier slices' tile of row stride NR, when acc !=
// NULL) requantised in registers and stored as uint8 rows of the CHW output. For rows i < t->rows
// and pixels p < t->nv exactly what em_qrows_fn writes for that tile (the int32 term added, then
// em_qrow_fn's instruction sequence), and nothing else is written or read past them.
typedef struct em_qrq_tile {
    const int32_t *terms; // [rows]: the int32 term of each row
    const float *mults;   // [rows]
    int32_t z_out, lo;
    const uint8_t *res;   // NULL: no residual; else row i at res + i * res_ld
    size_t res_ld;
    int32_t z_res;
    float res_mult;
    uint8_t *dst;         // row i at dst + i * dst_ld
    size_t dst_ld;
    int rows, nv;         // 1..MR rows, 1..NR pixels
    // x86: 1 when every v of the layer is proven below 2^30 (em_rq_nocl: no NaN or infinite
    // multiplier, no int32 wrap), so the kernel may leave out the float clamp; 0: keep it
    int nocl;
} em_qrq_tile;
typedef void (*em_qukr_rq_fn)(int kp, const void *wblk, const uint8_t *panel, const int32_t *acc,
                              const em_qrq_tile *t);
#if defined(__x86_64__)
// The same for the deconvolution's output (QOUT_DECONV, x86): tile rows m0 + i (m0 a multiple of
// 8, i < rows, rows 4 or 8) are m = co * 4 + dy * 2 + dx, co = m0 / 4 + i / 4; the requantised
// rows of each pair (dx 0, dx 1) of one (co, dy) are stored interleaved into output row 2 y + dy
// of channel co, bytes 2 x and 2 x + 1, for the input pixels n0 + p = y * W + x, p < nv (which
// may run over several input rows). The same bytes as the driver's epilogue (em_qrows_fn rows,
// then the interleave); nothing else is written.
typedef struct em_qrq_dc {
    const int32_t *terms; // [rows]: the int32 term of each row
    const float *mults;   // [rows / 4]: the multiplier of channel co0 + c
    int32_t z_out, lo;
    uint8_t *out;         // the output [Cout][2 H][2 W]
    int H, W, co0, n0, nv, rows;
    int nocl; // as em_qrq_tile's
} em_qrq_dc;
typedef void (*em_qukr_rqdc_fn)(int kp, const void *wblk, const uint8_t *panel, const int32_t *acc,
                                const em_qrq_dc *t);
// And for the linear layers' [N][M] outputs (QOUT_NM_U8 / QOUT_NM_F32, x86): tile rows m0 + i
// (i < rows, 1..8) x pixels n0 + p (p < nv) stored transposed, pixel p's rows as one run at
// out + (n0 + p) * M + m0 (f32: outf): u8 the requantised bytes (em_qrows_fn, no residual), f32
// (float)(sum + term) * mults[i] as the driver's epilogue. Nothing else is written.
typedef struct em_qrq_nm {
    const int32_t *terms; // [rows]
    const float *mults;   // [rows]
    int32_t z_out, lo;    // u8 only
    uint8_t *out;         // u8: pixel p's bytes at out + p * M (already at (n0, m0)); NULL: f32
    float *outf;          // f32: pixel p's floats at outf + p * M
    size_t M;
    int nv, rows;
} em_qrq_nm;
typedef void (*em_qukr_rqnm_fn)(int kp, const void *wblk, const uint8_t *panel, const int32_t *acc,
                                const em_qrq_nm *t);
// And for the float CHW outputs (QOUT_CHW_F32, x86): rows i < rows (1..8) x pixels p < nv as
// (float)(sum + terms[i]) * mults[i] at dst + i * dst_ld + p, the driver's epilogue's floats
// (int32 sum and term, one conversion, one multiply). Nothing else is written.
typedef struct em_qrq_f32 {
    const int32_t *terms; // [rows]
    const float *mults;   // [rows]
    float *dst;           // row i at dst + i * dst_ld (already at (m0, n0))
    size_t dst_ld;
    int nv, rows;
} em_qrq_f32;
typedef void (*em_qukr_rqf_fn)(int kp, const void *wblk, const uint8_t *panel, const int32_t *acc,
                               const em_qrq_f32 *t);
// One output channel per window of a 1x1 convolution with float output (em_qconv1x1_rows_u8_f32,
// x86/q1rows_avx512vnni.c): windows r < count (sorted by column, disjoint, ww >= 8) of wh x ww
// at column x0s[r], row y0 of the [Cin][H][W] map; window r's channel has the weight dwords
// wt[g * ldw + r] (k 4 g .. 4 g + 3, g < (Cin + 3) / 4), the int32 term terms[r] and the
// multiplier deqs[r] (the three arrays hold at least count + 16 entries), and its floats go to
// out + r * wh * ww (row-major).
typedef struct em_q1rows {
    const uint8_t *in;
    int Cin, H, W;
    const int32_t *wt;
    int ldw;
    const int32_t *terms;
    const float *deqs;
    const int32_t *x0s;
    int count, y0, wh, ww;
    float *out;
} em_q1rows;
// The pixels of map columns [c0, c0 + 64 nch) (of the windows there; nch <= 8) on window rows
// [ya, yb) (at most 8); scratch: 64-byte aligned, em_q1rows_scratch_bytes(). Returns 0, or -1
// (more than 16 windows touch a chunk of 64 columns: not done).
typedef int (*em_q1rows_fn)(const em_q1rows *j, int c0, int nch, int ya, int yb, void *scratch);
#endif

// Element-wise rows: rescaled add (em_qadd_u8 formula) and quantisation (em_quantize_f32_u8).
typedef void (*em_qadd_row_fn)(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b,
                               int32_t z_b, float b_mult, int n, int32_t z_out, int32_t lo,
                               uint8_t *out);
typedef void (*em_qquant_row_fn)(const float *x, int n, float inv_scale, int32_t z, uint8_t *out);
// RoIAlign on uint8 HWC maps, one sample point over n channels (em_roi_align_u8_hwc): with
// v_i = (float)(f_i[c] - z) * s, acc[c] += ((w1 * v1 + w2 * v2) + w3 * v3) + w4 * v4, in exactly
// this order on every ISA.
typedef void (*em_qroi_row_fn)(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3,
                               const uint8_t *f4, float w1, float w2, float w3, float w4, int32_t z,
                               float s, int n, float *acc);

// Dequantisation row: out[i] = (float)(q[i] - z) * scale.
typedef void (*em_qdequant_row_fn)(const uint8_t *q, int n, float scale, int32_t z, float *out);

#if defined(__x86_64__)
struct em_qpsrc;
struct em_qroi_gsamp;
#endif

typedef struct em_qgemm_params {
    const char *name; // the micro-kernel's name (for logs: em_qgemm_kernel_name)
    int mr, nr;       // channels (1, 2, 4 or 8) x pixels per micro-kernel call
    int kstep;        // k granularity of the micro-kernel and its panel (4 or 8)
    int panel;        // EM_QP_*
    em_qukr_fn ukr;
    em_qukr_rq_fn ukr_rq; // NULL: the last slice runs ukr and the driver's epilogue requantises
#if defined(__x86_64__)
    em_qukr_rqdc_fn ukr_rqdc; // NULL: the deconvolution's tiles go through the driver's epilogue
    em_qukr_rqnm_fn ukr_rqnm; // NULL: the linear layers' tiles go through the driver's epilogue
    em_qukr_rqf_fn ukr_rqf;   // NULL: the float CHW tiles go through the driver's epilogue
    em_q1rows_fn rows1;       // NULL: no one-channel-per-window kernel (em_qconv1x1_rows_u8_f32 returns 1)
    // Panels built straight from the source (x86/qpanel_avx512.c: EM_QP_K4, NR 48, AVX-512BW
    // masked loads), set up per layer and thread, then built per chunk. NULL: gathered.
    int (*src_panels_setup)(const struct em_qpsrc *s);
    void (*src_panels)(const struct em_qpsrc *s, int n0, int count, uint8_t *dst, size_t pstride);
    // QSRC_COLS panels of 48 pixels by dword transposes (x86/qcols_avx512.c). NULL: 4-byte moves.
    void (*cols_panel)(const uint8_t *src, long ldk, int nv, int kc, uint8_t z, uint8_t *dst);
    // The uint8 RoIAlign's grid pieces, 32 channels at a time (em_qroi_grid.h). NULL: portable C.
    void (*roi_grid_deq)(const uint8_t *f, const int *ys, int ny, const int *xs, int nx, size_t W, size_t C,
                         int32_t z, float s, float *G);
    void (*roi_grid_bins)(const struct em_qroi_gsamp *S, const int *nb, int PH, int PW, float count, float inv,
                          int32_t z, uint8_t *o, size_t cstride, size_t ystride);
    // add_row with b upsampled twice by nearest (out[i] uses b[i / 2]: the FPN's top-down add),
    // b's dequantised values duplicated in registers. NULL: the b row is gathered, then add_row.
    em_qadd_row_fn add_up2_row;
#endif
    em_qprep_fn prep; // NULL: the micro-kernel reads the packed block directly
    size_t prep_bytes_per_k; // bytes of prepared weights per k (for 8 channels)
    int prep_cstride; // bytes between channel c and c+1 in the prepared layout's first group
    em_qrow_fn row;
    em_qrows_fn rows; // NULL: the driver calls row once per row
    int xor_term;     // 1: the panel is offset by -128: add 128 * rowsum to the term
    em_qadd_row_fn add_row;
    em_qquant_row_fn quant_row;
    em_qroi_row_fn roi_row;
    em_qdequant_row_fn dequant_row;
} em_qgemm_params;

const em_qgemm_params *em_qgemm_params_current(void);
void em_qdequant_row_generic(const uint8_t *q, int n, float scale, int32_t z, float *out);

void em_qukr_generic_8x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                         int accumulate);
void em_qrow_generic(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                     const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst);
void em_qadd_row_generic(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b,
                         int32_t z_b, float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out);
void em_qquant_row_generic(const float *x, int n, float inv_scale, int32_t z, uint8_t *out);
void em_qroi_row_generic(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                         float w1, float w2, float w3, float w4, int32_t z, float s, int n,
                         float *acc);
#if defined(__x86_64__)
void em_qadd_row_sse41(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                       float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out);
void em_qquant_row_sse41(const float *x, int n, float inv_scale, int32_t z, uint8_t *out);
void em_qadd_row_avx512(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                        float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out);
void em_qaddup2_row_avx512(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                           float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out);
void em_qquant_row_avx512(const float *x, int n, float inv_scale, int32_t z, uint8_t *out);
void em_qdequant_row_avx512(const uint8_t *q, int n, float scale, int32_t z, float *out);
void em_qroi_row_avx2(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                      float w1, float w2, float w3, float w4, int32_t z, float s, int n, float *acc);
void em_qroi_row_avx512(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                        float w1, float w2, float w3, float w4, int32_t z, float s, int n,
                        float *acc);
void em_qukr_u8s8_sse41_4x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                         int accumulate);
void em_qprep_s16_k2(int kp, const int8_t *blk, void *dst);
void em_qukr_u8s8_avx2_4x16(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                         int accumulate);
void em_qukr_u8s8_avx512vnni_8x32(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                         int accumulate);
void em_qukr_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                                  int accumulate);
void em_qukr_rq_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                     const int32_t *acc, const em_qrq_tile *t);
void em_qukr_rqdc_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                       const int32_t *acc, const em_qrq_dc *t);
void em_qukr_rqnm_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                       const int32_t *acc, const em_qrq_nm *t);
void em_qukr_rqf_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                      const int32_t *acc, const em_qrq_f32 *t);
int em_q1rows_unit_avx512vnni(const em_q1rows *j, int c0, int nch, int ya, int yb, void *scratch);
size_t em_q1rows_scratch_bytes(void);
// x86/qcols_avx512.c: the 48-pixel EM_QP_K4 panel of kc (a multiple of 4) values of k of pixels
// p < nv at src + p * ldk (pixels nv..47: z), dst [kc / 4][48][4].
void em_qcols_panel48_avx512(const uint8_t *src, long ldk, int nv, int kc, uint8_t z, uint8_t *dst);
void em_qrow_sse41(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                   const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst);
void em_qrow_avx512(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                    const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst);
void em_qrows_avx512(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                     const float *mults, int32_t z_out, int32_t lo, const uint8_t *res,
                     size_t res_ld, int32_t z_res, float res_mult, uint8_t *dst, size_t dst_ld);
void em_qrow_avx2(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                  const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst);
void em_qrows_avx2(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                   const float *mults, int32_t z_out, int32_t lo, const uint8_t *res,
                   size_t res_ld, int32_t z_res, float res_mult, uint8_t *dst, size_t dst_ld);
#endif
#if defined(__aarch64__)
void em_qadd_row_neon(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                      float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out);
void em_qquant_row_neon(const float *x, int n, float inv_scale, int32_t z, uint8_t *out);
void em_qprep_mlal(int kp, const int8_t *blk, void *dst);
void em_qukr_s8s8_neonmlal_4x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                               int accumulate);
void em_qukr_u8s8_neondot_8x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                              int accumulate);
void em_qprep_i8mm(int kp, const int8_t *blk, void *dst);
void em_qukr_u8s8_neoi8mm_8x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                              int accumulate);
void em_qroi_row_neon(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                      float w1, float w2, float w3, float w4, int32_t z, float s, int n,
                      float *acc);
void em_qdequant_row_neon(const uint8_t *q, int n, float scale, int32_t z, float *out);
void em_qrow_neon(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                  const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst);
void em_qrows_neon(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                   const float *mults, int32_t z_out, int32_t lo, const uint8_t *res, size_t res_ld,
                   int32_t z_res, float res_mult, uint8_t *dst, size_t dst_ld);
#endif

#endif
