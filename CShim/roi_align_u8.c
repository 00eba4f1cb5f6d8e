// RoIAlign on uint8 feature maps (em_qkernels.h em_roi_align_u8_hwc) and the CHW -> HWC copy it
// reads. The int8 pipeline pools straight from its uint8 P2..P5 instead of dequantising whole
// maps to float: the maps are read in HWC so that the four taps of a sample point are four
// contiguous channel vectors, and every channel runs the float operations of em_roi_align_f32
// (ref/roi_paste.c) in the same order, so the result is bit-identical to the float round trip
// dequantise -> em_roi_align_f32 -> quantise. Element-wise over channels: the compiler's
// vectorisation cannot change a result, and FP contraction is off.
#pragma STDC FP_CONTRACT OFF
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "em_internal.h"
#include "em_qinternal.h"
#include "em_roi_sample.h"
#include "em_qroi_grid.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#if defined(__aarch64__)
// 16 channels x 16 pixels (rows of 16 bytes at in + c * HW) -> 16 pixels x 16 channels (rows at
// out + p * C): four trn1/trn2 levels (bytes, halves, words, doublewords), 64 instructions.
static inline void transpose16x16_u8(const uint8_t *in, size_t HW, uint8_t *out, size_t C) {
    uint8x16_t r[16];
    for (int i = 0; i < 16; i++) r[i] = vld1q_u8(in + (size_t)i * HW);
    uint8x16_t t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = vtrn1q_u8(r[i], r[i + 1]);
        t[i + 1] = vtrn2q_u8(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int j = 0; j < 2; j++) {
            r[i + j] = vreinterpretq_u8_u16(vtrn1q_u16(vreinterpretq_u16_u8(t[i + j]), vreinterpretq_u16_u8(t[i + j + 2])));
            r[i + j + 2] = vreinterpretq_u8_u16(vtrn2q_u16(vreinterpretq_u16_u8(t[i + j]), vreinterpretq_u16_u8(t[i + j + 2])));
        }
    for (int i = 0; i < 16; i += 8)
        for (int j = 0; j < 4; j++) {
            t[i + j] = vreinterpretq_u8_u32(vtrn1q_u32(vreinterpretq_u32_u8(r[i + j]), vreinterpretq_u32_u8(r[i + j + 4])));
            t[i + j + 4] = vreinterpretq_u8_u32(vtrn2q_u32(vreinterpretq_u32_u8(r[i + j]), vreinterpretq_u32_u8(r[i + j + 4])));
        }
    for (int j = 0; j < 8; j++) {
        r[j] = vreinterpretq_u8_u64(vtrn1q_u64(vreinterpretq_u64_u8(t[j]), vreinterpretq_u64_u8(t[j + 8])));
        r[j + 8] = vreinterpretq_u8_u64(vtrn2q_u64(vreinterpretq_u64_u8(t[j]), vreinterpretq_u64_u8(t[j + 8])));
    }
    for (int i = 0; i < 16; i++) vst1q_u8(out + (size_t)i * C, r[i]);
}
#endif

#if defined(__x86_64__)
#include "x86/em_tr16_sse2.h"
#endif

typedef struct {
    const uint8_t *in;
    int C;
    size_t HW;
    uint8_t *out;
} transpose_ctx;

enum { TP = 64, TC = 64 }; // pixel x channel tiles: rows of 64 bytes in and out

static void transpose_tiles(void *v, long t0, long t1) {
    const transpose_ctx *j = (const transpose_ctx *)v;
    const int C = j->C;
    const size_t HW = j->HW;
    for (size_t p0 = (size_t)t0 * TP; p0 < HW && p0 < (size_t)t1 * TP; p0 += TP) {
        size_t pn = HW - p0 < TP ? HW - p0 : TP;
#if defined(__aarch64__)
        if (C % 16 == 0 && HW % 16 == 0) { // pn is then a multiple of 16 too
            for (size_t p = p0; p < p0 + pn; p += 16)
                for (int c0 = 0; c0 < C; c0 += 16)
                    transpose16x16_u8(j->in + (size_t)c0 * HW + p, HW, j->out + p * C + c0, (size_t)C);
            continue;
        }
#elif defined(__x86_64__)
        if (C % 16 == 0) { // 16 x 16 blocks, then the tile's last pn % 16 pixels one by one
            const size_t pv = pn / 16 * 16;
            for (int c0 = 0; c0 < C; c0 += 16)
                for (size_t p = p0; p < p0 + pv; p += 16)
                    em_tr16x16_u8_sse2(j->in + (size_t)c0 * HW + p, HW, j->out + p * C + c0, (size_t)C);
            for (size_t p = p0 + pv; p < p0 + pn; p++)
                for (int c = 0; c < C; c++) j->out[p * C + c] = j->in[(size_t)c * HW + p];
            continue;
        }
#endif
        for (int c0 = 0; c0 < C; c0 += TC) {
            int cn = C - c0 < TC ? C - c0 : TC;
            for (size_t p = 0; p < pn; p++) {
                uint8_t *o = j->out + (p0 + p) * C + c0;
                const uint8_t *s = j->in + (size_t)c0 * HW + p0 + p;
                for (int c = 0; c < cn; c++) o[c] = s[(size_t)c * HW];
            }
        }
    }
}

// Pixel tiles split over the thread pool (a permutation: the bytes do not depend on the split).
void em_transpose_chw_hwc_u8(const uint8_t *in, int C, int H, int W, uint8_t *out) {
    if (!in || !out || C <= 0 || H <= 0 || W <= 0) return;
    transpose_ctx j = {in, C, (size_t)H * W, out};
    long tiles = (long)((j.HW + TP - 1) / TP), per = (long)TP * C;
    em_parallel_for(tiles, per >= 32768 ? 1 : 32768 / per, transpose_tiles, &j);
}

enum { CB = 256 }; // channels per accumulator block

void em_qroi_row_generic(const uint8_t *f1, const uint8_t *f2, const uint8_t *f3, const uint8_t *f4,
                         float w1, float w2, float w3, float w4, int32_t z, float s, int n,
                         float *acc) {
    for (int c = 0; c < n; c++) {
        float v1 = (float)((int32_t)f1[c] - z) * s;
        float v2 = (float)((int32_t)f2[c] - z) * s;
        float v3 = (float)((int32_t)f3[c] - z) * s;
        float v4 = (float)((int32_t)f4[c] - z) * s;
        acc[c] += w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
    }
}

typedef struct {
    const uint8_t *feat;
    int C, H, W;
    float s_in, spatial_scale, inv_out;
    int32_t z_in, z_out;
    int sampling_ratio;
    const float *rois;
    int R;
    const size_t *out_offset;
    int PH, PW;
    size_t cstride, ystride;
    uint8_t *out;
    int ntasks;
    volatile int failed;
} ualign_job;

#if defined(__aarch64__)
// aarch64: the bin average and its quantisation 8 channels at a time (vdivq_f32: the same IEEE
// division as acc / count; then em_qquant_row_neon's operations: fmul by 1 / s_out, clampf with
// maxnm/minnm, fcvtns, + z, clamp to [0, 255]) and the 8 bytes stored straight to their strided
// places (st1 of one lane, post-indexed by cstride: one instruction per byte) instead of a
// quantised row then a scalar scatter.
static void finish_bin_neon(float *acc, int cn, float count, float inv, int32_t z, uint8_t *ob,
                            size_t cstride) {
    const float32x4_t vc = vdupq_n_f32(count), vi = vdupq_n_f32(inv);
    const float32x4_t flo = vdupq_n_f32(-EM_QF_LIM), fhi = vdupq_n_f32(EM_QF_LIM);
    const int32x4_t vz = vdupq_n_s32(z), v0 = vdupq_n_s32(0), vhi = vdupq_n_s32(255);
    int c = 0;
    for (; c + 8 <= cn; c += 8) {
        int32x4_t y[2];
        for (int h = 0; h < 2; h++) {
            float32x4_t v = vmulq_f32(vdivq_f32(vld1q_f32(acc + c + 4 * h), vc), vi);
            v = vminnmq_f32(vmaxnmq_f32(v, flo), fhi);
            y[h] = vminq_s32(vmaxq_s32(vaddq_s32(vcvtnq_s32_f32(v), vz), v0), vhi);
        }
        uint8x8_t q = vmovn_u16(vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(y[0])),
                                             vmovn_u32(vreinterpretq_u32_s32(y[1]))));
        // (clang splits vst1_lane_u8 + pointer adds into mov/str/add: assembly keeps one st1 each)
        __asm__("st1 {%[q].b}[0], [%[o]], %[s]\n"
                "st1 {%[q].b}[1], [%[o]], %[s]\n"
                "st1 {%[q].b}[2], [%[o]], %[s]\n"
                "st1 {%[q].b}[3], [%[o]], %[s]\n"
                "st1 {%[q].b}[4], [%[o]], %[s]\n"
                "st1 {%[q].b}[5], [%[o]], %[s]\n"
                "st1 {%[q].b}[6], [%[o]], %[s]\n"
                "st1 {%[q].b}[7], [%[o]], %[s]\n"
                : [o] "+r"(ob)
                : [q] "w"(q), [s] "r"(cstride)
                : "memory");
    }
    if (c < cn) {
        uint8_t qb[8];
        for (int i = c; i < cn; i++) acc[i] = acc[i] / count;
        em_qquant_row_neon(acc + c, cn - c, inv, z, qb);
        for (int i = 0; i < cn - c; i++, ob += cstride) *ob = qb[i];
    }
}
#endif

// ---------------------------------------------------------------- the grid path
//
// A RoI's bilinear taps fall on few distinct feature pixels: the 2 x P sample rows (columns) read
// at most 4 x P distinct rows (columns), and neighbouring samples share pixels (on shapes-val the
// box head's 1000 RoIs read ~0.27 distinct pixels per tap, the mask head's ~0.09). So per RoI and
// per group of GC channels the distinct rows x distinct columns are dequantised once into a float
// grid, (float)(q - z) * s exactly as the rows do, and the samples read the grid: the same floats
// in the same operations as em_qroi_row_generic (w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4 added to
// the bin's sum), with two changes that cannot change a quantised byte:
// - a sample outside the map (zero weights) is skipped: its term is +-0, and adding +-0 to a sum
//   can only change the sign of a zero sum, which quantises to the same byte;
// - the sum starts from the first sample's term instead of 0 + term (again only a zero's sign).
// The bin is finished as em_qquant_row: (sum / count) * (1 / s_out), then em_q_finish.
enum { GC = EM_QROI_GC, GMAX_AX = 128 }; // channels per grid group; samples per axis at most

typedef em_qroi_gsamp_t gsamp_t;

// Per-thread buffer for the grid, the samples and the per-bin sample counts; only grows.
static __thread uint8_t *gbuf;
static __thread size_t gcap;

static void *grid_buffer(size_t n) {
    if (n <= gcap) return gbuf;
    void *q = NULL;
    if (posix_memalign(&q, 64, n) != 0) return NULL;
    free(gbuf);
    gbuf = (uint8_t *)q;
    gcap = n;
    return gbuf;
}

// The sorted distinct pixel indices (i0 and i1) of the in-range axis samples a[0..n) into vals;
// g0/g1[k]: the positions of a[k].i0 / a[k].i1 in vals. Returns the number of distinct values,
// or -1 when an index lies outside [0, lim) (not expected; the caller then takes the row path).
static int axis_grid(const em_roi_axis_t *a, int n, int lim, int *vals, int *g0, int *g1) {
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (!a[k].ok) continue;
        if (a[k].i0 < 0 || a[k].i1 < a[k].i0 || a[k].i1 >= lim) return -1;
        for (int t = 0; t < 2; t++) { // insertion into the sorted distinct list
            int v = t ? a[k].i1 : a[k].i0, i = m;
            while (i > 0 && vals[i - 1] > v) i--;
            if (i > 0 && vals[i - 1] == v) continue;
            for (int q = m; q > i; q--) vals[q] = vals[q - 1];
            vals[i] = v;
            m++;
        }
    }
    for (int k = 0; k < n; k++) {
        if (!a[k].ok) continue;
        for (int t = 0; t < 2; t++) {
            int v = t ? a[k].i1 : a[k].i0, lo = 0, hi = m - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (vals[mid] < v) lo = mid + 1; else hi = mid;
            }
            (t ? g1 : g0)[k] = lo;
        }
    }
    return m;
}

// Portable C pieces (any cn <= GC; the x86 generic and SSE4.1 ISAs, channel tails; AVX2 and
// AVX-512 full groups: x86/qroi_avx2.c, x86/qroi_avx512.c).
static void grid_deq_c(const uint8_t *src, int cn, int32_t z, float s, float *dst) {
    for (int c = 0; c < cn; c++) dst[c] = (float)((int32_t)src[c] - z) * s;
}

static void bin_finish_c(const gsamp_t *S, int n, int cn, float count, float inv, int32_t z,
                         uint8_t *ob, size_t cstride) {
    float acc[GC];
    for (int c = 0; c < cn; c++) acc[c] = 0.0f;
    for (int k = 0; k < n; k++) {
        const gsamp_t *q = &S[k];
        const float *g1 = q->g[0], *g2 = q->g[1], *g3 = q->g[2], *g4 = q->g[3];
        const float w1 = q->w[0], w2 = q->w[1], w3 = q->w[2], w4 = q->w[3];
        for (int c = 0; c < cn; c++) {
            float t = w1 * g1[c] + w2 * g2[c] + w3 * g3[c] + w4 * g4[c];
            acc[c] = k ? acc[c] + t : t;
        }
    }
    for (int c = 0; c < cn; c++) ob[(size_t)c * cstride] = em_q_finish((acc[c] / count) * inv, z, 0);
}

#if defined(__aarch64__)
// (float)(q - z) * s for 16 bytes as em_qroi_row_neon does: tbl builds the float bits 0x4B0000qq
// (2^23 + q) from the bytes and the constant 0x4B00 (table bytes 16, 17), fsub of 2^23 + z is
// exact (small integers), fmul by s.
static const uint8_t grid_idx[4][16] = {
    {0, 16, 16, 17, 1, 16, 16, 17, 2, 16, 16, 17, 3, 16, 16, 17},
    {4, 16, 16, 17, 5, 16, 16, 17, 6, 16, 16, 17, 7, 16, 16, 17},
    {8, 16, 16, 17, 9, 16, 16, 17, 10, 16, 16, 17, 11, 16, 16, 17},
    {12, 16, 16, 17, 13, 16, 16, 17, 14, 16, 16, 17, 15, 16, 16, 17}};

// Dequantises the GC (32) channels at f of the grid pixels of one row (byte offsets xo[0..nx))
// into G, 32 floats per pixel. Assembly so that the four tbl indices stay in registers (the
// compiler reloads them, as tbl overwrites its index operand): per pixel one ldr of the offset,
// one ldp of the 32 bytes, 8 tbl, 8 fsub, 8 fmul, two 64-byte st1, the loop.
static void grid_deq_row_neon(const uint8_t *row, const long *xo, int nx, int32_t z, float s,
                              float *G) {
    if (nx <= 0) return;
    const float off = 8388608.0f + (float)z;
    __asm__ volatile(
        "ld1 {v16.16b, v17.16b, v18.16b, v19.16b}, [%[idx]]\n"
        "movi v1.8h, #0x4b, lsl #8\n"
        "movi v3.8h, #0x4b, lsl #8\n"
        "dup v20.4s, %w[off]\n"
        "dup v21.4s, %w[s]\n"
        "1:\n"
        "ldr x9, [%[xo]], #8\n"
        "add x9, %[row], x9\n"
        "ldp q0, q2, [x9]\n"
        "tbl v4.16b, {v0.16b, v1.16b}, v16.16b\n"
        "tbl v5.16b, {v0.16b, v1.16b}, v17.16b\n"
        "tbl v6.16b, {v0.16b, v1.16b}, v18.16b\n"
        "tbl v7.16b, {v0.16b, v1.16b}, v19.16b\n"
        "tbl v24.16b, {v2.16b, v3.16b}, v16.16b\n"
        "tbl v25.16b, {v2.16b, v3.16b}, v17.16b\n"
        "tbl v26.16b, {v2.16b, v3.16b}, v18.16b\n"
        "tbl v27.16b, {v2.16b, v3.16b}, v19.16b\n"
        "fsub v4.4s, v4.4s, v20.4s\n"
        "fsub v5.4s, v5.4s, v20.4s\n"
        "fsub v6.4s, v6.4s, v20.4s\n"
        "fsub v7.4s, v7.4s, v20.4s\n"
        "fsub v24.4s, v24.4s, v20.4s\n"
        "fsub v25.4s, v25.4s, v20.4s\n"
        "fsub v26.4s, v26.4s, v20.4s\n"
        "fsub v27.4s, v27.4s, v20.4s\n"
        "fmul v4.4s, v4.4s, v21.4s\n"
        "fmul v5.4s, v5.4s, v21.4s\n"
        "fmul v6.4s, v6.4s, v21.4s\n"
        "fmul v7.4s, v7.4s, v21.4s\n"
        "fmul v24.4s, v24.4s, v21.4s\n"
        "fmul v25.4s, v25.4s, v21.4s\n"
        "fmul v26.4s, v26.4s, v21.4s\n"
        "fmul v27.4s, v27.4s, v21.4s\n"
        "st1 {v4.4s, v5.4s, v6.4s, v7.4s}, [%[g]], #64\n"
        "st1 {v24.4s, v25.4s, v26.4s, v27.4s}, [%[g]], #64\n"
        "subs %w[n], %w[n], #1\n"
        "b.ne 1b\n"
        : [xo] "+r"(xo), [g] "+r"(G), [n] "+r"(nx)
        : [row] "r"(row), [idx] "r"(&grid_idx[0][0]), [off] "r"(off), [s] "r"(s)
        : "x9", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v20",
          "v21", "v24", "v25", "v26", "v27", "memory", "cc");
}

// The 16 bytes stored at ob + c * cstride (one st1 lane each, post-indexed); returns ob + 16 cstride.
static inline uint8_t *store16_strided(uint8x16_t q, uint8_t *ob, size_t cstride) {
    __asm__("st1 {%[q].b}[0], [%[o]], %[s]\n"
            "st1 {%[q].b}[1], [%[o]], %[s]\n"
            "st1 {%[q].b}[2], [%[o]], %[s]\n"
            "st1 {%[q].b}[3], [%[o]], %[s]\n"
            "st1 {%[q].b}[4], [%[o]], %[s]\n"
            "st1 {%[q].b}[5], [%[o]], %[s]\n"
            "st1 {%[q].b}[6], [%[o]], %[s]\n"
            "st1 {%[q].b}[7], [%[o]], %[s]\n"
            "st1 {%[q].b}[8], [%[o]], %[s]\n"
            "st1 {%[q].b}[9], [%[o]], %[s]\n"
            "st1 {%[q].b}[10], [%[o]], %[s]\n"
            "st1 {%[q].b}[11], [%[o]], %[s]\n"
            "st1 {%[q].b}[12], [%[o]], %[s]\n"
            "st1 {%[q].b}[13], [%[o]], %[s]\n"
            "st1 {%[q].b}[14], [%[o]], %[s]\n"
            "st1 {%[q].b}[15], [%[o]], %[s]\n"
            : [o] "+r"(ob)
            : [q] "w"(q), [s] "r"(cstride)
            : "memory");
    return ob;
}

// 16 bin sums quantised. fast: sum * (inv / count) in one multiply and the clamp as saturating
// narrows (valid when count is a power of two, inv in [2^-90, 2^100] and s_in below 2^100: see
// align_roi_grid); else (sum / count) * inv and clampf as em_qquant_row_neon.
static inline uint8x16_t quant16(const float32x4_t a[4], int fast, float32x4_t vf,
                                 float32x4_t vc, float32x4_t vi, int16x8_t vz16, int32x4_t vz) {
    if (fast) {
        int32x4_t y[4];
        for (int i = 0; i < 4; i++) y[i] = vcvtnq_s32_f32(vmulq_f32(a[i], vf));
        int16x8_t h0 = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(y[0]), y[1]), vz16);
        int16x8_t h1 = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(y[2]), y[3]), vz16);
        return vqmovun_high_s16(vqmovun_s16(h0), h1);
    }
    const float32x4_t flo = vdupq_n_f32(-EM_QF_LIM), fhi = vdupq_n_f32(EM_QF_LIM);
    const int32x4_t v0 = vdupq_n_s32(0), vhi = vdupq_n_s32(255);
    int32x4_t y[4];
    for (int i = 0; i < 4; i++) {
        float32x4_t v = vmulq_f32(vdivq_f32(a[i], vc), vi);
        v = vminnmq_f32(vmaxnmq_f32(v, flo), fhi);
        y[i] = vminq_s32(vmaxq_s32(vaddq_s32(vcvtnq_s32_f32(v), vz), v0), vhi);
    }
    uint16x8_t h0 = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(y[0])), vmovn_u32(vreinterpretq_u32_s32(y[1])));
    uint16x8_t h1 = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(y[2])), vmovn_u32(vreinterpretq_u32_s32(y[3])));
    return vcombine_u8(vmovn_u16(h0), vmovn_u16(h1));
}

// The sum of a bin's n >= 1 samples over 32 channels, in a[0..8). Assembly (the compiler's
// version spilled the sums): per sample the tap pointers and weights (ldp, ldp, ldr), then per
// 16 channels the four taps' 16 floats each (ld1 of four registers, post-indexed), t = v1 * w1,
// v2 * w2, t + that, v3 * w3, t + that, v4 * w4, t + that (the reference's order; fmul by weight
// lanes, no FMA), sum + t; the first sample writes t as the sum (its 0 + t only differs in the
// sign of a zero, which cannot change a quantised byte).
#define EM_TAPS_HALF(LAST)                                                                       \
    "ld1 {v0.4s, v1.4s, v2.4s, v3.4s}, [x10], #64\n"                                             \
    "ld1 {v4.4s, v5.4s, v6.4s, v7.4s}, [x11], #64\n"                                             \
    "fmul v16.4s, v0.4s, v20.s[0]\n"                                                             \
    "fmul v17.4s, v1.4s, v20.s[0]\n"                                                             \
    "fmul v18.4s, v2.4s, v20.s[0]\n"                                                             \
    "fmul v19.4s, v3.4s, v20.s[0]\n"                                                             \
    "fmul v4.4s, v4.4s, v20.s[1]\n"                                                              \
    "fmul v5.4s, v5.4s, v20.s[1]\n"                                                              \
    "fmul v6.4s, v6.4s, v20.s[1]\n"                                                              \
    "fmul v7.4s, v7.4s, v20.s[1]\n"                                                              \
    "ld1 {v0.4s, v1.4s, v2.4s, v3.4s}, [x12], #64\n"                                             \
    "fadd v16.4s, v16.4s, v4.4s\n"                                                               \
    "fadd v17.4s, v17.4s, v5.4s\n"                                                               \
    "fadd v18.4s, v18.4s, v6.4s\n"                                                               \
    "fadd v19.4s, v19.4s, v7.4s\n"                                                               \
    "fmul v0.4s, v0.4s, v20.s[2]\n"                                                              \
    "fmul v1.4s, v1.4s, v20.s[2]\n"                                                              \
    "fmul v2.4s, v2.4s, v20.s[2]\n"                                                              \
    "fmul v3.4s, v3.4s, v20.s[2]\n"                                                              \
    "ld1 {v4.4s, v5.4s, v6.4s, v7.4s}, [x13], #64\n"                                             \
    "fadd v16.4s, v16.4s, v0.4s\n"                                                               \
    "fadd v17.4s, v17.4s, v1.4s\n"                                                               \
    "fadd v18.4s, v18.4s, v2.4s\n"                                                               \
    "fadd v19.4s, v19.4s, v3.4s\n"                                                               \
    "fmul v4.4s, v4.4s, v20.s[3]\n"                                                              \
    "fmul v5.4s, v5.4s, v20.s[3]\n"                                                              \
    "fmul v6.4s, v6.4s, v20.s[3]\n"                                                              \
    "fmul v7.4s, v7.4s, v20.s[3]\n"                                                              \
    LAST

#define EM_TAPS_FIRST(A0, A1, A2, A3)                                                            \
    "fadd " A0 ".4s, v16.4s, v4.4s\n"                                                            \
    "fadd " A1 ".4s, v17.4s, v5.4s\n"                                                            \
    "fadd " A2 ".4s, v18.4s, v6.4s\n"                                                            \
    "fadd " A3 ".4s, v19.4s, v7.4s\n"
#define EM_TAPS_NEXT(A0, A1, A2, A3)                                                             \
    "fadd v16.4s, v16.4s, v4.4s\n"                                                               \
    "fadd v17.4s, v17.4s, v5.4s\n"                                                               \
    "fadd v18.4s, v18.4s, v6.4s\n"                                                               \
    "fadd v19.4s, v19.4s, v7.4s\n"                                                               \
    "fadd " A0 ".4s, " A0 ".4s, v16.4s\n"                                                        \
    "fadd " A1 ".4s, " A1 ".4s, v17.4s\n"                                                        \
    "fadd " A2 ".4s, " A2 ".4s, v18.4s\n"                                                        \
    "fadd " A3 ".4s, " A3 ".4s, v19.4s\n"

static inline const gsamp_t *bin_sum32(const gsamp_t *S, int n, float32x4_t a[8]) {
    register float32x4_t a0 __asm__("v24"), a1 __asm__("v25"), a2 __asm__("v26"),
        a3 __asm__("v27"), a4 __asm__("v28"), a5 __asm__("v29"), a6 __asm__("v30"),
        a7 __asm__("v31");
    _Static_assert(sizeof(gsamp_t) == 48, "gsamp_t layout: 4 pointers, 4 weights");
    __asm__ volatile(
        "ldp x10, x11, [%[s]]\n"
        "ldp x12, x13, [%[s], #16]\n"
        "ldr q20, [%[s], #32]\n"
        "add %[s], %[s], #48\n"
        EM_TAPS_HALF(EM_TAPS_FIRST("v24", "v25", "v26", "v27"))
        EM_TAPS_HALF(EM_TAPS_FIRST("v28", "v29", "v30", "v31"))
        "subs %w[n], %w[n], #1\n"
        "b.eq 2f\n"
        "1:\n"
        "ldp x10, x11, [%[s]]\n"
        "ldp x12, x13, [%[s], #16]\n"
        "ldr q20, [%[s], #32]\n"
        "add %[s], %[s], #48\n"
        EM_TAPS_HALF(EM_TAPS_NEXT("v24", "v25", "v26", "v27"))
        EM_TAPS_HALF(EM_TAPS_NEXT("v28", "v29", "v30", "v31"))
        "subs %w[n], %w[n], #1\n"
        "b.ne 1b\n"
        "2:\n"
        : [s] "+r"(S), [n] "+r"(n), "=w"(a0), "=w"(a1), "=w"(a2), "=w"(a3), "=w"(a4), "=w"(a5),
          "=w"(a6), "=w"(a7)
        :
        : "x10", "x11", "x12", "x13", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17",
          "v18", "v19", "v20", "memory", "cc");
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3, a[4] = a4, a[5] = a5, a[6] = a6, a[7] = a7;
    return S;
}

// All bins of one 32-channel group: per bin the sum over its samples, quantised (quant16),
// stored (store16_strided).
static void bins_neon(const gsamp_t *S, const int *nb, int PH, int PW, float count, float inv,
                      int fast, int32_t z, uint8_t *o, size_t cstride, size_t ystride) {
    const float32x4_t vc = vdupq_n_f32(count), vi = vdupq_n_f32(inv), vf = vdupq_n_f32(inv / count);
    const int16x8_t vz16 = vdupq_n_s16((int16_t)z);
    const int32x4_t vz = vdupq_n_s32(z);
    for (int ph = 0; ph < PH; ph++)
        for (int pw = 0; pw < PW; pw++) {
            const int n = *nb++;
            float32x4_t a[8];
            if (n > 0) {
                S = bin_sum32(S, n, a);
            } else {
                for (int i = 0; i < 8; i++) a[i] = vdupq_n_f32(0.0f);
            }
            uint8_t *ob = o + (size_t)ph * ystride + pw;
            ob = store16_strided(quant16(a, fast, vf, vc, vi, vz16, vz), ob, cstride);
            store16_strided(quant16(a + 4, fast, vf, vc, vi, vz16, vz), ob, cstride);
        }
}
#endif

// One RoI by the grid path. Returns 1 when done, 0 when this RoI should take the row path
// (too many samples per axis, an unexpected index, no memory for the grid).
// P (x86): the ISA's grid pieces (roi_grid_deq / roi_grid_bins; NULL: the portable C ones).
static int align_roi_grid(const ualign_job *j, const float *b, uint8_t *o, const em_qgemm_params *P) {
    const int C = j->C, H = j->H, W = j->W, PH = j->PH, PW = j->PW;
    // the box arithmetic of align_rois (and em_roi_align_f32)
    float sw = b[0] * j->spatial_scale, sh = b[1] * j->spatial_scale;
    float ew = b[2] * j->spatial_scale, eh = b[3] * j->spatial_scale;
    float rw = ew - sw, rh = eh - sh;
    if (rw < 1.0f) rw = 1.0f;
    if (rh < 1.0f) rh = 1.0f;
    float bh = rh / (float)PH, bw = rw / (float)PW;
    int gh = j->sampling_ratio, gw = j->sampling_ratio;
    if (gh <= 0) {
        gh = (int)ceilf(rh / (float)PH);
        gw = (int)ceilf(rw / (float)PW);
        if (gh < 0) gh = 0;
        if (gw < 0) gw = 0;
    }
    if (gh <= 0 || gw <= 0 || gh > GMAX_AX || gw > GMAX_AX || PH > GMAX_AX / gh ||
        PW > GMAX_AX / gw)
        return 0;
    const int cnt = gh * gw, nsy = PH * gh, nsx = PW * gw;
    const float count = (float)(cnt > 1 ? cnt : 1);
    em_roi_axis_t ay[GMAX_AX], ax[GMAX_AX];
    for (int ph = 0; ph < PH; ph++)
        for (int iy = 0; iy < gh; iy++) {
            float y = sh + (float)ph * bh + (float)(iy + 0.5f) * bh / (float)gh;
            ay[ph * gh + iy] = em_roi_axis(H, y);
        }
    for (int pw = 0; pw < PW; pw++)
        for (int ix = 0; ix < gw; ix++) {
            float x = sw + (float)pw * bw + (float)(ix + 0.5f) * bw / (float)gw;
            ax[pw * gw + ix] = em_roi_axis(W, x);
        }
    int ys[2 * GMAX_AX], xs[2 * GMAX_AX], gy0[GMAX_AX], gy1[GMAX_AX], gx0[GMAX_AX], gx1[GMAX_AX];
    const int ny = axis_grid(ay, nsy, H, ys, gy0, gy1), nx = axis_grid(ax, nsx, W, xs, gx0, gx1);
    if (ny < 0 || nx < 0) return 0;
    const size_t nbins = (size_t)PH * PW, gfl = (size_t)ny * nx * GC;
    uint8_t *buf = (uint8_t *)grid_buffer(gfl * sizeof(float) + nbins * cnt * sizeof(gsamp_t) +
                                          nbins * sizeof(int));
    if (!buf) return 0;
    float *G = (float *)buf;
    gsamp_t *S = (gsamp_t *)(G + gfl);
    int *nb = (int *)(S + nbins * cnt);
    size_t k = 0;
    for (int ph = 0; ph < PH; ph++)
        for (int pw = 0; pw < PW; pw++) {
            int n = 0;
            for (int iy = 0; iy < gh; iy++) {
                const int yk = ph * gh + iy;
                if (!ay[yk].ok) continue;
                const float hy = ay[yk].h, ly = ay[yk].l;
                const size_t r0 = (size_t)gy0[yk] * nx, r1 = (size_t)gy1[yk] * nx;
                for (int ix = 0; ix < gw; ix++) {
                    const int xk = pw * gw + ix;
                    if (!ax[xk].ok) continue;
                    const float hx = ax[xk].h, lx = ax[xk].l;
                    gsamp_t *q = &S[k++];
                    q->g[0] = G + (r0 + gx0[xk]) * GC;
                    q->g[1] = G + (r0 + gx1[xk]) * GC;
                    q->g[2] = G + (r1 + gx0[xk]) * GC;
                    q->g[3] = G + (r1 + gx1[xk]) * GC;
                    q->w[0] = hy * hx; // em_roi_sample's weights
                    q->w[1] = hy * lx;
                    q->w[2] = ly * hx;
                    q->w[3] = ly * lx;
                    n++;
                }
            }
            nb[(size_t)ph * PW + pw] = n;
        }
#if defined(__aarch64__)
    const float big = 1.2676506e30f; // 2^100
    const int pow2 = cnt > 0 && (cnt & (cnt - 1)) == 0;
    const int fast = pow2 && j->inv_out >= 8.0779356e-28f /* 2^-90 */ && j->inv_out <= big &&
                     fabsf(j->s_in) < big && j->z_out >= 0 && j->z_out <= 255;
    const int zok = j->z_in >= 0 && j->z_in <= 255; // tbl dequantisation (as em_qroi_row_neon)
    (void)P;
    long xo[2 * GMAX_AX]; // the grid columns' byte offsets in a feature row
    for (int gx = 0; gx < nx; gx++) xo[gx] = (long)xs[gx] * C;
#endif
    for (int c0 = 0; c0 < C; c0 += GC) {
        const int cn = C - c0 < GC ? C - c0 : GC;
        const uint8_t *f = j->feat + c0;
        uint8_t *oc = o + (size_t)c0 * j->cstride;
#if defined(__aarch64__)
        if (cn == GC && zok) {
            for (int gy = 0; gy < ny; gy++)
                grid_deq_row_neon(f + (size_t)ys[gy] * W * C, xo, nx, j->z_in, j->s_in,
                                  G + (size_t)gy * nx * GC);
            bins_neon(S, nb, PH, PW, count, j->inv_out, fast, j->z_out, oc, j->cstride, j->ystride);
            continue;
        }
#elif defined(__x86_64__)
        if (cn == GC && P->roi_grid_deq) {
            P->roi_grid_deq(f, ys, ny, xs, nx, (size_t)W, (size_t)C, j->z_in, j->s_in, G);
            P->roi_grid_bins(S, nb, PH, PW, count, j->inv_out, j->z_out, oc, j->cstride, j->ystride);
            continue;
        }
#endif
        float *g = G;
        for (int gy = 0; gy < ny; gy++)
            for (int gx = 0; gx < nx; gx++, g += GC)
                grid_deq_c(f + ((size_t)ys[gy] * W + xs[gx]) * C, cn, j->z_in, j->s_in, g);
        const gsamp_t *s = S;
        const int *n = nb;
        for (int ph = 0; ph < PH; ph++)
            for (int pw = 0; pw < PW; pw++, s += *n++)
                bin_finish_c(s, *n, cn, count, j->inv_out, j->z_out,
                             oc + (size_t)ph * j->ystride + pw, j->cstride);
    }
    return 1;
}

// One RoI (box b) of level j pooled to o: the grid path, else the row path. Returns 0, or -1
// when out of memory.
static int align_one(const ualign_job *j, const float *b, uint8_t *o, const em_qgemm_params *P) {
    const int C = j->C, H = j->H, W = j->W, PH = j->PH, PW = j->PW;
    const float s_in = j->s_in;
    const int32_t z_in = j->z_in;
    em_roi_sample_t stack[14 * 14 * 4];
    float acc[CB];
    uint8_t qb[CB];
#if defined(__aarch64__)
    const int grid = 1;
#else
    // every ISA: the vector ones (AVX2, AVX-512) with their grid pieces, the others in C
    const int grid = 1;
#endif
    {
        if (grid && align_roi_grid(j, b, o, P)) return 0;
        float sw = b[0] * j->spatial_scale, sh = b[1] * j->spatial_scale;
        float ew = b[2] * j->spatial_scale, eh = b[3] * j->spatial_scale;
        float rw = ew - sw, rh = eh - sh;
        if (rw < 1.0f) rw = 1.0f;
        if (rh < 1.0f) rh = 1.0f;
        float bh = rh / (float)PH, bw = rw / (float)PW;
        int gh = j->sampling_ratio, gw = j->sampling_ratio;
        if (gh <= 0) { // adaptive (torchvision sampling_ratio <= 0), as em_roi_align_f32
            gh = (int)ceilf(rh / (float)PH);
            gw = (int)ceilf(rw / (float)PW);
            if (gh < 0) gh = 0;
            if (gw < 0) gw = 0;
        }
        int cnt = gh * gw;
        float count = (float)(cnt > 1 ? cnt : 1);
        size_t nsamp = (size_t)PH * PW * gh * gw;
        em_roi_sample_t *pc = nsamp <= sizeof stack / sizeof stack[0] ? stack : malloc(nsamp * sizeof *pc);
        if (!pc) return -1;
        size_t i = 0;
        for (int ph = 0; ph < PH; ph++)
            for (int pw = 0; pw < PW; pw++)
                for (int iy = 0; iy < gh; iy++) {
                    float y = sh + (float)ph * bh + (float)(iy + 0.5f) * bh / (float)gh;
                    for (int ix = 0; ix < gw; ix++) {
                        float x = sw + (float)pw * bw + (float)(ix + 0.5f) * bw / (float)gw;
                        em_roi_sample_t s = em_roi_sample(H, W, y, x);
                        s.p1 *= C, s.p2 *= C, s.p3 *= C, s.p4 *= C;
                        pc[i++] = s;
                    }
                }
        for (int c0 = 0; c0 < C; c0 += CB) {
            const int cn = C - c0 < CB ? C - c0 : CB;
            const uint8_t *f = j->feat + c0;
            size_t k = 0;
            for (int ph = 0; ph < PH; ph++)
                for (int pw = 0; pw < PW; pw++) {
                    for (int c = 0; c < cn; c++) acc[c] = 0.0f;
                    for (int s = 0; s < cnt; s++, k++) {
                        const em_roi_sample_t *q = &pc[k];
                        P->roi_row(f + q->p1, f + q->p2, f + q->p3, f + q->p4, q->w1, q->w2, q->w3,
                                   q->w4, z_in, s_in, cn, acc);
                    }
                    // the bin average, quantised as em_quantize_f32_u8 does (x * (1 / s_out))
                    uint8_t *ob = o + (size_t)c0 * j->cstride + (size_t)ph * j->ystride + pw;
#if defined(__aarch64__)
                    finish_bin_neon(acc, cn, count, j->inv_out, j->z_out, ob, j->cstride);
                    (void)qb;
#else
                    for (int c = 0; c < cn; c++) acc[c] = acc[c] / count;
                    P->quant_row(acc, cn, j->inv_out, j->z_out, qb);
                    for (int c = 0; c < cn; c++) ob[(size_t)c * j->cstride] = qb[c];
#endif
                }
        }
        if (pc != stack) free(pc);
    }
    return 0;
}

static int align_rois(const ualign_job *j, int r0, int r1) {
    const em_qgemm_params *P = em_qgemm_params_current();
    for (int r = r0; r < r1; r++)
        if (align_one(j, j->rois + (size_t)r * 4, j->out + j->out_offset[r], P) != 0) return -1;
    return 0;
}

static void align_task(void *ctx, int t) {
    ualign_job *j = (ualign_job *)ctx;
    int n = j->ntasks;
    int r0, r1;
    em_task_range(j->R, t, n, &r0, &r1);
    if (align_rois(j, r0, r1) != 0) j->failed = 1;
}

int em_roi_align_u8_hwc(const uint8_t *feat, int C, int H, int W, float s_in, int32_t z_in,
                        float spatial_scale, int sampling_ratio, const float *rois, int R,
                        const size_t *out_offset, int PH, int PW, size_t cstride, size_t ystride,
                        float s_out, int32_t z_out, uint8_t *out) {
    if (!feat || !rois || !out_offset || !out || C <= 0 || H <= 0 || W <= 0 || R < 0 ||
        PH <= 0 || PW <= 0 || !(s_out > 0.0f))
        return -1;
    if (R == 0) return 0;
    ualign_job j = {feat, C, H, W, s_in, spatial_scale, 1.0f / s_out, z_in, z_out,
                    sampling_ratio, rois, R, out_offset, PH, PW, cstride, ystride, out, 1, 0};
    int nth = em_num_threads();
    if (nth > R) nth = R;
    if (nth <= 1) return align_rois(&j, 0, R);
    j.ntasks = nth;
    em_parallel(nth, align_task, &j);
    return j.failed ? -1 : 0;
}

// ---------------------------------------------------------------- every level in one call
//
// The RoIs of all levels in one parallel job: the tasks take RoIs one at a time from a shared
// counter (RoIs differ in cost: grid sizes, levels), so neither thread waits for the other at
// the end of each level. Each RoI is pooled exactly as em_roi_align_u8_hwc pools it, whatever
// thread takes it, so the bytes do not depend on the split.
typedef struct {
    const ualign_job *lv;
    const int32_t *level;
    const float *rois;
    const size_t *out_offset;
    uint8_t *out;
    int R;
    int next;
    volatile int failed;
} umulti_job;

static void multi_task(void *ctx, int t) {
    umulti_job *m = (umulti_job *)ctx;
    const em_qgemm_params *P = em_qgemm_params_current();
    (void)t;
    for (;;) {
        const int r = __atomic_fetch_add(&m->next, 1, __ATOMIC_RELAXED);
        if (r >= m->R) break;
        if (align_one(&m->lv[m->level[r]], m->rois + (size_t)r * 4, m->out + m->out_offset[r], P) != 0)
            m->failed = 1;
    }
}

int em_roi_align_u8_hwc_levels(int L, const uint8_t *const *feat, const int *C, const int *H,
                               const int *W, const float *s_in, const int32_t *z_in,
                               const float *spatial_scale, int sampling_ratio, const float *rois,
                               const int32_t *level, int R, const size_t *out_offset, int PH, int PW,
                               size_t cstride, size_t ystride, float s_out, int32_t z_out,
                               uint8_t *out) {
    enum { LMAX = 8 };
    if (L <= 0 || L > LMAX || !feat || !C || !H || !W || !s_in || !z_in || !spatial_scale ||
        !rois || !level || !out_offset || !out || R < 0 || PH <= 0 || PW <= 0 || !(s_out > 0.0f))
        return -1;
    ualign_job lv[LMAX];
    for (int l = 0; l < L; l++) {
        if (!feat[l] || C[l] <= 0 || H[l] <= 0 || W[l] <= 0) return -1;
        ualign_job j = {feat[l], C[l], H[l], W[l], s_in[l], spatial_scale[l], 1.0f / s_out, z_in[l],
                        z_out, sampling_ratio, rois, R, out_offset, PH, PW, cstride, ystride, out, 1, 0};
        lv[l] = j;
    }
    for (int r = 0; r < R; r++)
        if (level[r] < 0 || level[r] >= L) return -1;
    if (R == 0) return 0;
    umulti_job m = {lv, level, rois, out_offset, out, R, 0, 0};
    int nth = em_num_threads();
    if (nth > R) nth = R;
    if (nth <= 1) {
        const em_qgemm_params *P = em_qgemm_params_current();
        for (int r = 0; r < R; r++)
            if (align_one(&lv[level[r]], rois + (size_t)r * 4, out + out_offset[r], P) != 0) return -1;
        return 0;
    }
    em_parallel(nth, multi_task, &m);
    return m.failed ? -1 : 0;
}
