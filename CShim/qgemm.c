// int8 GEMM driver shared by every ISA (em_qkernels.h): the ISA supplies the micro-kernel, the
// panel format of the packed activations, an optional weight preparation and the requantisation
// row (dispatch.c, em_qgemm_params). Output channels come in the packed 8-channel blocks; output
// pixels in NR-wide panels, packed in chunks that stay in cache while all weight blocks stream
// over them. Integer accumulation is exact and the requantisation is element-wise, so the result
// does not depend on the ISA, the tiling or the thread count. Also the public em_q* entry points.
#pragma STDC FP_CONTRACT OFF
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "em_internal.h"
#include "em_qinternal.h"

#if defined(__x86_64__)
#include <emmintrin.h>

#include "x86/em_qpanel_x86.h"
#elif defined(__aarch64__)
#include <arm_neon.h>

#include "arm/em_rq_neon.h"
#endif

// ---------------------------------------------------------------- per-thread buffers

typedef struct {
    uint8_t *panel, *tmp, *prep;
    size_t pcap, tcap, wcap;
} qbufs;

static pthread_key_t qbuf_key;
static pthread_once_t qbuf_once = PTHREAD_ONCE_INIT;

static void qbuf_free(void *p) {
    qbufs *b = (qbufs *)p;
    if (!b) return;
    free(b->panel);
    free(b->tmp);
    free(b->prep);
    free(b);
}
static void qbuf_key_init(void) { pthread_key_create(&qbuf_key, qbuf_free); }

static int grow(uint8_t **p, size_t *cap, size_t n) {
    if (*cap >= n) return 0;
    free(*p);
    *p = NULL;
    *cap = 0;
    void *q = NULL;
    if (posix_memalign(&q, 64, n ? n : 1) != 0) return -1;
    *p = (uint8_t *)q;
    *cap = n;
    return 0;
}

static qbufs *thread_qbufs(size_t np, size_t nt, size_t nw) {
    pthread_once(&qbuf_once, qbuf_key_init);
    qbufs *b = (qbufs *)pthread_getspecific(qbuf_key);
    if (!b) {
        b = (qbufs *)calloc(1, sizeof *b);
        if (!b) return NULL;
        if (pthread_setspecific(qbuf_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (grow(&b->panel, &b->pcap, np) || grow(&b->tmp, &b->tcap, nt) || grow(&b->prep, &b->wcap, nw))
        return NULL;
    return b;
}

// ---------------------------------------------------------------- job

enum { QSRC_ROWS = 0, QSRC_CONV = 1, QSRC_COLS = 2 };
enum { QOUT_CHW = 0, QOUT_DECONV = 1, QOUT_NM_U8 = 2, QOUT_NM_F32 = 3, QOUT_CHW_F32 = 4, QOUT_CHW_I32 = 5 };

typedef struct qjob {
    em_qw q;
    int N; // output pixels (GEMM columns)
    int src_kind;
    const uint8_t *src;
    long ldk; // QSRC_ROWS: B(k, n) = src[k * ldk + n]; QSRC_COLS: B(k, n) = src[n * ldk + k]
    int Cin, H, W, KH, KW, stride, pad, OW; // QSRC_CONV
    int out_kind;
    uint8_t *out;
    float *outf;
    int32_t *outi; // QOUT_CHW_I32: the int32 accumulators (term included), CHW
    const float *mult; // per channel; QOUT_DECONV: per co (channel m uses mult[m / 4])
    int32_t z_out, lo;
    const uint8_t *res;
    int32_t z_res;
    float res_mult;
    int dH, dW; // QOUT_DECONV: input plane
    // The whole layer's prepared weights (ISAs with a preparation, see layer_prep): block mb,
    // k from k0 at wprep + (mb * Kpad + k0) * prep_bytes_per_k. NULL: prepared per chunk.
    const uint8_t *wprep;
    // term[m] + (xor_term ? 128 * rowsum[m] : 0) for m < Mp, made once per layer call (qgemm_run)
    const int32_t *terms;
    // aarch64: whole 8 x 8 tiles of the uint8 outputs (QOUT_CHW, QOUT_DECONV, QOUT_NM_U8) may take
    // the inlined tile requantisation (arm/em_rq_neon.h: multipliers below 2^100, lo and the zero
    // points in range); set by the entry points (rq_tile_ok)
    int rq8;
    // aarch64, 8-k panel formats, stride-1 convolutions (conv_taps): per k < K the offset of its
    // tap from the pixel's top-left input position, ci * H * W + ky * W + kx, and its kx.
    const int32_t *tap_off;
    const uint8_t *tap_kx;
    int tap_cross; // panels may cross output rows (stride 1, OW == W: the input offset is linear)
#if defined(__x86_64__)
    int rq_nocl; // em_qrq_tile.nocl of the layer (QOUT_CHW, QOUT_DECONV; set by qgemm_run)
    int tw;      // QSRC_CONV: tiles of tw columns (em_qconv2d_u8_tiles; only with panel48_src), 0: none
    // em_qconv2d_u8_head_f32: the 1x1 float-output job on this job's CHW uint8 output (QSRC_ROWS
    // from out, the same N), run by run_range on each chunk of pixels as soon as the chunk's
    // outputs are all written (while they are in cache); NULL: none
    const struct qjob *head;
#endif
} qjob;

// Short copies and fills of the im2col gather: whole 16-byte moves (inlined, no library call
// for the many segments a few bytes to a few hundred long), so they may write up to 15 bytes past
// d + n. The gather writes each row left to right and rows in order, so what spills is written
// again afterwards; the buffer has 64 bytes of slack for the last row. Reads stay below s_end.
static inline void copy_short(uint8_t *d, const uint8_t *s, int n, const uint8_t *s_end) {
    if (n <= 512 && s + ((n + 15) & ~15) <= s_end) {
        for (int i = 0; i < n; i += 16) memcpy(d + i, s + i, 16);
    } else if (n > 0) {
        memcpy(d, s, n);
    }
}
static inline void fill_short(uint8_t *d, uint8_t z, int n) {
    if (n <= 512) {
        for (int i = 0; i < n; i += 16) memset(d + i, z, 16);
    } else {
        memset(d, z, n);
    }
}

// d[i] = s[2 * i] for i < n (the taps of a stride-2 convolution), 16 at a time while the 32
// source bytes stay below s_end (SSE2 / NEON are baseline), the rest one by one.
static inline void copy_stride2(uint8_t *d, const uint8_t *s, int n, const uint8_t *s_end) {
    int i = 0;
#if defined(__x86_64__)
    const __m128i lo = _mm_set1_epi16(0x00FF);
    for (; i + 16 <= n && s + 2 * i + 32 <= s_end; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + 2 * i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + 2 * i + 16));
        _mm_storeu_si128((__m128i *)(d + i), _mm_packus_epi16(_mm_and_si128(a, lo), _mm_and_si128(b, lo)));
    }
#elif defined(__aarch64__)
    for (; i + 16 <= n && s + 2 * i + 32 <= s_end; i += 16) vst1q_u8(d + i, vld2q_u8(s + 2 * i).val[0]);
#endif
    for (; i < n; i++) d[i] = s[2 * i];
}

// K1 gather: tmp[k * NR + p] = B(k, n0 + p) for k < Kpad, p < NR (padding: z_in). NR here is
// any width (the driver gathers a whole chunk of panels at once).
// (noinline here and below: cheap per call, and cross/profile.sh then shows each part's cost)
__attribute__((noinline)) static void gather(const qjob *j, int n0, int NR, int Kpad, uint8_t *tmp) {
    const int K = j->q.K, Kp = Kpad, N = j->N;
    const uint8_t z = (uint8_t)j->q.z_in;
    int nv = N - n0 < NR ? N - n0 : NR;
    if (j->src_kind == QSRC_ROWS) {
        for (int k = 0; k < K; k++) {
            memcpy(tmp + (size_t)k * NR, j->src + (size_t)k * j->ldk + n0, nv);
            if (nv < NR) memset(tmp + (size_t)k * NR + nv, z, NR - nv);
        }
    } else if (j->src_kind == QSRC_COLS) {
        for (int p = 0; p < nv; p++) {
            const uint8_t *s = j->src + (size_t)(n0 + p) * j->ldk;
            for (int k = 0; k < K; k++) tmp[(size_t)k * NR + p] = s[k];
        }
        if (nv < NR)
            for (int k = 0; k < K; k++) memset(tmp + (size_t)k * NR + nv, z, NR - nv);
    } else {
        // Row segments: within one output row the taps of (ci, ky, kx) are input row iy at
        // ix0 + t * stride; the valid t form one interval, the rest is padding.
        const int H = j->H, W = j->W, KW = j->KW, KK = j->KH * j->KW, s = j->stride, pad = j->pad,
                  OW = j->OW;
        const int oy0 = n0 / OW, ox0 = n0 - oy0 * OW;
        const uint8_t *src_end = j->src + (size_t)(K / KK) * H * W;
        if (pad == 0 && s == 1) {
            // No padding (also the padded planes of pad_planes): every tap is inside the
            // input, each segment one plain copy.
            for (int k = 0, ci = 0, ky = 0, kx = 0; k < K;
                 k++, kx = kx + 1 < KW ? kx + 1 : 0, ky = kx ? ky : ky + 1 < j->KH ? ky + 1 : 0,
                     ci = kx || ky ? ci : ci + 1) {
                const uint8_t *row = j->src + (size_t)ci * H * W + (size_t)(oy0 + ky) * W + kx;
                uint8_t *d = tmp + (size_t)k * NR;
                int ox = ox0, p = 0;
                while (p < nv) {
                    int seg = OW - ox < nv - p ? OW - ox : nv - p;
                    copy_short(d + p, row + ox, seg, src_end);
                    p += seg;
                    ox = 0;
                    row += W;
                }
                if (nv < NR) fill_short(d + nv, z, NR - nv);
            }
            if (Kp > K) memset(tmp + (size_t)K * NR, z, (size_t)(Kp - K) * NR);
            return;
        }
        // (ci, ky, kx) of k stepped as counters: no divisions per row
        for (int k = 0, ci = 0, ky = 0, kx = 0; k < K;
             k++, kx = kx + 1 < KW ? kx + 1 : 0, ky = kx ? ky : ky + 1 < j->KH ? ky + 1 : 0,
                 ci = kx || ky ? ci : ci + 1) {
            const uint8_t *plane = j->src + (size_t)ci * H * W;
            uint8_t *d = tmp + (size_t)k * NR;
            int oy = oy0, ox = ox0, p = 0;
            while (p < nv) {
                int seg = OW - ox < nv - p ? OW - ox : nv - p;
                int iy = oy * s - pad + ky;
                if (iy < 0 || iy >= H) {
                    fill_short(d + p, z, seg);
                } else {
                    const uint8_t *row = plane + (size_t)iy * W;
                    int ix0 = ox * s - pad + kx, tlo, thi;
                    em_conv_segment(ix0, s, W, seg, &tlo, &thi);
                    if (tlo > 0) fill_short(d + p, z, tlo);
                    if (s == 1) {
                        if (thi > tlo) copy_short(d + p + tlo, row + ix0 + tlo, thi - tlo, src_end);
                    } else if (s == 2) {
                        copy_stride2(d + p + tlo, row + ix0 + (ptrdiff_t)tlo * 2, thi - tlo, src_end);
                    } else {
                        const uint8_t *src = row + ix0 + (ptrdiff_t)tlo * s;
                        for (int t = tlo; t < thi; t++, src += s) d[p + t] = *src;
                    }
                    if (seg > thi) fill_short(d + p + thi, z, seg - thi);
                }
                p += seg;
                ox = 0;
                oy++;
            }
            if (nv < NR) fill_short(d + nv, z, NR - nv);
        }
    }
    if (Kp > K) memset(tmp + (size_t)K * NR, z, (size_t)(Kp - K) * NR);
}

#if defined(__aarch64__)
// One k group (8 rows v[0..7] of the 8 pixels of a panel, bytes already xor'd for K8X2) stored
// in the panel format: byte zips pair the rows (k0k1, k2k3, k4k5, k6k7 per pixel as 16-bit
// lanes); K8 stores them with one 4-way 16-bit interleave per 4 pixels (st4: per pixel the 8 k),
// K8X2 zips once more to the 4-k halves of each pixel and stores per pixel pair [lo][lo][hi][hi].
static inline void k8_store8(uint8x8_t *v, int x2, uint8_t *d) {
    uint16x4_t a0 = vreinterpret_u16_u8(vzip1_u8(v[0], v[1])), a1 = vreinterpret_u16_u8(vzip2_u8(v[0], v[1]));
    uint16x4_t b0 = vreinterpret_u16_u8(vzip1_u8(v[2], v[3])), b1 = vreinterpret_u16_u8(vzip2_u8(v[2], v[3]));
    uint16x4_t c0 = vreinterpret_u16_u8(vzip1_u8(v[4], v[5])), c1 = vreinterpret_u16_u8(vzip2_u8(v[4], v[5]));
    uint16x4_t e0 = vreinterpret_u16_u8(vzip1_u8(v[6], v[7])), e1 = vreinterpret_u16_u8(vzip2_u8(v[6], v[7]));
    if (!x2) {
        uint16x4x4_t lo = {{a0, b0, c0, e0}}, hi = {{a1, b1, c1, e1}};
        vst4_u16((uint16_t *)(void *)d, lo);
        vst4_u16((uint16_t *)(void *)(d + 32), hi);
    } else {
        uint8x8x4_t lo = {{vreinterpret_u8_u16(vzip1_u16(a0, b0)), vreinterpret_u8_u16(vzip1_u16(c0, e0)),
                           vreinterpret_u8_u16(vzip2_u16(a0, b0)), vreinterpret_u8_u16(vzip2_u16(c0, e0))}};
        uint8x8x4_t hi = {{vreinterpret_u8_u16(vzip1_u16(a1, b1)), vreinterpret_u8_u16(vzip1_u16(c1, e1)),
                           vreinterpret_u8_u16(vzip2_u16(a1, b1)), vreinterpret_u8_u16(vzip2_u16(c1, e1))}};
        vst1_u8_x4(d, lo);
        vst1_u8_x4(d + 32, hi);
    }
}

// The same for 16 pixels (two panels d0: pixels 0-7, d1: pixels 8-15) from q registers.
static inline void k8_store16(uint8x16_t *v, int x2, uint8_t *d0, uint8_t *d1) {
    uint16x8_t a0 = vreinterpretq_u16_u8(vzip1q_u8(v[0], v[1])), a1 = vreinterpretq_u16_u8(vzip2q_u8(v[0], v[1]));
    uint16x8_t b0 = vreinterpretq_u16_u8(vzip1q_u8(v[2], v[3])), b1 = vreinterpretq_u16_u8(vzip2q_u8(v[2], v[3]));
    uint16x8_t c0 = vreinterpretq_u16_u8(vzip1q_u8(v[4], v[5])), c1 = vreinterpretq_u16_u8(vzip2q_u8(v[4], v[5]));
    uint16x8_t e0 = vreinterpretq_u16_u8(vzip1q_u8(v[6], v[7])), e1 = vreinterpretq_u16_u8(vzip2q_u8(v[6], v[7]));
    if (!x2) {
        uint16x8x4_t lo = {{a0, b0, c0, e0}}, hi = {{a1, b1, c1, e1}};
        vst4q_u16((uint16_t *)(void *)d0, lo);
        vst4q_u16((uint16_t *)(void *)d1, hi);
    } else {
        // per 4 pixels: l = their k0-3, h = their k4-7 (32-bit lanes); st2 of 64-bit lanes
        // gives [p0 p1 lo][p0 p1 hi][p2 p3 lo][p2 p3 hi]
        uint64x2x2_t q0 = {{vreinterpretq_u64_u16(vzip1q_u16(a0, b0)), vreinterpretq_u64_u16(vzip1q_u16(c0, e0))}};
        uint64x2x2_t q1 = {{vreinterpretq_u64_u16(vzip2q_u16(a0, b0)), vreinterpretq_u64_u16(vzip2q_u16(c0, e0))}};
        uint64x2x2_t q2 = {{vreinterpretq_u64_u16(vzip1q_u16(a1, b1)), vreinterpretq_u64_u16(vzip1q_u16(c1, e1))}};
        uint64x2x2_t q3 = {{vreinterpretq_u64_u16(vzip2q_u16(a1, b1)), vreinterpretq_u64_u16(vzip2q_u16(c1, e1))}};
        vst2q_u64((uint64_t *)(void *)d0, q0);
        vst2q_u64((uint64_t *)(void *)(d0 + 32), q1);
        vst2q_u64((uint64_t *)(void *)d1, q2);
        vst2q_u64((uint64_t *)(void *)(d1 + 32), q3);
    }
}

// K1 rows (stride ld) of 16 pixels -> two panels of an 8-k format (Kp a multiple of 8).
__attribute__((noinline)) static void format_k8_pair(const uint8_t *tmp, long ld, int Kp, int fmt,
                                                     uint8_t *d0, uint8_t *d1) {
    const uint8x16_t x = vdupq_n_u8(0x80);
    if (fmt == EM_QP_K8X2)
        for (int k0 = 0; k0 < Kp; k0 += 8) {
            const uint8_t *r = tmp + (size_t)k0 * ld;
            uint8x16_t v[8];
            for (int i = 0; i < 8; i++) v[i] = veorq_u8(vld1q_u8(r + (size_t)i * ld), x);
            k8_store16(v, 1, d0 + (size_t)k0 * 8, d1 + (size_t)k0 * 8);
        }
    else
        for (int k0 = 0; k0 < Kp; k0 += 8) {
            const uint8_t *r = tmp + (size_t)k0 * ld;
            uint8x16_t v[8];
            for (int i = 0; i < 8; i++) v[i] = vld1q_u8(r + (size_t)i * ld);
            k8_store16(v, 0, d0 + (size_t)k0 * 8, d1 + (size_t)k0 * 8);
        }
}
#endif

// K1 -> EM_QP_K8X2 / EM_QP_K8 (Kp a multiple of 8, NR a multiple of 8): per group of 8 k the
// 8 x 8 byte transposes of each 8 pixels (aarch64: k8_store8; elsewhere byte by byte).
__attribute__((noinline)) static void format_panel_k8(const uint8_t *tmp, long ld, int Kp, int NR, int fmt, uint8_t *dst) {
    const int x2 = fmt == EM_QP_K8X2;
    for (int k0 = 0; k0 < Kp; k0 += 8) {
        uint8_t *d = dst + (size_t)k0 * NR;
        const uint8_t *r = tmp + (size_t)k0 * ld;
#if defined(__aarch64__)
        const uint8x8_t x = vdup_n_u8(x2 ? 0x80 : 0);
        for (int p = 0; p < NR; p += 8, d += 64) {
            uint8x8_t v[8];
            for (int i = 0; i < 8; i++) v[i] = veor_u8(vld1_u8(r + (size_t)i * ld + p), x);
            k8_store8(v, x2, d);
        }
#else
        const uint8_t xr = x2 ? 0x80 : 0;
        for (int p = 0; p < NR; p++)
            for (int i = 0; i < 8; i++) {
                size_t o = x2 ? (size_t)(p >> 1) * 16 + (i >> 2) * 8 + (p & 1) * 4 + (i & 3)
                              : (size_t)p * 8 + i;
                d[o] = r[(size_t)i * ld + p] ^ xr;
            }
#endif
    }
}

// K1 -> the ISA's panel format (NR is a multiple of 8). Interleaving 2 or 4 rows is a byte
// zip: SSE2 unpack on x86-64 and vst2/vst4 on aarch64 (both baseline), plain C elsewhere.
__attribute__((noinline)) static void format_panel(const uint8_t *tmp, long ld, int Kp, int NR, int fmt, uint8_t *dst) {
    if (fmt == EM_QP_K1) {
        for (int k = 0; k < Kp; k++) memcpy(dst + (size_t)k * NR, tmp + (size_t)k * ld, NR);
        return;
    }
    if (fmt == EM_QP_K8X2 || fmt == EM_QP_K8) {
        format_panel_k8(tmp, ld, Kp, NR, fmt, dst);
        return;
    }
    int g = fmt == EM_QP_K2 ? 2 : 4;
    for (int k0 = 0; k0 < Kp; k0 += g) {
        uint8_t *d = dst + (size_t)k0 * NR;
        const uint8_t *r0 = tmp + (size_t)k0 * ld, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
        int p = 0;
#if defined(__x86_64__)
        if (g == 4) {
            const __m128i x = _mm_set1_epi8(fmt == EM_QP_K4X ? (char)0x80 : 0);
            for (; p + 16 <= NR; p += 16) {
                __m128i a = _mm_loadu_si128((const __m128i *)(r0 + p)), b = _mm_loadu_si128((const __m128i *)(r1 + p));
                __m128i c = _mm_loadu_si128((const __m128i *)(r2 + p)), e = _mm_loadu_si128((const __m128i *)(r3 + p));
                __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
                __m128i ce0 = _mm_unpacklo_epi8(c, e), ce1 = _mm_unpackhi_epi8(c, e);
                _mm_storeu_si128((__m128i *)(d + p * 4), _mm_xor_si128(_mm_unpacklo_epi16(ab0, ce0), x));
                _mm_storeu_si128((__m128i *)(d + p * 4 + 16), _mm_xor_si128(_mm_unpackhi_epi16(ab0, ce0), x));
                _mm_storeu_si128((__m128i *)(d + p * 4 + 32), _mm_xor_si128(_mm_unpacklo_epi16(ab1, ce1), x));
                _mm_storeu_si128((__m128i *)(d + p * 4 + 48), _mm_xor_si128(_mm_unpackhi_epi16(ab1, ce1), x));
            }
        } else {
            for (; p + 16 <= NR; p += 16) {
                __m128i a = _mm_loadu_si128((const __m128i *)(r0 + p)), b = _mm_loadu_si128((const __m128i *)(r1 + p));
                _mm_storeu_si128((__m128i *)(d + p * 2), _mm_unpacklo_epi8(a, b));
                _mm_storeu_si128((__m128i *)(d + p * 2 + 16), _mm_unpackhi_epi8(a, b));
            }
        }
#elif defined(__aarch64__)
        if (g == 4) {
            const uint8x16_t x = vdupq_n_u8(fmt == EM_QP_K4X ? 0x80 : 0);
            for (; p + 16 <= NR; p += 16) {
                uint8x16x4_t v = {{veorq_u8(vld1q_u8(r0 + p), x), veorq_u8(vld1q_u8(r1 + p), x),
                                   veorq_u8(vld1q_u8(r2 + p), x), veorq_u8(vld1q_u8(r3 + p), x)}};
                vst4q_u8(d + p * 4, v);
            }
            for (; p + 8 <= NR; p += 8) {
                const uint8x8_t x8 = vget_low_u8(x);
                uint8x8x4_t v = {{veor_u8(vld1_u8(r0 + p), x8), veor_u8(vld1_u8(r1 + p), x8),
                                  veor_u8(vld1_u8(r2 + p), x8), veor_u8(vld1_u8(r3 + p), x8)}};
                vst4_u8(d + p * 4, v);
            }
        } else {
            for (; p + 16 <= NR; p += 16) {
                uint8x16x2_t v = {{vld1q_u8(r0 + p), vld1q_u8(r1 + p)}};
                vst2q_u8(d + p * 2, v);
            }
        }
#endif
        uint8_t xr = fmt == EM_QP_K4X ? 0x80 : 0;
        for (; p < NR; p++)
            for (int i = 0; i < g; i++) d[p * g + i] = tmp[(size_t)(k0 + i) * ld + p] ^ xr;
    }
}

// The panel of pixels [n0, n0 + NR) straight from the source, without the K1 gather, where the
// source already has the panel's byte order in reach: QSRC_ROWS (1x1 stride-1 convolutions,
// deconvolution: k rows of contiguous pixels) with the whole panel inside N, through
// format_panel; QSRC_COLS (linear: k contiguous per pixel) into a 4-k panel, one 4-byte move per
// pixel and group (avx512vnni: em_qcols_panel48_avx512's dword transposes). Both need K = Kp. Returns 0 when the panel must be gathered instead.
// Four k rows r[0..3] of NR pixels -> one group of a 4-k panel (byte zip, xor x), as format_panel.
static void zip4(const uint8_t *const *r, int NR, uint8_t xr, uint8_t *d) {
    int p = 0;
#if defined(__x86_64__)
    const __m128i x = _mm_set1_epi8((char)xr);
    for (; p + 16 <= NR; p += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(r[0] + p)), b = _mm_loadu_si128((const __m128i *)(r[1] + p));
        __m128i c = _mm_loadu_si128((const __m128i *)(r[2] + p)), e = _mm_loadu_si128((const __m128i *)(r[3] + p));
        __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
        __m128i ce0 = _mm_unpacklo_epi8(c, e), ce1 = _mm_unpackhi_epi8(c, e);
        _mm_storeu_si128((__m128i *)(d + p * 4), _mm_xor_si128(_mm_unpacklo_epi16(ab0, ce0), x));
        _mm_storeu_si128((__m128i *)(d + p * 4 + 16), _mm_xor_si128(_mm_unpackhi_epi16(ab0, ce0), x));
        _mm_storeu_si128((__m128i *)(d + p * 4 + 32), _mm_xor_si128(_mm_unpacklo_epi16(ab1, ce1), x));
        _mm_storeu_si128((__m128i *)(d + p * 4 + 48), _mm_xor_si128(_mm_unpackhi_epi16(ab1, ce1), x));
    }
#elif defined(__aarch64__)
    const uint8x16_t x = vdupq_n_u8(xr);
    for (; p + 16 <= NR; p += 16) {
        uint8x16x4_t v = {{veorq_u8(vld1q_u8(r[0] + p), x), veorq_u8(vld1q_u8(r[1] + p), x),
                           veorq_u8(vld1q_u8(r[2] + p), x), veorq_u8(vld1q_u8(r[3] + p), x)}};
        vst4q_u8(d + p * 4, v);
    }
#endif
    for (; p < NR; p++)
        for (int i = 0; i < 4; i++) d[p * 4 + i] = r[i][p] ^ xr;
}

#if defined(__aarch64__)
// Stride-1 and stride-2 convolutions into the 8-k panel formats (NR 8) without the K1 gather:
// for a panel whose 8 pixels lie in one output row, or in two when a stride-1 output row is as
// wide as the input row (OW == W: pad = (KW - 1) / 2, j->tap_cross), the input of pixel p at tap
// k is base + s * p + tap_off[k], one 8-byte load (stride 2: a 16-byte de-interleaving ld2) per
// k, base the panel's first pixel's top-left input position. Every tap row must be inside the
// input (else the panel is gathered); columns outside it (the left and right padding, and the wrap
// into the neighbouring row) are replaced by z_in lane by lane with a mask per kx. Loads stay
// inside the input (checked per panel).
static inline __attribute__((always_inline)) uint8x8_t tap_load(const uint8_t *p, const int s) {
    return s == 1 ? vld1_u8(p) : vld2_u8(p).val[0];
}

static inline __attribute__((always_inline)) int conv_panel_loop(const uint8_t *base, const int32_t *off,
                                                                 const uint8_t *kxs, const uint8x8_t *m,
                                                                 uint8x8_t zv, int K, const int s, const int x2,
                                                                 const int edge, uint8_t *dst) {
    const uint8x8_t x = vdup_n_u8(0x80);
    int k0 = 0;
    for (; k0 + 8 <= K; k0 += 8) {
        uint8x8_t v[8];
        for (int i = 0; i < 8; i++) {
            v[i] = tap_load(base + off[k0 + i], s);
            if (edge) v[i] = vbsl_u8(m[kxs[k0 + i]], zv, v[i]);
            if (x2) v[i] = veor_u8(v[i], x);
        }
        k8_store8(v, x2, dst + (size_t)k0 * 8);
    }
    return k0;
}

// What conv_panel_k8 and conv_panel_k4 share: whether the 8-pixel panel from n0 can be built
// straight from the input (its tap rows inside the input; crossing into the next output row only
// when tap_cross), the input position of its first pixel's first tap (*base), and per kx the
// lanes whose column is outside the input (m[kx]; *edge: any lane at all).
static inline __attribute__((always_inline)) int conv_panel_setup(const qjob *j, int n0, const uint8_t **base,
                                                                  uint8x8_t m[8], int *edge) {
    const int K = j->q.K, H = j->H, W = j->W, pad = j->pad, KW = j->KW, OW = j->OW, s = j->stride;
    if (n0 + 8 > j->N || OW < 8) return 0;
    const int oy0 = n0 / OW, ox0 = n0 - oy0 * OW;
    const int oy1 = ox0 + 7 < OW ? oy0 : oy0 + 1;
    if (oy1 != oy0 && !j->tap_cross) return 0;
    if (oy0 * s < pad || oy1 * s - pad + j->KH > H) return 0;
    const long lo = (long)(oy0 * s - pad) * W + ox0 * s - pad;
    if (lo < 0 || lo + j->tap_off[K - 1] + 8 * s > (long)(K / (j->KH * KW)) * H * W) return 0;
    *base = j->src + lo;
    uint8_t bad[8][8];
    int any = 0;
    for (int p = 0; p < 8; p++) {
        int ox = ox0 + p < OW ? ox0 + p : ox0 + p - OW;
        for (int kx = 0; kx < KW; kx++) {
            int ix = ox * s - pad + kx;
            bad[kx][p] = ix < 0 || ix >= W ? 0xFF : 0;
            any |= bad[kx][p];
        }
    }
    for (int kx = 0; kx < KW; kx++) m[kx] = vld1_u8(bad[kx]);
    *edge = any;
    return 1;
}

// What conv_pair_k8 and conv_pair_k4 share: the input position of the first tap of the 16
// pixels from n0 when they lie in one output row of a stride-1 convolution and every tap of
// each is inside the input (no masks), else NULL.
static inline const uint8_t *conv_pair_base(const qjob *j, int n0) {
    const int K = j->q.K, H = j->H, W = j->W, pad = j->pad, KW = j->KW, OW = j->OW;
    if (n0 + 16 > j->N || j->stride != 1) return NULL;
    const int oy = n0 / OW, ox0 = n0 - oy * OW;
    if (ox0 + 15 >= OW || ox0 < pad || ox0 + 15 - pad + KW > W || oy < pad || oy - pad + j->KH > H) return NULL;
    const long lo = (long)(oy - pad) * W + ox0 - pad;
    if (lo + j->tap_off[K - 1] + 16 > (long)(K / (j->KH * KW)) * H * W) return NULL;
    return j->src + lo;
}

__attribute__((noinline)) static int conv_panel_k8(const qjob *j, int n0, int fmt, uint8_t *dst) {
    const int K = j->q.K, Kpad = (j->q.Kp + 7) & ~7, s = j->stride;
    const uint8_t *base;
    uint8x8_t m[8];
    int edge;
    if (!conv_panel_setup(j, n0, &base, m, &edge)) return 0;
    const int x2 = fmt == EM_QP_K8X2;
    const uint8x8_t zv = vdup_n_u8((uint8_t)j->q.z_in);
    const int32_t *off = j->tap_off;
    const uint8_t *kxs = j->tap_kx;
    int k0;
    if (s == 1) {
        if (edge) k0 = x2 ? conv_panel_loop(base, off, kxs, m, zv, K, 1, 1, 1, dst)
                          : conv_panel_loop(base, off, kxs, m, zv, K, 1, 0, 1, dst);
        else k0 = x2 ? conv_panel_loop(base, off, kxs, m, zv, K, 1, 1, 0, dst)
                     : conv_panel_loop(base, off, kxs, m, zv, K, 1, 0, 0, dst);
    } else {
        if (edge) k0 = x2 ? conv_panel_loop(base, off, kxs, m, zv, K, 2, 1, 1, dst)
                          : conv_panel_loop(base, off, kxs, m, zv, K, 2, 0, 1, dst);
        else k0 = x2 ? conv_panel_loop(base, off, kxs, m, zv, K, 2, 1, 0, dst)
                     : conv_panel_loop(base, off, kxs, m, zv, K, 2, 0, 0, dst);
    }
    if (k0 < Kpad) { // the last group: k >= K is z_in
        uint8x8_t v[8];
        for (int i = 0; i < 8; i++) {
            uint8x8_t t = zv;
            if (k0 + i < K) t = vbsl_u8(m[kxs[k0 + i]], zv, tap_load(base + off[k0 + i], s));
            v[i] = x2 ? veor_u8(t, vdup_n_u8(0x80)) : t;
        }
        k8_store8(v, x2, dst + (size_t)k0 * 8);
    }
    return 1;
}

// The whole 8-k groups of conv_pair_k8 (x2 constant in each copy); returns the k reached.
static inline __attribute__((always_inline)) int conv_pair_loop(const uint8_t *base, const int32_t *off, int K,
                                                                const int x2, uint8_t *d0, uint8_t *d1) {
    const uint8x16_t x = vdupq_n_u8(0x80);
    int k0 = 0;
    for (; k0 + 8 <= K; k0 += 8) {
        uint8x16_t v[8];
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_u8(base + off[k0 + i]);
            if (x2) v[i] = veorq_u8(v[i], x);
        }
        k8_store16(v, x2, d0 + (size_t)k0 * 8, d1 + (size_t)k0 * 8);
    }
    return k0;
}

// Two neighbouring panels (16 pixels from n0) of conv_panel_k8 at once when all 16 lie in one
// output row and every tap of each is inside the input (no masks): 16-byte loads.
__attribute__((noinline)) static int conv_pair_k8(const qjob *j, int n0, int fmt, uint8_t *d0, uint8_t *d1) {
    const int K = j->q.K, Kpad = (j->q.Kp + 7) & ~7;
    const uint8_t *base = conv_pair_base(j, n0);
    if (!base) return 0;
    const int x2 = fmt == EM_QP_K8X2;
    const uint8x16_t x = vdupq_n_u8(x2 ? 0x80 : 0);
    const int32_t *off = j->tap_off;
    int k0 = x2 ? conv_pair_loop(base, off, K, 1, d0, d1) : conv_pair_loop(base, off, K, 0, d0, d1);
    if (k0 < Kpad) { // the last group: k >= K is z_in
        uint8x16_t v[8];
        for (int i = 0; i < 8; i++)
            v[i] = veorq_u8(k0 + i < K ? vld1q_u8(base + off[k0 + i]) : vdupq_n_u8((uint8_t)j->q.z_in), x);
        k8_store16(v, x2, d0 + (size_t)k0 * 8, d1 + (size_t)k0 * 8);
    }
    return 1;
}

// The 4-k panel (EM_QP_K4X, neondot: per 4 k of each pixel the 4 bytes ^ 0x80) of the same
// convolutions straight from the input, as conv_panel_k8 (same tap table and edge masks): per 4 k
// the 4 tap rows of the 8 pixels stored by one st4.
static inline __attribute__((always_inline)) int conv_panel4_loop(const uint8_t *base, const int32_t *off,
                                                                  const uint8_t *kxs, const uint8x8_t *m,
                                                                  uint8x8_t zv, int K, const int s, const int edge,
                                                                  uint8_t *dst) {
    const uint8x8_t x = vdup_n_u8(0x80);
    int k0 = 0;
    for (; k0 + 4 <= K; k0 += 4) {
        uint8x8x4_t v;
        for (int i = 0; i < 4; i++) {
            uint8x8_t t = tap_load(base + off[k0 + i], s);
            if (edge) t = vbsl_u8(m[kxs[k0 + i]], zv, t);
            v.val[i] = veor_u8(t, x);
        }
        vst4_u8(dst + (size_t)k0 * 8, v);
    }
    return k0;
}

__attribute__((noinline)) static int conv_panel_k4(const qjob *j, int n0, uint8_t *dst) {
    const int K = j->q.K, Kpad = (j->q.Kp + 3) & ~3, s = j->stride;
    const uint8_t *base;
    uint8x8_t m[8];
    int edge;
    if (!conv_panel_setup(j, n0, &base, m, &edge)) return 0;
    const uint8x8_t zv = vdup_n_u8((uint8_t)j->q.z_in);
    const int32_t *off = j->tap_off;
    const uint8_t *kxs = j->tap_kx;
    int k0;
    if (s == 1) k0 = edge ? conv_panel4_loop(base, off, kxs, m, zv, K, 1, 1, dst)
                          : conv_panel4_loop(base, off, kxs, m, zv, K, 1, 0, dst);
    else k0 = edge ? conv_panel4_loop(base, off, kxs, m, zv, K, 2, 1, dst)
                   : conv_panel4_loop(base, off, kxs, m, zv, K, 2, 0, dst);
    for (; k0 < Kpad; k0 += 4) { // the last groups: k >= K is z_in
        uint8x8x4_t v;
        for (int i = 0; i < 4; i++) {
            uint8x8_t t = zv;
            if (k0 + i < K) t = vbsl_u8(m[kxs[k0 + i]], zv, tap_load(base + off[k0 + i], s));
            v.val[i] = veor_u8(t, vdup_n_u8(0x80));
        }
        vst4_u8(dst + (size_t)k0 * 8, v);
    }
    return 1;
}

// Two neighbouring 4-k panels at once, as conv_pair_k8 (stride 1, 16 pixels in one output row,
// every tap inside the input): 16-byte loads, each half stored by one st4.
__attribute__((noinline)) static int conv_pair_k4(const qjob *j, int n0, uint8_t *d0, uint8_t *d1) {
    const int K = j->q.K, Kpad = (j->q.Kp + 3) & ~3;
    const uint8_t *base = conv_pair_base(j, n0);
    if (!base) return 0;
    const uint8x16_t x = vdupq_n_u8(0x80), zq = vdupq_n_u8((uint8_t)j->q.z_in);
    const int32_t *off = j->tap_off;
    for (int k0 = 0; k0 < Kpad; k0 += 4) {
        uint8x16_t v[4];
        if (k0 + 4 <= K)
            for (int i = 0; i < 4; i++) v[i] = veorq_u8(vld1q_u8(base + off[k0 + i]), x);
        else // the last groups: k >= K is z_in
            for (int i = 0; i < 4; i++) v[i] = veorq_u8(k0 + i < K ? vld1q_u8(base + off[k0 + i]) : zq, x);
        uint8x8x4_t a = {{vget_low_u8(v[0]), vget_low_u8(v[1]), vget_low_u8(v[2]), vget_low_u8(v[3])}};
        uint8x8x4_t b = {{vget_high_u8(v[0]), vget_high_u8(v[1]), vget_high_u8(v[2]), vget_high_u8(v[3])}};
        vst4_u8(d0 + (size_t)k0 * 8, a);
        vst4_u8(d1 + (size_t)k0 * 8, b);
    }
    return 1;
}

// The tap tables of conv_panel_k8 / conv_panel_k4 (thread's buffer, grows only), or none: the job then gathers.
static __thread uint8_t *tapbuf;
static __thread size_t tapcap;

static void conv_taps(qjob *j, const em_qgemm_params *P) {
    if (j->src_kind != QSRC_CONV || j->stride > 2 || P->nr != 8 || j->KW > 8 ||
        (P->panel != EM_QP_K8 && P->panel != EM_QP_K8X2 && P->panel != EM_QP_K4X))
        return;
    const int K = j->q.K;
    if (grow(&tapbuf, &tapcap, (size_t)K * 5) != 0) return;
    int32_t *off = (int32_t *)(void *)tapbuf;
    uint8_t *kxs = tapbuf + (size_t)K * 4;
    for (int k = 0, ci = 0, ky = 0, kx = 0; k < K; k++) {
        off[k] = (ci * j->H + ky) * j->W + kx;
        kxs[k] = (uint8_t)kx;
        if (++kx == j->KW) {
            kx = 0;
            if (++ky == j->KH) ky = 0, ci++;
        }
    }
    j->tap_off = off;
    j->tap_kx = kxs;
    j->tap_cross = j->stride == 1 && j->OW == j->W;
}
#endif

static int direct_panel(const qjob *j, const em_qgemm_params *P, int n0, int NR, int fmt, uint8_t *dst) {
    const int K = j->q.K, Kp = j->q.Kp;
#if defined(__aarch64__)
    if (j->tap_off && fmt == EM_QP_K4X) return conv_panel_k4(j, n0, dst);
#endif
    // (Not for panels narrower than 16 pixels, the aarch64 ones: there the per-k-row setup of 4
    // row pointers costs more than the zip of 8 bytes, and the chunk-wide gather of long row
    // segments then format_panel is cheaper: under qemu on cortex-a76 this path took ~1.3 G
    // instructions of one shapes detect in run_range, the gather + format ~0.3 G.)
    if (j->src_kind == QSRC_CONV && j->stride == 1 && NR >= 16 && (fmt == EM_QP_K4 || fmt == EM_QP_K4X)) {
        // A stride-1 convolution panel inside one output row whose taps all fall inside the
        // input columns: each k row is a plain input row segment (or the zero point, above and
        // below the input), zipped straight into the panel.
        const int OW = j->OW, H = j->H, W = j->W, pad = j->pad, KW = j->KW, KH = j->KH;
        const int oy = n0 / OW, ox = n0 - oy * OW;
        if (n0 + NR > j->N || ox + NR > OW || ox - pad < 0 || ox + NR - 1 - pad + KW - 1 > W - 1 ||
            NR > 64)
            return 0;
        uint8_t zrow[64];
        memset(zrow, (uint8_t)j->q.z_in, sizeof zrow);
        const uint8_t xr = fmt == EM_QP_K4X ? 0x80 : 0;
        const uint8_t *r[4];
        int ci = 0, ky = 0, kx = 0;
        for (int k0 = 0; k0 < Kp; k0 += 4) {
            for (int i = 0; i < 4; i++) {
                int iy = oy - pad + ky;
                r[i] = k0 + i >= K || iy < 0 || iy >= H
                           ? zrow
                           : j->src + ((size_t)ci * H + iy) * W + (ox - pad + kx);
                if (++kx == KW) {
                    kx = 0;
                    if (++ky == KH) ky = 0, ci++;
                }
            }
            zip4(r, NR, xr, dst + (size_t)k0 * NR);
        }
        return 1;
    }
    if (Kp != K) return 0;
    if (j->src_kind == QSRC_ROWS) {
        if (n0 + NR > j->N) return 0;
        format_panel(j->src + n0, j->ldk, Kp, NR, fmt, dst);
        return 1;
    }
#if defined(__aarch64__)
    if (j->src_kind == QSRC_COLS && (fmt == EM_QP_K8 || fmt == EM_QP_K8X2) && NR == 8 && n0 + 8 <= j->N &&
        (Kp & 7) == 0) {
        // Linear (k contiguous per pixel): each pixel's 8 k of a group are one 8-byte move;
        // 16 k of the 8 pixels at a time, regrouped by 64-bit (K8) or 32-bit (K8X2) zips.
        const int x2 = fmt == EM_QP_K8X2;
        const uint8x16_t x = vdupq_n_u8(x2 ? 0x80 : 0);
        const uint8_t *s = j->src + (size_t)n0 * j->ldk;
        const long ld = j->ldk;
        int k0 = 0;
        for (; k0 + 16 <= Kp; k0 += 16) {
            uint8x16_t v[8];
            for (int p = 0; p < 8; p++) v[p] = veorq_u8(vld1q_u8(s + (size_t)p * ld + k0), x);
            uint8_t *d = dst + (size_t)k0 * 8;
            if (!x2) {
                uint8x16x4_t g0, g1;
                for (int i = 0; i < 4; i++) {
                    uint64x2_t a = vreinterpretq_u64_u8(v[2 * i]), b = vreinterpretq_u64_u8(v[2 * i + 1]);
                    g0.val[i] = vreinterpretq_u8_u64(vzip1q_u64(a, b));
                    g1.val[i] = vreinterpretq_u8_u64(vzip2q_u64(a, b));
                }
                vst1q_u8_x4(d, g0);
                vst1q_u8_x4(d + 64, g1);
            } else {
                uint8x16x4_t g0, g1;
                for (int i = 0; i < 4; i++) {
                    uint32x4_t a = vreinterpretq_u32_u8(v[2 * i]), b = vreinterpretq_u32_u8(v[2 * i + 1]);
                    g0.val[i] = vreinterpretq_u8_u32(vzip1q_u32(a, b));
                    g1.val[i] = vreinterpretq_u8_u32(vzip2q_u32(a, b));
                }
                vst1q_u8_x4(d, g0);
                vst1q_u8_x4(d + 64, g1);
            }
        }
        if (k0 < Kp) { // the last 8 k
            uint8x8_t v[8];
            for (int p = 0; p < 8; p++) v[p] = veor_u8(vld1_u8(s + (size_t)p * ld + k0), vget_low_u8(x));
            uint8_t *d = dst + (size_t)k0 * 8;
            for (int i = 0; i < 4; i++) {
                uint8x16_t o;
                if (!x2) o = vcombine_u8(v[2 * i], v[2 * i + 1]);
                else {
                    uint32x2_t a = vreinterpret_u32_u8(v[2 * i]), b = vreinterpret_u32_u8(v[2 * i + 1]);
                    o = vreinterpretq_u8_u32(vcombine_u32(vzip1_u32(a, b), vzip2_u32(a, b)));
                }
                vst1q_u8(d + 16 * i, o);
            }
        }
        return 1;
    }
    if (j->src_kind == QSRC_COLS && fmt == EM_QP_K4X && NR == 8 && n0 + 8 <= j->N && (Kp & 3) == 0) {
        // Linear into the 4-k panel: 16 k of the 8 pixels at a time (one 16-byte load per pixel),
        // each pixel's 4-k groups regrouped per group by 32-bit and 64-bit zips.
        const uint8x16_t x = vdupq_n_u8(0x80);
        const uint8_t *s = j->src + (size_t)n0 * j->ldk;
        const long ld = j->ldk;
        int k0 = 0;
        for (; k0 + 16 <= Kp; k0 += 16) {
            uint8x16_t v[8];
            for (int p = 0; p < 8; p++) v[p] = veorq_u8(vld1q_u8(s + (size_t)p * ld + k0), x);
            uint8x16x4_t g0, g1; // groups 0, 1 (pixels 0-3, 4-7 each) and groups 2, 3
            for (int h = 0; h < 2; h++) {
                const uint8x16_t *w = v + 4 * h;
                uint32x4_t a01 = vzip1q_u32(vreinterpretq_u32_u8(w[0]), vreinterpretq_u32_u8(w[1]));
                uint32x4_t b01 = vzip2q_u32(vreinterpretq_u32_u8(w[0]), vreinterpretq_u32_u8(w[1]));
                uint32x4_t a23 = vzip1q_u32(vreinterpretq_u32_u8(w[2]), vreinterpretq_u32_u8(w[3]));
                uint32x4_t b23 = vzip2q_u32(vreinterpretq_u32_u8(w[2]), vreinterpretq_u32_u8(w[3]));
                g0.val[h] = vreinterpretq_u8_u64(vzip1q_u64(vreinterpretq_u64_u32(a01), vreinterpretq_u64_u32(a23)));
                g0.val[2 + h] = vreinterpretq_u8_u64(vzip2q_u64(vreinterpretq_u64_u32(a01), vreinterpretq_u64_u32(a23)));
                g1.val[h] = vreinterpretq_u8_u64(vzip1q_u64(vreinterpretq_u64_u32(b01), vreinterpretq_u64_u32(b23)));
                g1.val[2 + h] = vreinterpretq_u8_u64(vzip2q_u64(vreinterpretq_u64_u32(b01), vreinterpretq_u64_u32(b23)));
            }
            uint8_t *d = dst + (size_t)k0 * 8;
            vst1q_u8_x4(d, g0);
            vst1q_u8_x4(d + 64, g1);
        }
        for (; k0 < Kp; k0 += 4) // the last groups (fewer than 16 k)
            for (int p = 0; p < 8; p++) {
                uint32_t w;
                memcpy(&w, s + (size_t)p * ld + k0, 4);
                w ^= 0x80808080u;
                memcpy(dst + (size_t)k0 * 8 + (size_t)p * 4, &w, 4);
            }
        return 1;
    }
    if (j->tap_off && conv_panel_k8(j, n0, fmt, dst)) return 1;
#endif
    if (j->src_kind != QSRC_COLS || (fmt != EM_QP_K4 && fmt != EM_QP_K4X)) return 0;
    const uint32_t x = fmt == EM_QP_K4X ? 0x80808080u : 0;
    const uint8_t z = (uint8_t)j->q.z_in;
#if defined(__x86_64__)
    if (fmt == EM_QP_K4 && NR == 48 && P->cols_panel) {
        int nv48 = j->N - n0 < NR ? j->N - n0 : NR;
        P->cols_panel(j->src + (size_t)n0 * j->ldk, j->ldk, nv48, Kp, z, dst);
        return 1;
    }
#endif
    const uint32_t zz = (z * 0x01010101u) ^ x;
    int nv = j->N - n0 < NR ? j->N - n0 : NR;
    for (int p = 0; p < nv; p++) {
        const uint8_t *s = j->src + (size_t)(n0 + p) * j->ldk;
        uint8_t *d = dst + (size_t)p * 4;
        for (int g = 0; g < Kp / 4; g++) {
            uint32_t v;
            memcpy(&v, s + (size_t)g * 4, 4);
            v ^= x;
            memcpy(d + (size_t)g * NR * 4, &v, 4);
        }
    }
    for (int p = nv; p < NR; p++)
        for (int g = 0; g < Kp / 4; g++) memcpy(dst + (size_t)g * NR * 4 + (size_t)p * 4, &zz, 4);
    return 1;
}

// Writes the requantised rows [m0, m0 + mr) x pixels [n0, n0 + nv) from acc (row stride NR).
__attribute__((noinline)) static void epilogue_general(const qjob *j, const em_qgemm_params *P, int32_t *acc, int NR, int m0, int mr,
                     int n0, int nv) {
    uint8_t row[64];
    if (j->out_kind == QOUT_DECONV) {
        // Rows come in (dx = 0, dx = 1) pairs of one (co, dy) (m = co * 4 + dy * 2 + dx; m0 is a
        // multiple of 8 and M of 4): requantise the tile's rows (one rows call when the ISA has
        // one), then write each pair interleaved, one output row segment at a time.
        uint8_t rq[8][64];
        const int W = j->dW, H = j->dH;
        int rows = j->q.M - m0 < mr ? j->q.M - m0 : mr;
        int32_t terms[8];
        float mults[8];
        for (int i = 0; i < rows; i++) {
            terms[i] = j->terms[m0 + i];
            mults[i] = j->mult[(m0 + i) >> 2];
        }
        if (P->rows) {
            P->rows(acc, NR, rows, nv, terms, mults, j->z_out, j->lo, NULL, 0, 0, 0.0f, rq[0], 64);
        } else {
            for (int i = 0; i < rows; i++) {
                int32_t *a = acc + (size_t)i * NR;
                for (int p = 0; p < nv; p++) a[p] += terms[i];
                P->row(a, nv, mults[i], j->z_out, j->lo, NULL, 0, 0.0f, rq[i]);
            }
        }
        for (int i = 0; i < rows; i += 2) {
            const uint8_t *r0 = rq[i], *r1 = rq[i + 1];
            int m = m0 + i, co = m >> 2, dy = (m >> 1) & 1;
            int y = n0 / W, x = n0 - y * W, p = 0;
            while (p < nv) {
                int seg = W - x < nv - p ? W - x : nv - p;
                uint8_t *o = j->out + ((size_t)co * 2 * H + 2 * y + dy) * 2 * W + 2 * x;
                int q = 0;
#if defined(__aarch64__)
                for (; q + 8 <= seg; q += 8) {
                    uint8x8x2_t v = {{vld1_u8(r0 + p + q), vld1_u8(r1 + p + q)}};
                    vst2_u8(o + 2 * q, v);
                }
#elif defined(__x86_64__)
                for (; q + 16 <= seg; q += 16) {
                    __m128i a = _mm_loadu_si128((const __m128i *)(r0 + p + q));
                    __m128i b = _mm_loadu_si128((const __m128i *)(r1 + p + q));
                    _mm_storeu_si128((__m128i *)(o + 2 * q), _mm_unpacklo_epi8(a, b));
                    _mm_storeu_si128((__m128i *)(o + 2 * q + 16), _mm_unpackhi_epi8(a, b));
                }
                for (; q + 8 <= seg; q += 8)
                    _mm_storeu_si128((__m128i *)(o + 2 * q),
                                     _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(r0 + p + q)),
                                                       _mm_loadl_epi64((const __m128i *)(r1 + p + q))));
#endif
                for (; q < seg; q++) {
                    o[2 * q] = r0[p + q];
                    o[2 * q + 1] = r1[p + q];
                }
                p += seg;
                x = 0;
                y++;
            }
        }
        return;
    }
    if (j->out_kind == QOUT_CHW && P->rows) {
        int rows = j->q.M - m0 < mr ? j->q.M - m0 : mr;
        size_t o = (size_t)m0 * j->N + n0;
        P->rows(acc, NR, rows, nv, j->terms + m0, j->mult + m0, j->z_out, j->lo, j->res ? j->res + o : NULL,
                (size_t)j->N, j->z_res, j->res_mult, j->out + o, (size_t)j->N);
        return;
    }
    for (int i = 0; i < mr; i++) {
        int m = m0 + i;
        if (m >= j->q.M) break;
        int32_t *a = acc + (size_t)i * NR;
        int32_t t = j->terms[m];
        for (int p = 0; p < nv; p++) a[p] += t;
        switch (j->out_kind) {
        case QOUT_CHW: {
            size_t o = (size_t)m * j->N + n0;
            P->row(a, nv, j->mult[m], j->z_out, j->lo, j->res ? j->res + o : NULL, j->z_res,
                   j->res_mult, j->out + o);
            break;
        }
        case QOUT_NM_U8:
            P->row(a, nv, j->mult[m], j->z_out, j->lo, NULL, 0, 0.0f, row);
            for (int p = 0; p < nv; p++) j->out[(size_t)(n0 + p) * j->q.M + m] = row[p];
            break;
        case QOUT_CHW_I32:
            memcpy(j->outi + (size_t)m * j->N + n0, a, (size_t)nv * sizeof(int32_t));
            break;
        case QOUT_CHW_F32: {
            float d = j->mult[m];
            float *o = j->outf + (size_t)m * j->N + n0;
            for (int p = 0; p < nv; p++) o[p] = (float)a[p] * d;
            break;
        }
        default: {
            float d = j->mult[m];
            for (int p = 0; p < nv; p++) j->outf[(size_t)(n0 + p) * j->q.M + m] = (float)a[p] * d;
            break;
        }
        }
    }
}

#if defined(__aarch64__)
// aarch64, whole 8 x 8 tiles (every aarch64 kernel's NR is 8): the tile requantised in registers
// (em_rq_tile8: rows 2p and 2p + 1 in q[p]) and written straight to the output layout.
// QOUT_NM_U8 (linear layers, [N][M]): the tile transposed with four tbl (table = the 64 bytes,
// pixel p's 8 channels are bytes (r / 2) * 16 + (r % 2) * 8 + p), one 8-byte store per pixel.
static const uint8_t nm_tr_idx[16] = {0, 8, 16, 24, 32, 40, 48, 56, 1, 9, 17, 25, 33, 41, 49, 57};
// QOUT_DECONV: row pair (dx = 0, dx = 1) of one (co, dy) interleaved with one tbl.
static const uint8_t dc_zip_idx[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};

// n (0..16) bytes from s to d in at most two overlapping moves.
static inline void copy_upto16(uint8_t *d, const uint8_t *s, int n) {
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n >= 2) {
        uint16_t a, b;
        memcpy(&a, s, 2);
        memcpy(&b, s + n - 2, 2);
        memcpy(d, &a, 2);
        memcpy(d + n - 2, &b, 2);
    } else if (n == 1) {
        d[0] = s[0];
    }
}

static inline __attribute__((always_inline)) void epilogue_tile8(const qjob *j, int32_t *acc,
                                                                 int m0, int n0) {
    const size_t N = (size_t)j->N;
    float32x4_t mlo, mhi;
    if (j->out_kind == QOUT_DECONV) { // channel m uses mult[m / 4]
        mlo = vld1q_dup_f32(j->mult + (m0 >> 2));
        mhi = vld1q_dup_f32(j->mult + (m0 >> 2) + 1);
    } else {
        mlo = vld1q_f32(j->mult + m0);
        mhi = vld1q_f32(j->mult + m0 + 4);
    }
    const uint8_t *res = j->out_kind == QOUT_CHW && j->res ? j->res + (size_t)m0 * N + n0 : NULL;
    const em_rq_tile k = em_rq_tile_setup(mlo, mhi, j->z_out, j->lo, res, N, j->z_res, j->res_mult);
    uint8x16_t q[4];
    em_rq_tile8(&k, acc, j->terms + m0, q);
    if (j->out_kind == QOUT_CHW) {
        uint8_t *o = j->out + (size_t)m0 * N + n0;
        for (int p = 0; p < 4; p++, o += 2 * N) {
            vst1_u8(o, vget_low_u8(q[p]));
            vst1_u8(o + N, vget_high_u8(q[p]));
        }
    } else if (j->out_kind == QOUT_NM_U8) {
        const uint8x16x4_t t = {{q[0], q[1], q[2], q[3]}};
        const uint8x16_t i0 = vld1q_u8(nm_tr_idx), two = vdupq_n_u8(2);
        const size_t M = (size_t)j->q.M;
        uint8_t *o = j->out + (size_t)n0 * M + m0;
        uint8x16_t idx = i0;
        for (int p = 0; p < 8; p += 2, o += 2 * M) { // pixels p, p + 1
            uint8x16_t v = vqtbl4q_u8(t, idx);
            vst1_u8(o, vget_low_u8(v));
            vst1_u8(o + M, vget_high_u8(v));
            idx = vaddq_u8(idx, two);
        }
    } else { // QOUT_DECONV, W >= 8: the 8 pixels lie on at most two input rows
        const int W = j->dW, H = j->dH, y = n0 / W, x = n0 - y * W;
        const int L1 = 2 * (W - x < 8 ? W - x : 8); // output bytes on input row y
        const uint8x16_t zi = vld1q_u8(dc_zip_idx);
        // m0 = 8 g: rows (co0, dy 0), (co0, dy 1), (co0 + 1, dy 0), (co0 + 1, dy 1)
        uint8_t *o = j->out + ((size_t)(m0 >> 2) * 2 * H + 2 * y) * 2 * W + 2 * x;
        const size_t co_step = (size_t)4 * H * W, dy_step = (size_t)2 * W;
        const size_t next = (size_t)4 * W - 2 * x; // from (y, x) to (y + 1, 0), same (co, dy)
        for (int p = 0; p < 4; p++) {
            uint8_t *ob = o + (p >> 1) * co_step + (p & 1) * dy_step;
            uint8x16_t v = vqtbl1q_u8(q[p], zi);
            if (L1 == 16) {
                vst1q_u8(ob, v);
            } else {
                uint8_t tb[16];
                vst1q_u8(tb, v);
                copy_upto16(ob, tb, L1);
                copy_upto16(ob + next, tb + L1, 16 - L1);
            }
        }
    }
}

// The tile requantisation's conditions for the whole layer (see arm/em_rq_neon.h).
static int rq_tile_ok(const float *mult, int n, int32_t z_out, int32_t lo, const uint8_t *res,
                      int32_t z_res, float res_mult) {
    return em_rq_mults_small(mult, n) && lo >= 0 && lo <= 255 && z_out >= -32768 && z_out <= 32767 &&
           (!res || (em_rq_mults_small(&res_mult, 1) && z_res >= 0 && z_res <= 255));
}
#endif

// The epilogue of one tile: on aarch64 whole 8 x 8 tiles of the uint8 outputs inline
// (epilogue_tile8); anything else epilogue_general (QOUT_CHW with a rows function there is one
// call to it).
static inline __attribute__((always_inline)) void epilogue(const qjob *j, const em_qgemm_params *P,
                                                           int32_t *acc, int NR, int m0, int mr,
                                                           int n0, int nv) {
#if defined(__aarch64__)
    if (j->rq8 && NR == 8 && nv == 8 && mr == 8 && m0 + 8 <= j->q.M &&
        (j->out_kind != QOUT_DECONV || j->dW >= 8)) {
        epilogue_tile8(j, acc, m0, n0);
        return;
    }
#endif
    epilogue_general(j, P, acc, NR, m0, mr, n0, nv);
}

typedef struct {
    const qjob *job;
    const em_qgemm_params *P;
    int split_n, ntasks, tiles;
    volatile int failed;
    int kouter; // x86: run_range_kouter over channel blocks
    int unit;   // > 0: split_n with units of at least this many pixel blocks taken in turn (next:
                // the first block not taken)
    int next;
} qrun_ctx;

#if !defined(__aarch64__)
// x86: the next chunk's source rows of a 1x1 layer (QSRC_ROWS) prefetched into L2 while the
// micro-kernel runs on this chunk, a few lines before each call (not the convolutions' input:
// consecutive chunks share most of their input rows, which are in cache). The 1x1 layers of the
// backbone read 16 to 1024 rows at a stride of N bytes, 48 bytes per panel from each: too many
// streams for the hardware prefetchers, so the panel builder waited on L3 for most lines
// (single-threaded layer1.1.conv1: panel building took 74% of the kernel's time). Not the
// residual rows: fused_slice reads them (and writes the output rows) channel block by block as 8
// runs of the whole chunk, which the hardware prefetchers follow; prefetching them as well (up to
// 8 lines before each call for layer1's conv3: M 256 rows of the chunk) made those layers 3-8%
// slower single-layer (the prefetches wait for fill buffers the runs need). Prefetches do not
// change any result.
typedef struct {
    const uint8_t *base;
    size_t plane, lo, hi, off; // bytes [lo, hi) of each of nplanes planes plane bytes apart
    int nplanes, p;
} pf_region;
typedef struct {
    pf_region r[1];
    int nr, cur, per_call;
} pf_plan;

static inline void pf_step(pf_plan *f) {
    int n = f->per_call;
    while (n > 0 && f->cur < f->nr) {
        pf_region *r = &f->r[f->cur];
        if (r->p >= r->nplanes) {
            f->cur++;
            continue;
        }
        __builtin_prefetch(r->base + (size_t)r->p * r->plane + r->off, 0, 2);
        n--;
        r->off += 64;
        if (r->off >= r->hi) {
            r->p++;
            r->off = r->lo & ~(size_t)63;
        }
    }
}

static void pf_region_set(pf_region *r, const uint8_t *base, size_t plane, int nplanes, size_t lo, size_t hi) {
    r->base = base;
    r->plane = plane;
    r->nplanes = hi > lo ? nplanes : 0;
    r->lo = lo;
    r->hi = hi;
    r->off = lo & ~(size_t)63;
    r->p = 0;
}

// The plan for pixels [n0, n1), spread over calls micro-kernel calls.
static void pf_setup(pf_plan *f, const qjob *j, int n0, int n1, long calls) {
    f->nr = f->cur = 0;
    size_t lines = 0;
    if (j->src_kind == QSRC_ROWS) {
        pf_region_set(&f->r[f->nr], j->src, (size_t)j->ldk, j->q.K, (size_t)n0, (size_t)n1);
        lines += (size_t)j->q.K * ((size_t)(n1 - n0) / 64 + 2);
        f->nr++;
    }
    long per = calls > 0 && f->nr > 0 ? (long)(lines / (size_t)calls) + 1 : 0;
    f->per_call = per > 64 ? 64 : (int)per;
}
#endif

#if defined(__x86_64__)
// em_qrq_tile.nocl of a layer (or tile) of M rows with these terms and nmult multipliers, K (padded)
// Kp, the residual's z_res and r_mult when res: 1 when every requantised v = (float)acc * mult
// (+ (float)(r - z_r) * r_mult) is below 2^30 in magnitude. The sums are bounded by
// |acc| <= max |term| + Kp * 255 * 128 (u8 times int8: the packed weights are not checked
// for -128), below 2^31 - 1 (so the int32 sum does not wrap); each float operation rounds by at
// most a factor 1 + 2^-24 (covered by the 1 + 2^-20); the multipliers must be finite (a NaN
// multiplier fails the <= test).
static int em_rq_nocl(const int32_t *terms, int M, const float *mult, int nmult, int Kp,
                      const uint8_t *res, int32_t z_res, float res_mult) {
    double mt = 0, mm = 0;
    for (int m = 0; m < M; m++) {
        const double t = terms[m] < 0 ? -(double)terms[m] : (double)terms[m];
        if (t > mt) mt = t;
    }
    for (int m = 0; m < nmult; m++) {
        const double a = mult[m] < 0 ? -(double)mult[m] : (double)mult[m];
        if (!(a <= 3.5e38)) return 0;
        if (a > mm) mm = a;
    }
    const double acc = mt + (double)Kp * 255 * 128;
    if (!(acc < 2147483647.0)) return 0;
    double v = acc * mm * (1 + 1.0 / 1048576);
    if (res) {
        const double r = res_mult < 0 ? -(double)res_mult : (double)res_mult;
        if (!(r <= 3.5e38)) return 0;
        // |r - z_res| <= |z_res| + 255 (and a wrapped int32 difference is below 2^31)
        v += ((z_res < 0 ? -(double)z_res : (double)z_res) + 255) * r * (1 + 1.0 / 1048576);
    }
    return v < 1073741824.0;
}
#endif

#if !defined(__aarch64__)
// The last K slice [k0, Kp) of the chunk's panels [c0, c0 + cn) x channel blocks [g0, g0 + gn)
// with the requantising micro-kernel (P->ukr_rq; QOUT_CHW): each tile's uint8 rows written
// straight to the output; load: the tiles in accs hold the earlier slices' sums. The weights are
// the packed blocks (the ISAs with ukr_rq have no preparation).
static void fused_slice(const qjob *j, const em_qgemm_params *P, const qbufs *b, const int32_t *accs,
                        int cb, int c0, int cn, int g0, int gn, int k0, int load, pf_plan *pf) {
    const int NR = P->nr, MR = P->mr, Kp = j->q.Kp, ks = P->kstep;
    const int Kpad = (Kp + ks - 1) / ks * ks;
    const int kc = Kp - k0, kcu = (kc + ks - 1) / ks * ks;
    const size_t pbytes = (size_t)Kpad * NR, tile = (size_t)8 * NR, N = (size_t)j->N;
    const em_qukr_rq_fn ukr = P->ukr_rq;
    em_qrq_tile t;
    t.z_out = j->z_out;
    t.lo = j->lo;
    t.res_ld = N;
    t.z_res = j->z_res;
    t.res_mult = j->res_mult;
    t.dst_ld = N;
#if defined(__x86_64__)
    t.nocl = j->rq_nocl;
#else
    t.nocl = 0;
#endif
    // Single-slice layers (K <= KC: the 1x1 layers, layer1's 3x3) and layers with a residual:
    // channel block by block over the chunk's panels, so each block's 8 output (and residual)
    // rows are written (read) as runs of the whole chunk; the output is then most of the memory traffic (x86
    // avx512vnni: also K up to 2304 in one slice, see run_range). Longer K: panel by panel, each
    // panel's slice staying in L1 while every block's weights pass over it.
    const int gouter = !load || j->res;
    const int n1 = gouter ? gn : cn, n2 = gouter ? cn : gn;
    for (int o1 = 0; o1 < n1; o1++)
        for (int o2 = 0; o2 < n2; o2++) {
            const int g = gouter ? o1 : o2, c = gouter ? o2 : o1;
            const int m0 = (g0 + g) * 8, rows = j->q.M - m0 < 8 ? j->q.M - m0 : 8;
            const int8_t *w = j->q.w + ((size_t)(g0 + g) * Kp + k0) * 8;
            const uint8_t *pan = b->panel + (size_t)c * pbytes + (size_t)k0 * NR;
            const int n0 = (c0 + c) * NR;
            t.nv = j->N - n0 < NR ? j->N - n0 : NR;
            const int32_t *a = accs + ((size_t)g * cb + c) * tile;
            for (int i0 = 0; i0 < rows; i0 += MR) {
                const int m = m0 + i0;
                const size_t o = (size_t)m * N + n0;
                t.rows = rows - i0 < MR ? rows - i0 : MR;
                t.terms = j->terms + m;
                t.mults = j->mult + m;
                t.res = j->res ? j->res + o : NULL;
                t.dst = j->out + o;
                pf_step(pf);
                ukr(kcu, w + (size_t)i0 * 4, pan, load ? a + (size_t)i0 * NR : NULL, &t);
            }
        }
}
#endif

#if defined(__x86_64__)
// x86 ISAs whose requantising micro-kernel also stores the deconvolution's interleaved rows
// (P->ukr_rqdc), the linear layers' transposed [N][M] tiles (P->ukr_rqnm) and float CHW rows
// (P->ukr_rqf): 1 (QOUT_DECONV), 2 (QOUT_NM_U8 / QOUT_NM_F32), 3 (QOUT_CHW_F32: the RPN head's
// logits and deltas) when this job's last K slice goes through fused_slice_x86, else 0.
static int fused_x86_kind(const qjob *j, const em_qgemm_params *P) {
    if (P->prep || P->mr != 8) return 0;
    if (j->out_kind == QOUT_DECONV && P->ukr_rqdc) return 1;
    if ((j->out_kind == QOUT_NM_U8 || j->out_kind == QOUT_NM_F32) && P->ukr_rqnm) return 2;
    if (j->out_kind == QOUT_CHW_F32 && P->ukr_rqf) return 3;
    return 0;
}

// fused_slice for those outputs: the last K slice [k0, Kp) of the chunk's panels [c0, c0 + cn)
// (panel c's group at k0: panel + c * pbytes) x channel blocks [g0, g0 + gn), each
// tile's uint8 (or f32) outputs written straight from the micro-kernel's registers (no int32 tile
// pass, no row buffer, no scalar scatter); load: the tiles at accs ([g][cb] of 8 x NR) hold the
// earlier slices' sums. pf: NULL or the next chunk's prefetch plan.
static void fused_slice_x86(const qjob *j, const em_qgemm_params *P, const uint8_t *panel, size_t pbytes,
                            const int32_t *accs, int cb, int c0, int cn, int g0, int gn, int k0, int load,
                            pf_plan *pf) {
    const int NR = P->nr, Kp = j->q.Kp, ks = P->kstep, kind = fused_x86_kind(j, P);
    const int kc = Kp - k0, kcu = (kc + ks - 1) / ks * ks;
    const size_t tile = (size_t)8 * NR;
    em_qrq_dc d;
    em_qrq_nm m;
    em_qrq_f32 f;
    f.dst_ld = (size_t)j->N;
    d.z_out = m.z_out = j->z_out;
    d.lo = m.lo = j->lo;
    d.out = j->out;
    d.H = j->dH;
    d.W = j->dW;
    d.nocl = j->rq_nocl;
    m.M = (size_t)j->q.M;
    if (kind == 3) {
        // float CHW rows (the RPN head: 2 blocks): panel by panel, all blocks while the panel is
        // in L1 (block by block over the chunk's panels read each from L2 again: single-threaded
        // harness, the 5 levels' 15 rows, ~20% slower)
        for (int c = 0; c < cn; c++) {
            const uint8_t *pan = panel + (size_t)c * pbytes;
            const int n0 = (c0 + c) * NR;
            f.nv = j->N - n0 < NR ? j->N - n0 : NR;
            for (int g = 0; g < gn; g++) {
                const int m0 = (g0 + g) * 8;
                f.rows = j->q.M - m0 < 8 ? j->q.M - m0 : 8;
                f.terms = j->terms + m0;
                f.mults = j->mult + m0;
                f.dst = j->outf + (size_t)m0 * j->N + n0;
                if (pf) pf_step(pf);
                P->ukr_rqf(kcu, j->q.w + ((size_t)(g0 + g) * Kp + k0) * 8, pan,
                           load ? accs + ((size_t)g * cb + c) * tile : NULL, &f);
            }
        }
        return;
    }
    for (int g = 0; g < gn; g++) {
        const int m0 = (g0 + g) * 8, rows = j->q.M - m0 < 8 ? j->q.M - m0 : 8;
        d.rows = m.rows = rows;
        d.terms = m.terms = j->terms + m0;
        d.mults = j->mult + (m0 >> 2);
        m.mults = j->mult + m0;
        d.co0 = m0 >> 2;
        const int8_t *w = j->q.w + ((size_t)(g0 + g) * Kp + k0) * 8;
        for (int c = 0; c < cn; c++) {
            const uint8_t *pan = panel + (size_t)c * pbytes;
            const int n0 = (c0 + c) * NR, nv = j->N - n0 < NR ? j->N - n0 : NR;
            const int32_t *a = load ? accs + ((size_t)g * cb + c) * tile : NULL;
            if (pf) pf_step(pf);
            if (kind == 1) {
                d.n0 = n0;
                d.nv = nv;
                P->ukr_rqdc(kcu, w, pan, a, &d);
            } else {
                m.nv = nv;
                m.out = j->out_kind == QOUT_NM_U8 ? j->out + (size_t)n0 * m.M + m0 : NULL;
                m.outf = j->out_kind == QOUT_NM_F32 ? j->outf + (size_t)n0 * m.M + m0 : NULL;
                P->ukr_rqnm(kcu, w, pan, a, &m);
            }
        }
    }
}
#endif

// Chunk of pixel blocks whose panels stay in cache (~192 KB), at least ~128 pixels wide so the
// im2col gather copies long row segments, but at most ~512 KB (FC6: K 12544).
static int chunk_panels(int Kpad, int NR) {
    int cb = (int)((192 * 1024) / ((size_t)Kpad * NR));
    if (cb < (128 + NR - 1) / NR) cb = (128 + NR - 1) / NR;
    int cmax = (int)((512 * 1024) / ((size_t)Kpad * NR));
    if (cb > cmax) cb = cmax > 1 ? cmax : 1;
    return cb;
}

#if defined(__x86_64__)
// x86, avx512vnni (EM_QP_K4, NR 48): the panels of convolutions and of QSRC_ROWS sources built
// straight from the source by x86/qpanel_avx512.c (masked loads + AVX-512 byte zips, no gather and
// no format pass), when the ISA in use has them (P->src_panels: avx512vnni, whose CPU checks
// include AVX-512BW). Fills *ps.
static int panel48_src(const qjob *j, const em_qgemm_params *P, em_qpsrc *ps) {
    if (!P->src_panels || P->panel != EM_QP_K4 || P->nr != 48 || P->kstep != 4 ||
        (j->src_kind != QSRC_CONV && j->src_kind != QSRC_ROWS))
        return 0;
    memset(ps, 0, sizeof *ps);
    ps->kind = j->src_kind == QSRC_CONV ? EM_QPS_CONV : EM_QPS_ROWS;
    ps->src = j->src;
    ps->ldk = j->ldk;
    ps->N = j->N;
    ps->K = j->q.K;
    ps->Kpad = j->q.Kp;
    ps->H = j->H, ps->W = j->W, ps->KH = j->KH, ps->KW = j->KW, ps->stride = j->stride, ps->pad = j->pad;
    ps->OW = j->OW;
    ps->tw = j->tw;
    ps->z = (uint8_t)j->q.z_in;
    return em_qpanel48_covers(ps);
}
#endif

// Pixel blocks [pb_lo, pb_hi) x channel blocks [mb_lo, mb_hi).
static int run_range(const qjob *j, const em_qgemm_params *P, int pb_lo, int pb_hi, int mb_lo,
                     int mb_hi) {
    const int NR = P->nr, MR = P->mr, Kp = j->q.Kp, ks = P->kstep;
    const int Kpad = (Kp + ks - 1) / ks * ks; // panel rows (the ISA's k granularity)
    int cb = chunk_panels(Kpad, NR);
    if (cb > pb_hi - pb_lo) cb = pb_hi - pb_lo;
#if !defined(__aarch64__)
    // x86 ISAs with a requantising micro-kernel: the CHW uint8 outputs are written by it in the
    // last K slice (the earlier slices' tiles added in its registers), no epilogue pass over the
    // int32 tiles. (aarch64 keeps its epilogue: not compiled there.)
    const int fused = P->ukr_rq && !P->prep && j->out_kind == QOUT_CHW;
#endif
#if defined(__x86_64__)
    // (the deconvolution's and the linear layers' tiles likewise: fused_slice_x86)
    const int fused_x = fused_x86_kind(j, P);
#endif
    // K is split in slices of KC so that one panel slice (KC x NR bytes) stays in L1 while every
    // weight block of the channel group MG passes over it; the int32 tiles of the chunk x group
    // accumulate across the slices (exact), then are requantised once.
#if defined(__aarch64__)
    // aarch64: K slices as long as the panel slice stays in L1 (up to 2304 k: the 3x3 convolutions
    // of 256 channels in one slice, 18 KB of an 8-pixel panel), balanced (4608 = 2 x 2304), and
    // the channel group MG such that its weights of one slice are ~128 KB. Fewer micro-kernel
    // calls, each with a longer loop (the call's fixed cost is ~30 instructions).
    const int nslices = (Kpad + 2303) / 2304;
    const int KC = ((Kpad + nslices - 1) / nslices + 7) / 8 * 8;
    int MG = (int)((128 * 1024) / ((size_t)8 * KC));
    if (MG < 4) MG = 4;
    if (MG > 32) MG = 32;
#else
    // x86: K slices of 512; the channel group MG such that the chunk's int32 tiles (MG x cb tiles
    // of 8 x NR) stay within ~128 KB of L2 until the epilogue reads them. With MG fixed at 32 the
    // small-K layers (K 64: a chunk of 64 panels) wrote ~3 MB of tiles before reading them back.
    // K up to 640 in one slice (a 48-pixel panel of 30 KB and a weight block of 5 KB still fit
    // in L1): layer1's 3x3 convolutions (K 576) ran a second slice of 64 k, whose calls cost
    // nearly what the first slice's did besides the int32 tiles' store and reload (single-layer,
    // single-threaded: 3% faster in one slice; the sums are exact in any slicing).
    // Longer K up to 2304 (the 3x3 convolutions of 256 channels, 1x1 layers of 1024 and 2048
    // channels) in one slice too when the micro-kernel requantises it (fused, fused_x above:
    // avx512vnni): fused_slice then runs block by block over the chunk's panels, one block's
    // weights (8 x 2304 bytes, 18 KB) staying in L1 while the panels (110 KB each, in L2) stream
    // past, instead of 5 slices of 512 (4.5 for K 2304) each storing and reloading the int32
    // tiles and paying the call's fixed cost. Single-threaded harness, mask head (256 x 14 x 196
    // tiles) and a 256 x 100 x 136 map: 91-92% -> 93-94% of the peak; 2 threads, the mask head's
    // four layers on 100 RoIs: ~1.7% faster. The sums are exact in any slicing.
    int KC = Kpad <= 640 ? Kpad : 512;
#if defined(__x86_64__)
    if (Kpad <= 2304 && NR == 48 && (fused || fused_x)) KC = Kpad;
#endif
    int MG = (int)((128 * 1024) / ((size_t)cb * 8 * NR * 4));
    if (MG < 1) MG = 1;
    if (MG > 32) MG = 32;
#endif
    int kcmax = Kpad < KC ? Kpad : KC;
    size_t pbytes = (size_t)Kpad * NR, tile = (size_t)8 * NR;
    // this thread's buffers: panels + int32 tiles, gather rows, prepared weights
    const size_t np = pbytes * cb + tile * 4 * MG * cb, nt = pbytes * cb + 64,
                 nw = P->prep && !j->wprep ? P->prep_bytes_per_k * kcmax * MG : 1;
    qbufs *b = thread_qbufs(np, nt, nw);
    if (!b) return -1;
    int32_t *accs = (int32_t *)(b->panel + pbytes * cb); // [MG][cb] tiles of 8 x NR
#if defined(__x86_64__)
    em_qpsrc ps;
    const int p48 = panel48_src(j, P, &ps) && P->src_panels_setup(&ps) == 0;
    if (j->tw && !p48) return -1; // tiles: only these panels stop the taps at the tiles' edges
#endif
    for (int c0 = pb_lo; c0 < pb_hi; c0 += cb) {
        int cn = pb_hi - c0 < cb ? pb_hi - c0 : cb;
        // Panels straight from the source where its layout allows; the others gathered (the
        // whole chunk at once, long row segments, when more than one panel needs it).
        int ndirect = 0;
        uint8_t is_direct[64];
#if defined(__x86_64__)
        if (p48) {
            P->src_panels(&ps, c0 * NR, cn, b->panel, pbytes);
            ndirect = cn;
        } else
#endif
        for (int c = 0; c < cn; c++) {
#if defined(__aarch64__)
            if (j->tap_off && c + 1 < cn && c + 1 < 64 &&
                (P->panel == EM_QP_K4X ? conv_pair_k4(j, (c0 + c) * NR, b->panel + (size_t)c * pbytes,
                                                      b->panel + (size_t)(c + 1) * pbytes)
                                       : conv_pair_k8(j, (c0 + c) * NR, P->panel, b->panel + (size_t)c * pbytes,
                                                      b->panel + (size_t)(c + 1) * pbytes))) {
                is_direct[c] = is_direct[c + 1] = 1;
                ndirect += 2;
                c++;
                continue;
            }
#endif
            int d = c < 64 && direct_panel(j, P, (c0 + c) * NR, NR, P->panel, b->panel + (size_t)c * pbytes);
            if (c < 64) is_direct[c] = (uint8_t)d;
            ndirect += d;
        }
#if defined(__aarch64__)
        // aarch64: the gathered panels in runs of consecutive ones (one gather each, long row
        // segments when the run is long), formatted two panels at a time for the 8-k formats.
        for (int c = 0; c < cn && ndirect < cn;) {
            if (c < 64 && is_direct[c]) {
                c++;
                continue;
            }
            int e = c + 1;
            while (e < cn && !(e < 64 && is_direct[e])) e++;
            const int rn = e - c, k8 = P->panel == EM_QP_K8 || P->panel == EM_QP_K8X2;
            const long ld = (long)rn * NR;
            gather(j, (c0 + c) * NR, rn * NR, Kpad, b->tmp);
            int i = 0;
            if (k8 && NR == 8)
                for (; i + 2 <= rn; i += 2)
                    format_k8_pair(b->tmp + (size_t)i * NR, ld, Kpad, P->panel, b->panel + (size_t)(c + i) * pbytes,
                                   b->panel + (size_t)(c + i + 1) * pbytes);
            for (; i < rn; i++)
                format_panel(b->tmp + (size_t)i * NR, ld, Kpad, NR, P->panel, b->panel + (size_t)(c + i) * pbytes);
            c = e;
        }
#else
        if (ndirect < cn) {
            int whole = cn - ndirect > 1 || cn > 64;
            if (whole) gather(j, c0 * NR, cn * NR, Kpad, b->tmp);
            for (int c = 0; c < cn; c++) {
                if (c < 64 && is_direct[c]) continue;
                if (!whole) gather(j, (c0 + c) * NR, NR, Kpad, b->tmp);
                format_panel(whole ? b->tmp + (size_t)c * NR : b->tmp, whole ? (long)cn * NR : NR, Kpad,
                             NR, P->panel, b->panel + (size_t)c * pbytes);
            }
        }
#endif
#if !defined(__aarch64__)
        // the next chunk's lines, spread over this chunk's micro-kernel calls
        pf_plan pf;
        pf.nr = 0;
        pf.per_call = 0;
        if (c0 + cb < pb_hi) {
            const int nn0 = (c0 + cb) * NR, nn1e = (c0 + cb + (pb_hi - c0 - cb < cb ? pb_hi - c0 - cb : cb)) * NR;
            const int nn1 = nn1e < j->N ? nn1e : j->N;
            const long calls = (long)(mb_hi - mb_lo) * ((Kp + KC - 1) / KC) * cn;
            pf_setup(&pf, j, nn0, nn1, calls);
        }
#endif
        for (int g0 = mb_lo; g0 < mb_hi; g0 += MG) {
            int gn = mb_hi - g0 < MG ? mb_hi - g0 : MG;
            for (int k0 = 0; k0 < Kp; k0 += KC) {
#if !defined(__aarch64__)
                if (fused && k0 + KC >= Kp) { // the last slice: requantised in the micro-kernel
                    fused_slice(j, P, b, accs, cb, c0, cn, g0, gn, k0, k0 > 0, &pf);
                    continue;
                }
#endif
#if defined(__x86_64__)
                if (fused_x && k0 + KC >= Kp) {
                    fused_slice_x86(j, P, b->panel + (size_t)k0 * NR, pbytes, accs, cb, c0, cn, g0, gn, k0, k0 > 0, &pf);
                    continue;
                }
#endif
                int kc = Kp - k0 < KC ? Kp - k0 : KC, load = k0 > 0;
                int kcu = (kc + ks - 1) / ks * ks; // what the micro-kernel runs (padding is zero)
                if (P->prep && !j->wprep)
                    for (int g = 0; g < gn; g++)
                        P->prep(kc, j->q.w + ((size_t)(g0 + g) * Kp + k0) * 8,
                                b->prep + (size_t)g * P->prep_bytes_per_k * kcu);
                // Each block's weights at k0 and the channels of the group's last block (M may end
                // inside it) once, outside the calls (the indirect call makes the compiler reload
                // everything from the job after each one).
                const uint8_t *wps[32];
                const int cstride = j->wprep || P->prep ? P->prep_cstride : 4;
                for (int g = 0; g < gn; g++) {
                    int mb = g0 + g;
                    if (j->wprep) wps[g] = j->wprep + ((size_t)mb * Kpad + k0) * P->prep_bytes_per_k;
                    else if (P->prep) wps[g] = b->prep + (size_t)g * P->prep_bytes_per_k * kcu;
                    else wps[g] = (const uint8_t *)(j->q.w + ((size_t)mb * Kp + k0) * 8);
                }
                int last = j->q.M - (g0 + gn - 1) * 8;
                if (last > 8) last = 8;
                const em_qukr_fn ukr = P->ukr;
                const size_t gstride = (size_t)cb * tile;
                for (int c = 0; c < cn; c++) {
                    const uint8_t *pan = b->panel + (size_t)c * pbytes + (size_t)k0 * NR;
                    int32_t *t = accs + (size_t)c * tile;
                    for (int g = 0; g < gn; g++, t += gstride) {
                        const int rows = g == gn - 1 ? last : 8;
                        for (int i0 = 0; i0 < rows; i0 += MR) {
#if !defined(__aarch64__)
                            pf_step(&pf);
#endif
                            ukr(kcu, wps[g] + (size_t)i0 * cstride, pan, t + (size_t)i0 * NR, load);
                        }
                    }
                }
            }
#if !defined(__aarch64__)
            if (fused) continue;
#endif
#if defined(__x86_64__)
            if (fused_x) continue;
#endif
            for (int c = 0; c < cn; c++) {
                int n0 = (c0 + c) * NR, nv = j->N - n0 < NR ? j->N - n0 : NR;
                for (int g = 0; g < gn; g++)
                    epilogue(j, P, accs + ((size_t)g * cb + c) * tile, NR, (g0 + g) * 8, 8, n0, nv);
            }
        }
#if defined(__x86_64__)
        if (j->head) {
            // every channel of the chunk's pixels is written (the range covers all blocks: see
            // qgemm_run): the head's GEMM on them, its pixel blocks the same NR-wide ones. It may
            // grow this thread's buffers (no state of this chunk is left in them): accs again.
            if (run_range(j->head, P, c0, c0 + cn, 0, j->head->q.Mp / 8) != 0) return -1;
            b = thread_qbufs(np, nt, nw);
            if (!b) return -1;
            accs = (int32_t *)(b->panel + pbytes * cb);
        }
#endif
    }
    return 0;
}

#if defined(__x86_64__)
// Linear layers with a long K on the 4-k panel ISAs without a weight preparation (the box head's
// FC6: K 12544, 12.8 MB of weights; see use_kouter): run_range keeps whole-K panels, at most
// ~512 KB of them, which for FC6 is one 48-RoI panel, so every panel read all 12.8 MB of weights
// from memory again (a 256-RoI chunk: 6 times). Here the K slices are the outer loop: each slice
// of all the range's panels (48 x 512 bytes each) is built, then every weight block of the slice
// is read once (4 KB, from memory into L1) and runs over all the panels, the int32 tiles of the
// whole range accumulating across the slices (at most ~1 MB; the same sums as run_range), then
// the same epilogue (avx512vnni: the last slice's tiles stored by the micro-kernel instead,
// fused_slice_x86; the slices of the panels built by em_qcols_panel48_avx512). The thread's
// weights are read once per call. (use_kouter: also the avx512vnni linear layers with at least 2
// channel blocks per thread.)
static void cols_slice_k4(const qjob *j, const em_qgemm_params *P, int n0, int NR, int k0, int kc, uint8_t *dst) {
    const uint8_t z = (uint8_t)j->q.z_in;
    const uint32_t zz = z * 0x01010101u;
    const int nv = j->N - n0 < NR ? j->N - n0 : NR, ng = kc / 4;
    if (NR == 48 && P->cols_panel) { // the transposing builder
        P->cols_panel(j->src + (size_t)n0 * j->ldk + k0, j->ldk, nv, kc, z, dst);
        return;
    }
    for (int p = 0; p < NR; p++) {
        uint8_t *d = dst + (size_t)p * 4;
        if (p >= nv) {
            for (int g = 0; g < ng; g++) memcpy(d + (size_t)g * NR * 4, &zz, 4);
            continue;
        }
        const uint8_t *s = j->src + (size_t)(n0 + p) * j->ldk + k0;
        for (int g = 0; g < ng; g++) memcpy(d + (size_t)g * NR * 4, s + (size_t)g * 4, 4);
    }
}

static int use_kouter(const qjob *j, const em_qgemm_params *P) {
    if (j->src_kind != QSRC_COLS || P->panel != EM_QP_K4 || P->prep || P->kstep != 4 || j->q.Kp != j->q.K)
        return 0;
    if ((size_t)j->q.Kp * P->nr > ((size_t)256 << 10)) return 1;
    // Also every linear layer whose tiles the micro-kernel stores (fused_x86_kind 2: avx512vnni)
    // when there are at least 2 channel blocks per thread: the box head's RoI chunks are few
    // panels (288 RoIs: 6 of 48), which run_range split over the threads in units of 2 panels
    // (3 units for 2 threads: one thread did twice the other's work); the channel blocks (FC7:
    // 128) split evenly, and each thread reads only its share of the weights.
    return fused_x86_kind(j, P) == 2 && j->q.Mp / 8 >= 2 * em_num_threads();
}

static int run_range_kouter(const qjob *j, const em_qgemm_params *P, int pb_lo, int pb_hi, int mb_lo,
                            int mb_hi) {
    const int NR = P->nr, MR = P->mr, Kp = j->q.Kp, KC = 512;
    const size_t tile = (size_t)8 * NR, sbytes = (size_t)KC * NR;
    const int gn = mb_hi - mb_lo;
    int cb = (int)(((size_t)1 << 20) / ((size_t)gn * tile * 4)); // the tiles of a chunk: ~1 MB
    if (cb < 1) cb = 1;
    if (cb > pb_hi - pb_lo) cb = pb_hi - pb_lo;
    qbufs *b = thread_qbufs(sbytes * cb + tile * 4 * (size_t)gn * cb, 64, 1);
    if (!b) return -1;
    int32_t *accs = (int32_t *)(b->panel + sbytes * cb); // [gn][cb] tiles of 8 x NR
    int last = j->q.M - (mb_hi - 1) * 8;
    if (last > 8) last = 8;
    const int fused = fused_x86_kind(j, P) == 2;
    for (int c0 = pb_lo; c0 < pb_hi; c0 += cb) {
        const int cn = pb_hi - c0 < cb ? pb_hi - c0 : cb;
        for (int k0 = 0; k0 < Kp; k0 += KC) {
            const int kc = Kp - k0 < KC ? Kp - k0 : KC, load = k0 > 0;
            for (int c = 0; c < cn; c++) cols_slice_k4(j, P, (c0 + c) * NR, NR, k0, kc, b->panel + (size_t)c * sbytes);
            if (fused && k0 + KC >= Kp) { // the last slice: stored by the micro-kernel
                fused_slice_x86(j, P, b->panel, sbytes, accs, cb, c0, cn, mb_lo, gn, k0, load, NULL);
                continue;
            }
            const em_qukr_fn ukr = P->ukr;
            for (int g = 0; g < gn; g++) {
                const uint8_t *w = (const uint8_t *)(j->q.w + ((size_t)(mb_lo + g) * Kp + k0) * 8);
                const int rows = g == gn - 1 ? last : 8;
                int32_t *t = accs + (size_t)g * cb * tile;
                for (int c = 0; c < cn; c++, t += tile)
                    for (int i0 = 0; i0 < rows; i0 += MR)
                        ukr(kc, w + (size_t)i0 * 4, b->panel + (size_t)c * sbytes, t + (size_t)i0 * NR, load);
            }
        }
        if (fused) continue;
        for (int c = 0; c < cn; c++) {
            int n0 = (c0 + c) * NR, nv = j->N - n0 < NR ? j->N - n0 : NR;
            for (int g = 0; g < gn; g++)
                epilogue(j, P, accs + ((size_t)g * cb + c) * tile, NR, (mb_lo + g) * 8, 8, n0, nv);
        }
    }
    return 0;
}
#endif

static void run_task(void *vctx, int t) {
    qrun_ctx *x = (qrun_ctx *)vctx;
    const qjob *j = x->job;
    int npb = (j->N + x->P->nr - 1) / x->P->nr, nmb = j->q.Mp / 8;
    if (x->unit > 0) {
        // pixel blocks in units taken in turn: a thread that another process delays (a shared
        // machine) or that starts late leaves its units to the others instead of making every
        // thread wait for it at the end of the layer; the tiles do not depend on who runs them.
        // Guided: each unit is a share 1 / (2 * threads) of the blocks still left, at least
        // x->unit, so the units shrink towards the end and the threads finish together.
        for (;;) {
            int t0 = __atomic_load_n(&x->next, __ATOMIC_RELAXED), n;
            do {
                const int rem = x->tiles - t0;
                if (rem <= 0) return;
                n = rem / (2 * x->ntasks);
                if (n < x->unit) n = x->unit;
                if (n > rem) n = rem;
            } while (!__atomic_compare_exchange_n(&x->next, &t0, t0 + n, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
            if (run_range(j, x->P, t0, t0 + n, 0, nmb) != 0) x->failed = 1;
        }
    }
    int t0, t1;
    em_task_range(x->tiles, t, x->ntasks, &t0, &t1);
    if (t0 >= t1) return;
    int r;
#if defined(__x86_64__)
    if (x->kouter) r = run_range_kouter(j, x->P, 0, npb, t0, t1);
    else
#endif
        r = x->split_n ? run_range(j, x->P, t0, t1, 0, nmb) : run_range(j, x->P, 0, npb, t0, t1);
    if (r != 0) x->failed = 1;
}

// Padded input planes of a small padded convolution (the mask head's 14x14, the 13x17 level):
// there the im2col gather spends most of its time on the edges of row segments a dozen bytes
// long. The input is copied once per call into planes with the zero point around them, and the
// job gathers from those with pad 0 (the same bytes). Only up to 128 KiB (the mask head's
// 256x16x16, the 13x17 level), so peak memory is not affected; the buffer belongs to the calling
// thread and lives as long as it.
static __thread uint8_t *padbuf;
static __thread size_t padcap;

static int pad_planes(qjob *j) {
    const int C = j->q.K / (j->KH * j->KW), H = j->H, W = j->W, pad = j->pad;
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    size_t bytes = (size_t)C * Hp * Wp;
    if (bytes > ((size_t)128 << 10)) return 0;
    if (grow(&padbuf, &padcap, bytes) != 0) return 0;
    const uint8_t z = (uint8_t)j->q.z_in;
    for (int c = 0; c < C; c++) {
        uint8_t *d = padbuf + (size_t)c * Hp * Wp;
        const uint8_t *src = j->src + (size_t)c * H * W;
        memset(d, z, (size_t)pad * Wp);
        for (int y = 0; y < H; y++) {
            uint8_t *r = d + (size_t)(y + pad) * Wp;
            memset(r, z, pad);
            memcpy(r + pad, src + (size_t)y * W, W);
            memset(r + pad + W, z, pad);
        }
        memset(d + (size_t)(H + pad) * Wp, z, (size_t)pad * Wp);
    }
    j->src = padbuf;
    j->H = Hp;
    j->W = Wp;
    j->pad = 0;
    return 1;
}

#if defined(__aarch64__)
// The weights of aarch64 ISAs with a preparation (neon: s8 pairs duplicated for smull; neoi8mm:
// 8 k per channel), prepared once per layer call for all pixel chunks and threads, instead of
// once per pixel chunk (which repeated it ~N / 128 times: FC6 25 times). The buffer belongs to
// the calling thread and only grows (the largest layer: FC6, 1024 x 12544, 12.8 MB for neoi8mm,
// 25.7 MB for neon); layers needing more than 32 MiB keep the per-chunk preparation.
static __thread uint8_t *prepbuf;
static __thread size_t prepcap;

static void layer_prep(qjob *j, const em_qgemm_params *P) {
    const int Kp = j->q.Kp, Kpad = (Kp + P->kstep - 1) / P->kstep * P->kstep, nmb = j->q.Mp / 8;
    const size_t per_block = P->prep_bytes_per_k * (size_t)Kpad;
    const size_t bytes = per_block * (size_t)nmb;
    if (bytes > ((size_t)32 << 20) || grow(&prepbuf, &prepcap, bytes) != 0) return;
    for (int mb = 0; mb < nmb; mb++)
        P->prep(Kp, j->q.w + (size_t)mb * Kp * 8, prepbuf + (size_t)mb * per_block);
    j->wprep = prepbuf;
}
#endif

static __thread int32_t *termbuf;
static __thread size_t termcap;

// The terms a job's micro-kernels start from: the blob's, or on the ISAs that offset the
// activations to s8 (P->xor_term) term + 128 * rowsum in *buf (the calling thread's, grows only).
// NULL when out of memory.
static const int32_t *job_terms(const em_qw *q, const em_qgemm_params *P, int32_t **buf, size_t *cap) {
    if (!P->xor_term) return q->term;
    if (grow((uint8_t **)buf, cap, (size_t)q->Mp * 4) != 0) return NULL;
    for (int m = 0; m < q->Mp; m++) (*buf)[m] = q->term[m] + 128 * q->rowsum[m];
    return *buf;
}

static int qgemm_run(const qjob *j0) {
    const em_qgemm_params *P = em_qgemm_params_current();
    qjob jp = *j0;
    const qjob *j = &jp;
    jp.terms = job_terms(&jp.q, P, &termbuf, &termcap);
    if (!jp.terms) return -1;
#if defined(__x86_64__)
    em_qpsrc ps;
    // (not for the x86 48-pixel panels: their masked loads handle the padding as is, one load per
    // k row of a pad-1 3x3 convolution, where the re-padded planes would need one per output row)
    if (j0->src_kind == QSRC_CONV && j0->pad > 0 && j0->W <= 32 && !panel48_src(j0, P, &ps)) pad_planes(&jp);
#else
    if (j0->src_kind == QSRC_CONV && j0->pad > 0 && j0->W <= 32) pad_planes(&jp);
#endif
    jp.wprep = NULL;
#if defined(__x86_64__)
    jp.rq_nocl = P->ukr_rq && j0->out_kind == QOUT_CHW
                     ? em_rq_nocl(jp.terms, jp.q.M, j0->mult, jp.q.M, jp.q.Kp, j0->res, j0->z_res, j0->res_mult)
                 : P->ukr_rqdc && j0->out_kind == QOUT_DECONV // mult[m / 4]
                     ? em_rq_nocl(jp.terms, jp.q.M, j0->mult, (jp.q.M + 3) / 4, jp.q.Kp, NULL, 0, 0.0f)
                     : 0;
#endif
#if defined(__aarch64__)
    // (aarch64 only: on x86 the s16 preparation of sse41/avx2 would add FC6's 25.7 MB to the peak
    // RSS of those paths; the default avx512vnni path has no preparation)
    if (P->prep) layer_prep(&jp, P);
    jp.tap_off = NULL;
    jp.tap_kx = NULL;
    jp.tap_cross = 0;
    conv_taps(&jp, P);
#endif
    int nth = em_num_threads();
    int npb = (j->N + P->nr - 1) / P->nr, nmb = j->q.Mp / 8;
    qrun_ctx x = {j, P, 1, 1, npb, 0, 0, 0, 0};
#if defined(__x86_64__)
    if (use_kouter(j, P)) {
        // over the channel blocks: each thread reads only its share of the weights
        x.kouter = 1;
        x.split_n = 0;
        x.tiles = nmb;
        x.ntasks = nth < nmb ? nth : nmb;
        if (x.ntasks <= 1) return run_range_kouter(j, P, 0, npb, 0, nmb);
        em_parallel(x.ntasks, run_task, &x);
        return x.failed ? -1 : 0;
    }
#endif
    if (nth > 1 && (double)j->q.M * j->N * j->q.K >= 65536.0) {
        if (npb >= 2 * nth || npb >= nmb) {
            x.split_n = 1;
            x.tiles = npb;
            // units of at least 1/32 of a thread's share, and at least one cache chunk when there
            // are enough pixel blocks for 2 units per thread (run_task hands them out guided)
            const int Kpad = (j->q.Kp + P->kstep - 1) / P->kstep * P->kstep, per = npb / (32 * nth);
            const int cb = chunk_panels(Kpad, P->nr), two = (npb + 2 * nth - 1) / (2 * nth);
            const int lo = cb < two ? cb : two;
            x.unit = per > lo ? per : lo;
        } else {
            x.split_n = 0;
            x.tiles = nmb;
        }
        x.ntasks = nth < x.tiles ? nth : x.tiles;
    }
#if defined(__x86_64__)
    // a head on the output: per chunk when every range covers all channel blocks (one task, or
    // the tasks split the pixels), else after the whole GEMM
    const qjob *after = NULL;
    if (jp.head && x.ntasks > 1 && !x.split_n) {
        after = jp.head;
        jp.head = NULL;
    }
    int rc;
    if (x.ntasks <= 1) {
        rc = run_range(j, P, 0, npb, 0, nmb);
    } else {
        em_parallel(x.ntasks, run_task, &x);
        rc = x.failed ? -1 : 0;
    }
    return rc == 0 && after ? qgemm_run(after) : rc;
#else
    if (x.ntasks <= 1) return run_range(j, P, 0, npb, 0, nmb);
    em_parallel(x.ntasks, run_task, &x);
    return x.failed ? -1 : 0;
#endif
}

// ---------------------------------------------------------------- portable micro-kernel + row

void em_qukr_generic_8x8(int kp, const void *wblk, const uint8_t *panel, int32_t *acc,
                         int accumulate) {
    const int8_t *w = (const int8_t *)wblk;
    int32_t a[8][8];
    memset(a, 0, sizeof a);
    for (int g = 0; g < kp / 4; g++) {
        const int8_t *wg = w + (size_t)g * 32;
        const uint8_t *pg = panel + (size_t)g * 32;
        for (int c = 0; c < 8; c++)
            for (int p = 0; p < 8; p++)
                a[c][p] += wg[c * 4 + 0] * pg[p * 4 + 0] + wg[c * 4 + 1] * pg[p * 4 + 1] +
                           wg[c * 4 + 2] * pg[p * 4 + 2] + wg[c * 4 + 3] * pg[p * 4 + 3];
    }
    for (int c = 0; c < 8; c++)
        for (int p = 0; p < 8; p++) acc[c * 8 + p] = (accumulate ? acc[c * 8 + p] : 0) + a[c][p];
}

void em_qrow_generic(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                     const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst) {
    if (res) {
        for (int i = 0; i < n; i++) {
            float a = (float)acc[i] * mult;
            float b = (float)((int32_t)res[i] - z_res) * res_mult;
            float v = a + b;
            dst[i] = em_q_finish(v, z_out, lo);
        }
    } else {
        for (int i = 0; i < n; i++) {
            float v = (float)acc[i] * mult;
            dst[i] = em_q_finish(v, z_out, lo);
        }
    }
}

// ---------------------------------------------------------------- public entry points

size_t em_qconv2d_u8_scratch_bytes(int Cin, int H, int W, int Cout, int KH, int KW, int stride,
                                   int pad) {
    (void)Cin, (void)H, (void)W, (void)Cout, (void)KH, (void)KW, (void)stride, (void)pad;
    return 0;
}

size_t em_qdeconv2x2s2_u8_scratch_bytes(int Cin, int H, int W, int Cout) {
    (void)Cin, (void)H, (void)W, (void)Cout;
    return 0;
}

// The GEMM job of a convolution (shapes checked as documented in em_qkernels.h): 1x1 stride-1
// convolutions read the input rows directly, the others gather im2col rows. Returns -1 on bad
// arguments; the caller sets the output fields.
static int conv_job(qjob *j, const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                    const void *packed, int Cout, int KH, int KW, int stride, int pad,
                    const float *mult) {
    memset(j, 0, sizeof *j);
    if (!in || !mult || em_qw_open(packed, &j->q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || KH <= 0 || KW <= 0 || stride <= 0 || pad < 0) return -1;
    if (j->q.M != Cout || j->q.K != Cin * KH * KW || j->q.z_in != z_in) return -1;
    if (H + 2 * pad < KH || W + 2 * pad < KW) return -1;
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    j->N = OH * OW;
    j->src = in;
    if (KH == 1 && KW == 1 && stride == 1 && pad == 0) {
        j->src_kind = QSRC_ROWS;
        j->ldk = (long)H * W;
    } else {
        j->src_kind = QSRC_CONV;
        j->Cin = Cin, j->H = H, j->W = W, j->KH = KH, j->KW = KW, j->stride = stride, j->pad = pad, j->OW = OW;
    }
    j->mult = mult;
    return 0;
}

int em_qconv2d_u8(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                  int Cout, int KH, int KW, int stride, int pad, const float *mult, int32_t z_out,
                  const uint8_t *residual, int32_t z_res, float res_mult, int relu, uint8_t *out,
                  void *scratch) {
    (void)scratch;
    qjob j;
    if (!out || conv_job(&j, in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, mult) != 0)
        return -1;
    j.out_kind = QOUT_CHW;
    j.out = out;
    j.z_out = z_out;
    j.lo = relu ? z_out : 0;
    j.res = residual;
    j.z_res = z_res;
    j.res_mult = res_mult;
#if defined(__aarch64__)
    j.rq8 = rq_tile_ok(mult, Cout, z_out, j.lo, residual, z_res, res_mult);
#endif
    if (qgemm_run(&j) != 0)
        return em_qconv2d_u8_ref(in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, mult,
                                 z_out, residual, z_res, res_mult, relu, out);
    return 0;
}

// em_qconv2d_u8 on tiles (em_qkernels.h). On the ISAs whose panels are built from the source
// (em_qconv_tiles_direct: x86 avx512vnni) one GEMM whose panel masks stop the taps at the tiles'
// edges (the separator columns are neither stored nor computed); elsewhere tile by tile through
// copies (the same bytes; the callers lay their batches out with separator columns there).
int em_qconv_tiles_direct(int Cin, int H, int W, int KH, int KW, int stride, int pad, int tw) {
#if defined(__x86_64__)
    const em_qgemm_params *P = em_qgemm_params_current();
    qjob j;
    memset(&j, 0, sizeof j);
    j.q.K = Cin * KH * KW;
    j.q.Kp = (j.q.K + 3) / 4 * 4;
    j.N = H * W;
    j.src_kind = QSRC_CONV;
    j.H = H, j.W = W, j.KH = KH, j.KW = KW, j.stride = stride, j.pad = pad, j.tw = tw;
    j.OW = (W + 2 * pad - KW) / stride + 1;
    em_qpsrc ps;
    return tw > 0 && W % tw == 0 && j.OW == W && stride == 1 && panel48_src(&j, P, &ps);
#else
    (void)Cin, (void)H, (void)W, (void)KH, (void)KW, (void)stride, (void)pad, (void)tw;
    return 0;
#endif
}

int em_qconv2d_u8_tiles(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                        int Cout, int KH, int KW, int stride, int pad, int tw, const float *mult,
                        int32_t z_out, int relu, uint8_t *out) {
    if (!in || !out || tw <= 0 || W % tw != 0 || stride != 1 || (W + 2 * pad - KW) / stride + 1 != W) return -1;
    if (tw == W)
        return em_qconv2d_u8(in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, mult, z_out, NULL, 0, 0.0f,
                             relu, out, NULL);
#if defined(__x86_64__)
    if (em_qconv_tiles_direct(Cin, H, W, KH, KW, stride, pad, tw)) {
        qjob j;
        if (conv_job(&j, in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, mult) != 0) return -1;
        j.tw = tw;
        j.out_kind = QOUT_CHW;
        j.out = out;
        j.z_out = z_out;
        j.lo = relu ? z_out : 0;
        if (qgemm_run(&j) == 0) return 0;
    }
#endif
    const int OH = (H + 2 * pad - KH) / stride + 1, nt = W / tw;
    uint8_t *ti = (uint8_t *)malloc((size_t)Cin * H * tw), *to = (uint8_t *)malloc((size_t)Cout * OH * tw);
    int rc = ti && to ? 0 : -1;
    for (int t = 0; t < nt && rc == 0; t++) {
        for (int r = 0; r < Cin * H; r++) memcpy(ti + (size_t)r * tw, in + (size_t)r * W + (size_t)t * tw, tw);
        rc = em_qconv2d_u8(ti, Cin, H, tw, z_in, packed, Cout, KH, KW, stride, pad, mult, z_out, NULL, 0, 0.0f,
                           relu, to, NULL);
        for (int r = 0; r < Cout * OH && rc == 0; r++)
            memcpy(out + (size_t)r * W + (size_t)t * tw, to + (size_t)r * tw, tw);
    }
    free(ti);
    free(to);
    return rc;
}

int em_qconv2d_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                      int Cout, int KH, int KW, int stride, int pad, const float *deq, float *out) {
    qjob j;
    if (!out || conv_job(&j, in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, deq) != 0)
        return -1;
    j.out_kind = QOUT_CHW_F32;
    j.outf = out;
    if (qgemm_run(&j) != 0)
        return em_qconv2d_u8_f32_ref(in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, deq,
                                     out);
    return 0;
}

#if defined(__x86_64__)
static __thread int32_t *headterms;
static __thread size_t headtermcap;
#endif

int em_qconv2d_u8_head_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed, int Cout,
                           int KH, int KW, int stride, int pad, const float *mult, int32_t z_out, int relu,
                           uint8_t *out, const void *head_packed, int head_M, const float *head_deq,
                           float *head_out) {
    qjob j;
    if (!out || !head_out || !head_deq || conv_job(&j, in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, mult) != 0)
        return -1;
    em_qw hq;
    if (em_qw_open(head_packed, &hq) != 0 || hq.M != head_M || hq.K != Cout || hq.z_in != z_out) return -1;
#if defined(__x86_64__)
    // the head: a 1x1 float-output job on the output rows, with its terms as qgemm_run makes them
    const em_qgemm_params *P = em_qgemm_params_current();
    qjob h;
    memset(&h, 0, sizeof h);
    h.q = hq;
    h.N = j.N;
    h.src_kind = QSRC_ROWS;
    h.src = out;
    h.ldk = j.N;
    h.out_kind = QOUT_CHW_F32;
    h.outf = head_out;
    h.mult = head_deq;
    h.terms = job_terms(&hq, P, &headterms, &headtermcap);
    if (!h.terms) goto separate;
    j.out_kind = QOUT_CHW;
    j.out = out;
    j.z_out = z_out;
    j.lo = relu ? z_out : 0;
    j.head = &h;
    if (qgemm_run(&j) == 0) return 0;
separate:
#endif
    // (elsewhere, or when the joint run failed: the two layers one after the other, the same bytes)
    if (em_qconv2d_u8(in, Cin, H, W, z_in, packed, Cout, KH, KW, stride, pad, mult, z_out, NULL, 0, 0.0f, relu,
                      out, NULL) != 0)
        return -1;
    const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    return em_qconv2d_u8_f32(out, Cout, OH, OW, z_out, head_packed, head_M, 1, 1, 1, 0, head_deq, head_out);
}

// The window [Cin][wh * ww] of em_qconv1x1_block_u8_f32, per calling thread (grows only).
static __thread uint8_t *winbuf;
static __thread size_t wincap;

#if defined(__x86_64__)
// x86 avx512vnni: the block of em_qconv1x1_block_u8_f32 without the whole-GEMM setup per RoI (the
// mask logits: 0.02 GMAC took ~6 ms for 100 RoIs at 2 threads). 16 channels of the window at a
// time are copied (each row, 28 bytes at a pitch of the side-by-side map's width, by two
// overlapping 16-byte moves, not a memcpy call) into a 12.5 KB buffer that stays in L1, and their
// rows of all the window's 48-pixel panels are built from it right away (x86/qpanel_avx512.c, rows
// source); then per panel one 8-row micro-kernel call per K slice and the float epilogue (int32
// sum + term, times deq[m]: the same floats as every other path). Single-threaded
// (em_qconv1x1_blocks_u8_f32 spreads the windows over the threads). Single-threaded harness, 16
// windows 28 x 28 of a 256 x 28 x 478 map: ~47 -> ~30 us per window (the whole-window copy then
// all panels: ~34; the panels straight from the map with the masked-load convolution source, no
// copy: ~55). Returns 0, or -1 (another ISA, a window narrower than 16, or no buffer: the
// caller's path).
static int block_window48(const qjob *j0, const uint8_t *in, int Cin, int H, int W, int block, int rows, int y0,
                          int x0, int wh, int ww, const float *deq, float *out) {
    const em_qgemm_params *P = em_qgemm_params_current();
    if (P->xor_term || P->prep || P->mr != 8 || ww < 16) return -1;
    qjob b = *j0;
    b.q.w += (size_t)block * j0->q.Kp * 8;
    b.q.term += 8 * block;
    b.q.rowsum += 8 * block;
    b.q.M = rows;
    b.q.Mp = 8;
    b.terms = b.q.term;
    b.N = wh * ww;
    b.src_kind = QSRC_ROWS;
    b.ldk = b.N;
    b.mult = deq + 8 * block;
    b.out_kind = QOUT_CHW_F32;
    b.outf = out;
    em_qpsrc ps;
    const int NR = P->nr, Kp = b.q.Kp, KC = 512, npb = (b.N + NR - 1) / NR, KB = 16;
    const size_t pbytes = (size_t)Kp * NR, tile = (size_t)8 * NR;
    qbufs *bf = thread_qbufs(pbytes * npb + tile * 4, 64, 1);
    if (!bf || !panel48_src(&b, P, &ps) || grow(&winbuf, &wincap, (size_t)KB * b.N) != 0) return -1;
    int32_t *acc = (int32_t *)(bf->panel + pbytes * npb);
    // KB channels of the window at a time (in L1), their panel rows built right after
    ps.src = winbuf;
    for (int k0 = 0; k0 < Kp; k0 += KB) {
        const int kn = Cin - k0 < KB ? Cin - k0 : KB;
        uint8_t *d = winbuf;
        for (int c = k0; c < k0 + kn; c++) {
            const uint8_t *r = in + ((size_t)c * H + y0) * W + x0;
            for (int y = 0; y < wh; y++, r += W, d += ww) {
                const __m128i lo = _mm_loadu_si128((const __m128i *)r), hi = _mm_loadu_si128((const __m128i *)(r + ww - 16));
                _mm_storeu_si128((__m128i *)d, lo);
                _mm_storeu_si128((__m128i *)(d + ww - 16), hi);
            }
        }
        ps.K = kn;
        ps.Kpad = Kp - k0 < KB ? Kp - k0 : KB;
        P->src_panels(&ps, 0, npb, bf->panel + (size_t)k0 * NR, pbytes);
    }
    const em_qukr_fn ukr = P->ukr;
    for (int c = 0; c < npb; c++) {
        const uint8_t *pan = bf->panel + (size_t)c * pbytes;
        for (int k0 = 0; k0 < Kp; k0 += KC)
            ukr(Kp - k0 < KC ? Kp - k0 : KC, b.q.w + (size_t)k0 * 8, pan + (size_t)k0 * NR, acc, k0 > 0);
        const int n0 = c * NR;
        epilogue_general(&b, P, acc, NR, 0, 8, n0, b.N - n0 < NR ? b.N - n0 : NR);
    }
    return 0;
}
#endif

int em_qconv1x1_block_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                             const void *packed, int M, int block, int y0, int x0, int wh, int ww,
                             const float *deq, float *out) {
    qjob j;
    memset(&j, 0, sizeof j);
    if (!in || !out || !deq || em_qw_open(packed, &j.q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || j.q.M != M || j.q.K != Cin || j.q.z_in != z_in) return -1;
    if (block < 0 || block >= (M + 7) / 8 || wh <= 0 || ww <= 0 || y0 < 0 || x0 < 0 || y0 > H - wh ||
        x0 > W - ww)
        return -1;
    const int rows = M - 8 * block < 8 ? M - 8 * block : 8;
    const size_t n = (size_t)wh * ww;
#if defined(__x86_64__)
    if (block_window48(&j, in, Cin, H, W, block, rows, y0, x0, wh, ww, deq, out) == 0) return 0;
#endif
    if (grow(&winbuf, &wincap, (size_t)Cin * n) == 0) {
        for (int c = 0; c < Cin; c++)
            for (int y = 0; y < wh; y++)
                memcpy(winbuf + (size_t)c * n + (size_t)y * ww, in + ((size_t)c * H + y0 + y) * W + x0, ww);
        // the block as a matrix of its own: its weights, terms, row sums and multipliers
        qjob b = j;
        b.q.w += (size_t)block * j.q.Kp * 8;
        b.q.term += 8 * block;
        b.q.rowsum += 8 * block;
        b.q.M = rows;
        b.q.Mp = 8;
        b.N = (int)n;
        b.src_kind = QSRC_ROWS;
        b.src = winbuf;
        b.ldk = (long)n;
        b.mult = deq + 8 * block;
        b.out_kind = QOUT_CHW_F32;
        b.outf = out;
        if (qgemm_run(&b) == 0) return 0;
    }
    {
        // (no buffer: the reference formula on the window, em_qconv2d_u8_f32_ref's)
        for (int c = 0; c < rows; c++) {
            const int m = 8 * block + c;
            for (int y = 0; y < wh; y++)
                for (int x = 0; x < ww; x++) {
                    uint32_t acc = (uint32_t)j.q.term[m]; // int32 sums wrap, as the kernels'
                    for (int k = 0; k < Cin; k++)
                        acc += (uint32_t)(em_qw_at(&j.q, m, k) * (int32_t)in[((size_t)k * H + y0 + y) * W + x0 + x]);
                    out[(size_t)c * n + (size_t)y * ww + x] = (float)(int32_t)acc * deq[m];
                }
        }
        return 0;
    }
}

typedef struct {
    const uint8_t *in;
    int Cin, H, W, M, count, y0, wh, ww;
    int32_t z_in;
    const void *packed;
    const int32_t *blocks, *x0s;
    const float *deq;
    float *out;
    volatile int failed;
    int next;
} blocks_ctx;

static void blocks_task(void *v, int t) {
    blocks_ctx *x = (blocks_ctx *)v;
#if defined(__x86_64__)
    // x86: windows taken in turn (a thread delayed by another process leaves its windows to the
    // others; each window's floats do not depend on who computes them)
    (void)t;
    for (;;) {
        const int i = __atomic_fetch_add(&x->next, 1, __ATOMIC_RELAXED);
        if (i >= x->count) return;
#else
    int lo, hi;
    em_task_range(x->count, t, em_num_threads(), &lo, &hi);
    for (int i = lo; i < hi; i++) {
#endif
        if (em_qconv1x1_block_u8_f32(x->in, x->Cin, x->H, x->W, x->z_in, x->packed, x->M, x->blocks[i], x->y0,
                                     x->x0s[i], x->wh, x->ww, x->deq,
                                     x->out + (size_t)i * 8 * x->wh * x->ww) != 0)
            x->failed = 1;
    }
}

int em_qconv1x1_blocks_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                              const void *packed, int M, int count, const int32_t *blocks,
                              const int32_t *x0s, int y0, int wh, int ww, const float *deq,
                              float *out) {
    if (count <= 0 || !blocks || !x0s) return -1;
    blocks_ctx x = {in, Cin, H, W, M, count, y0, wh, ww, z_in, packed, blocks, x0s, deq, out, 0, 0};
    em_run_tasks(em_num_threads(), blocks_task, &x);
    return x.failed ? -1 : 0;
}

#if defined(__x86_64__)
// em_qconv1x1_rows_u8_f32's tables (the calling thread's, grow only) and the B tables of the units
// (each thread's own).
static __thread uint8_t *q1tab, *q1scr;
static __thread size_t q1tabcap, q1scrcap;

typedef struct {
    const em_q1rows *job;
    em_q1rows_fn fn;
    int x0, ystep, nyb, cstep, ncb, chunks, units;
    int next;
    volatile int failed;
} q1rows_ctx;

static void q1rows_task(void *v, int t) {
    q1rows_ctx *x = (q1rows_ctx *)v;
    (void)t;
    if (grow(&q1scr, &q1scrcap, em_q1rows_scratch_bytes()) != 0) {
        x->failed = 1;
        return;
    }
    // units taken in turn: (block of window rows, group of 64-column chunks)
    for (;;) {
        const int u = __atomic_fetch_add(&x->next, 1, __ATOMIC_RELAXED);
        if (u >= x->units) return;
        const int b = u / x->ncb, cg = u - b * x->ncb, ya = b * x->ystep, c = cg * x->cstep;
        const int yb = ya + x->ystep < x->job->wh ? ya + x->ystep : x->job->wh;
        const int nch = x->chunks - c < x->cstep ? x->chunks - c : x->cstep;
        if (x->fn(x->job, x->x0 + 64 * c, nch, ya, yb, q1scr) != 0) x->failed = 1;
    }
}
#endif

int em_qconv1x1_rows_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                            int M, int count, const int32_t *rows, const int32_t *x0s, int y0, int wh,
                            int ww, const float *deq, float *out) {
    em_qw q;
    if (!in || !out || !deq || !rows || !x0s || count <= 0 || em_qw_open(packed, &q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || q.M != M || q.K != Cin || q.z_in != z_in) return -1;
    if (wh <= 0 || ww <= 0 || y0 < 0 || y0 > H - wh) return -1;
    for (int r = 0; r < count; r++)
        if (rows[r] < 0 || rows[r] >= M || x0s[r] < 0 || x0s[r] > W - ww) return -1;
#if defined(__x86_64__)
    const em_qgemm_params *P = em_qgemm_params_current();
    if (!P->rows1 || P->xor_term || ww < 8) return 1;
    for (int r = 1; r < count; r++)
        if (x0s[r] < x0s[r - 1] + ww) return 1; // not sorted and disjoint
    // window r's weight dwords per group, terms and multipliers (16 entries of slack, zero)
    const int G = (Cin + 3) / 4, ldw = count + 16;
    const size_t wbytes = (size_t)G * ldw * 4;
    if (grow(&q1tab, &q1tabcap, wbytes + (size_t)ldw * 8) != 0) return 1; // (no memory: not done)
    int32_t *wt = (int32_t *)(void *)q1tab, *terms = (int32_t *)(void *)(q1tab + wbytes);
    float *deqs = (float *)(void *)(q1tab + wbytes + (size_t)ldw * 4);
    memset(q1tab, 0, wbytes + (size_t)ldw * 8);
    for (int r = 0; r < count; r++) {
        const int m = rows[r];
        const int8_t *blk = q.w + (size_t)(m >> 3) * q.Kp * 8 + (m & 7) * 4;
        for (int g = 0; g < G; g++) wt[(size_t)g * ldw + r] = em_ld32(blk + (size_t)g * 32);
        terms[r] = q.term[m];
        deqs[r] = deq[m];
    }
    em_q1rows j = {in, Cin, H, W, wt, ldw, terms, deqs, x0s, count, y0, wh, ww, out};
    // units of R window rows (4..8) x up to 8 chunks of 64 columns; R such that the threads'
    // shares (units taken in turn) end together: least rows per thread, then the larger R (28
    // rows at 2 threads: 4 units of 7)
    const int span = x0s[count - 1] + ww - x0s[0], chunks = (span + 63) / 64, ncb = (chunks + 7) / 8;
    const int nth = em_num_threads();
    int R = 8, best = 0;
    for (int r = 8; r >= 4; r--) {
        const int units = (wh + r - 1) / r * ncb, cost = (units + nth - 1) / nth * r;
        if (r == 8 || cost < best) R = r, best = cost;
    }
    q1rows_ctx x = {&j, P->rows1, x0s[0], R, (wh + R - 1) / R, 8, ncb, chunks, 0, 0, 0};
    x.units = x.nyb * x.ncb;
    em_parallel(nth < x.units ? nth : x.units, q1rows_task, &x);
    return x.failed ? 1 : 0;
#else
    return 1;
#endif
}

int em_qdeconv2x2s2_u8(const uint8_t *in, int Cin, int H, int W, int32_t z_in, const void *packed,
                       int Cout, const float *mult, int32_t z_out, int relu, uint8_t *out,
                       void *scratch) {
    (void)scratch;
    qjob j;
    memset(&j, 0, sizeof j);
    if (!in || !out || !mult || em_qw_open(packed, &j.q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || j.q.M != 4 * Cout || j.q.K != Cin || j.q.z_in != z_in)
        return -1;
    j.N = H * W;
    j.src_kind = QSRC_ROWS;
    j.src = in;
    j.ldk = (long)H * W;
    j.out_kind = QOUT_DECONV;
    j.out = out;
    j.mult = mult;
    j.z_out = z_out;
    j.lo = relu ? z_out : 0;
    j.dH = H;
    j.dW = W;
#if defined(__aarch64__)
    j.rq8 = rq_tile_ok(mult, Cout, z_out, j.lo, NULL, 0, 0.0f);
#endif
    if (qgemm_run(&j) != 0)
        return em_qdeconv2x2s2_u8_ref(in, Cin, H, W, z_in, packed, Cout, mult, z_out, relu, out);
    return 0;
}

size_t em_qdeconv4x4s2p1_u8_f32_scratch_bytes(int Cin, int H, int W, int Cout) {
    (void)Cin;
    if (H <= 0 || W <= 0 || Cout <= 0) return 0;
    return (size_t)(16 + 4) * Cout * H * W * sizeof(int32_t);
}

int em_qdeconv4x4s2p1_u8_f32(const uint8_t *in, int Cin, int H, int W, int32_t z_in,
                             const void *packed, int Cout, const float *deq, float *out,
                             void *scratch) {
    qjob j;
    memset(&j, 0, sizeof j);
    if (!in || !out || !deq || em_qw_open(packed, &j.q) != 0) return -1;
    if (Cin <= 0 || H <= 0 || W <= 0 || Cout <= 0 || j.q.M != 16 * Cout || j.q.K != Cin || j.q.z_in != z_in)
        return -1;
    if (!scratch) return em_qdeconv4x4s2p1_u8_f32_ref(in, Cin, H, W, z_in, packed, Cout, deq, out);
    // cols[m, iy * W + ix] (m = co * 16 + ky * 4 + kx): one int8 GEMM over the input pixels.
    int32_t *cols = (int32_t *)scratch, *acc = cols + (size_t)16 * Cout * H * W;
    j.N = H * W;
    j.src_kind = QSRC_ROWS;
    j.src = in;
    j.ldk = (long)H * W;
    j.out_kind = QOUT_CHW_I32;
    j.outi = cols;
    j.mult = deq;
    if (qgemm_run(&j) != 0)
        return em_qdeconv4x4s2p1_u8_f32_ref(in, Cin, H, W, z_in, packed, Cout, deq, out);
    // col2im in int32 (exact, so the order does not matter), then one multiply per output.
    int OH = 2 * H, OW = 2 * W;
    for (int co = 0; co < Cout; co++) {
        int32_t *a = acc + (size_t)co * OH * OW;
        memset(a, 0, (size_t)OH * OW * sizeof(int32_t));
        for (int ky = 0; ky < 4; ky++)
            for (int kx = 0; kx < 4; kx++) {
                const int32_t *c = cols + ((size_t)co * 16 + ky * 4 + kx) * H * W;
                int y0 = ky == 0 ? 1 : 0, y1 = ky == 3 ? H - 1 : H; // oy = 2 iy - 1 + ky in [0, OH)
                int x0 = kx == 0 ? 1 : 0, x1 = kx == 3 ? W - 1 : W;
                for (int iy = y0; iy < y1; iy++) {
                    int32_t *o = a + (size_t)(2 * iy - 1 + ky) * OW;
                    const int32_t *cr = c + (size_t)iy * W;
                    for (int ix = x0; ix < x1; ix++) o[2 * ix - 1 + kx] += cr[ix];
                }
            }
        float d = deq[co];
        float *of = out + (size_t)co * OH * OW;
        for (int p = 0; p < OH * OW; p++) of[p] = (float)a[p] * d;
    }
    return 0;
}

static int linear_job(qjob *j, const uint8_t *in, int N, int K, int32_t z_in, const void *packed,
                      int M, const float *mult, const void *out) {
    memset(j, 0, sizeof *j);
    if (!in || !out || !mult || N <= 0 || em_qw_open(packed, &j->q) != 0) return -1;
    if (j->q.M != M || j->q.K != K || j->q.z_in != z_in) return -1;
    j->N = N;
    j->src_kind = QSRC_COLS;
    j->src = in;
    j->ldk = K;
    j->mult = mult;
    return 0;
}

int em_qlinear_u8(const uint8_t *in, int N, int K, int32_t z_in, const void *packed, int M,
                  const float *mult, int32_t z_out, int relu, uint8_t *out) {
    qjob j;
    if (linear_job(&j, in, N, K, z_in, packed, M, mult, out) != 0) return -1;
    j.out_kind = QOUT_NM_U8;
    j.out = out;
    j.z_out = z_out;
    j.lo = relu ? z_out : 0;
#if defined(__aarch64__)
    j.rq8 = rq_tile_ok(mult, M, z_out, j.lo, NULL, 0, 0.0f);
#endif
    if (qgemm_run(&j) != 0)
        return em_qlinear_u8_ref(in, N, K, z_in, packed, M, mult, z_out, relu, out);
    return 0;
}

int em_qlinear_u8_f32(const uint8_t *in, int N, int K, int32_t z_in, const void *packed, int M,
                      const float *deq, float *out) {
    qjob j;
    if (linear_job(&j, in, N, K, z_in, packed, M, deq, out) != 0) return -1;
    j.out_kind = QOUT_NM_F32;
    j.outf = out;
    if (qgemm_run(&j) != 0) return em_qlinear_u8_f32_ref(in, N, K, z_in, packed, M, deq, out);
    return 0;
}

// ---------------------------------------------------------------- element-wise

void em_qadd_row_generic(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b,
                         int32_t z_b, float b_mult, int n, int32_t z_out, int32_t lo, uint8_t *out) {
    for (int i = 0; i < n; i++) {
        float pa = (float)((int32_t)a[i] - z_a) * a_mult;
        float pb = (float)((int32_t)b[i] - z_b) * b_mult;
        float v = pa + pb;
        out[i] = em_q_finish(v, z_out, lo);
    }
}

void em_qquant_row_generic(const float *x, int n, float inv_scale, int32_t z, uint8_t *out) {
    for (int i = 0; i < n; i++) {
        float v = x[i] * inv_scale;
        out[i] = em_q_finish(v, z, 0);
    }
}

#define EM_QROW_CHUNK 4096

// The element-wise maps below run on the thread pool (em_parallel_for) when they are large
// enough: each element goes through the same row function whatever the split (the rows are
// bit-identical to the reference at any length), so the bytes do not depend on the threads.
// Splits fall on whole EM_QROW_CHUNKs, channels or rows. Grain: ~32 K elements per task.
#define EM_EW_GRAIN (32 * 1024)

typedef struct {
    const uint8_t *a, *b;
    int32_t z_a, z_b, z_out, lo;
    float a_mult, b_mult;
    size_t n;
    uint8_t *out;
    const em_qgemm_params *P;
} qadd_ctx;

static void qadd_chunks(void *v, long c0, long c1) {
    const qadd_ctx *x = (const qadd_ctx *)v;
    for (size_t i = (size_t)c0 * EM_QROW_CHUNK; i < x->n && i < (size_t)c1 * EM_QROW_CHUNK; i += EM_QROW_CHUNK) {
        int c = x->n - i < EM_QROW_CHUNK ? (int)(x->n - i) : EM_QROW_CHUNK;
        x->P->add_row(x->a + i, x->z_a, x->a_mult, x->b + i, x->z_b, x->b_mult, c, x->z_out, x->lo, x->out + i);
    }
}

void em_qadd_u8(const uint8_t *a, int32_t z_a, float a_mult, const uint8_t *b, int32_t z_b,
                float b_mult, size_t n, int32_t z_out, int relu, uint8_t *out) {
    if (!a || !b || !out) return;
    qadd_ctx x = {a, b, z_a, z_b, z_out, relu ? z_out : 0, a_mult, b_mult, n, out, em_qgemm_params_current()};
    em_parallel_for((long)((n + EM_QROW_CHUNK - 1) / EM_QROW_CHUNK), EM_EW_GRAIN / EM_QROW_CHUNK, qadd_chunks, &x);
}

typedef struct {
    const uint8_t *lat, *top;
    int32_t z_lat, z_top, z_out;
    float lat_mult, top_mult;
    int TH, TW, H, W, twice;
    const int *sxs;
    uint8_t *out;
    const em_qgemm_params *P;
} qaddup_ctx;

static void qaddup_channels(void *v, long c0, long c1) {
    const qaddup_ctx *j = (const qaddup_ctx *)v;
    const int TH = j->TH, TW = j->TW, H = j->H, W = j->W;
    uint8_t tb[1024];
    for (long c = c0; c < c1; c++)
        for (int y = 0; y < H; y++) {
            int sy = (int)floorf(y * (float)TH / (float)H);
            if (sy > TH - 1) sy = TH - 1;
            const uint8_t *trow = j->top + ((size_t)c * TH + sy) * TW;
            size_t o = ((size_t)c * H + y) * W;
#if defined(__x86_64__)
            if (j->twice && j->P->add_up2_row) { // the duplication in registers
                j->P->add_up2_row(j->lat + o, j->z_lat, j->lat_mult, trow, j->z_top, j->top_mult, W, j->z_out, 0,
                                  j->out + o);
                continue;
            }
#endif
            int x = 0;
#if defined(__aarch64__)
            if (j->twice) // tb[2 i] = tb[2 i + 1] = trow[i]
                for (; x + 16 <= W; x += 16) {
                    uint8x8_t v8 = vld1_u8(trow + x / 2);
                    vst1q_u8(tb + x, vcombine_u8(vzip1_u8(v8, v8), vzip2_u8(v8, v8)));
                }
#endif
            for (; x < W; x++) tb[x] = trow[j->sxs[x]];
            j->P->add_row(j->lat + o, j->z_lat, j->lat_mult, tb, j->z_top, j->top_mult, W, j->z_out, 0, j->out + o);
        }
}

void em_qadd_upsample_nearest_u8(const uint8_t *lat, int32_t z_lat, float lat_mult,
                                 const uint8_t *top, int32_t z_top, float top_mult, int C, int TH,
                                 int TW, int H, int W, int32_t z_out, uint8_t *out) {
    if (!lat || !top || !out || C <= 0 || TH <= 0 || TW <= 0 || H <= 0 || W <= 0) return;
    int sxs[1024];
    if (W > 1024) {
        em_qadd_upsample_nearest_u8_ref(lat, z_lat, lat_mult, top, z_top, top_mult, C, TH, TW, H, W,
                                        z_out, out);
        return;
    }
    int twice = 1; // sxs[x] == x / 2 for every x: the row gather is a byte zip (aarch64) or done in
                   // registers by add_up2_row (x86)
    for (int x = 0; x < W; x++) {
        int sx = (int)floorf(x * (float)TW / (float)W);
        sxs[x] = sx > TW - 1 ? TW - 1 : sx;
        twice &= sxs[x] == x / 2;
    }
    qaddup_ctx x = {lat, top, z_lat, z_top, z_out, lat_mult, top_mult, TH, TW, H, W, twice, sxs, out,
                    em_qgemm_params_current()};
    long hw = (long)H * W;
    em_parallel_for(C, hw >= EM_EW_GRAIN ? 1 : EM_EW_GRAIN / hw, qaddup_channels, &x);
}

typedef struct {
    const float *x;
    size_t n;
    float inv;
    int32_t z;
    uint8_t *out;
    const em_qgemm_params *P;
} quant_ctx;

static void quant_chunks(void *v, long c0, long c1) {
    const quant_ctx *x = (const quant_ctx *)v;
    for (size_t i = (size_t)c0 * EM_QROW_CHUNK; i < x->n && i < (size_t)c1 * EM_QROW_CHUNK; i += EM_QROW_CHUNK) {
        int c = x->n - i < EM_QROW_CHUNK ? (int)(x->n - i) : EM_QROW_CHUNK;
        x->P->quant_row(x->x + i, c, x->inv, x->z, x->out + i);
    }
}

void em_quantize_f32_u8(const float *x, size_t n, float scale, int32_t z, uint8_t *out) {
    if (!x || !out) return;
    quant_ctx q = {x, n, 1.0f / scale, z, out, em_qgemm_params_current()};
    em_parallel_for((long)((n + EM_QROW_CHUNK - 1) / EM_QROW_CHUNK), EM_EW_GRAIN / EM_QROW_CHUNK, quant_chunks, &q);
}

void em_qdequant_row_generic(const uint8_t *q, int n, float scale, int32_t z, float *out) {
    for (int i = 0; i < n; i++) out[i] = (float)((int32_t)q[i] - z) * scale;
}

void em_dequantize_u8_f32(const uint8_t *q, size_t n, float scale, int32_t z, float *out) {
    if (!q || !out) return;
    const em_qgemm_params *P = em_qgemm_params_current();
    for (size_t i = 0; i < n; i += EM_QROW_CHUNK) {
        int c = n - i < EM_QROW_CHUNK ? (int)(n - i) : EM_QROW_CHUNK;
        P->dequant_row(q + i, c, scale, z, out + i);
    }
}

// Separable: the column max over the window's valid rows (contiguous, vectorised by the
// compiler) into a zero-padded row b (b[pad + x] = column x; the padding and the tail stay 0,
// which is what the window's out-of-range taps contribute to a max of bytes), then the row max
// over each window of b. Max is exact in any order. The ResNet stem's 3x3 stride-2 window on
// aarch64: 16 outputs from two ld2 (even and odd bytes at 2 ox and 2 ox + 2) and two umax.
// Channels are split over the thread pool.
enum { MAXPOOL_BMAX = 4096 + 128 };

typedef struct {
    const uint8_t *in;
    int H, W, k, stride, pad, OH, OW;
    uint8_t *out;
} maxpool_ctx;

static void maxpool_channels(void *v, long c0, long c1) {
    const maxpool_ctx *j = (const maxpool_ctx *)v;
    const int H = j->H, W = j->W, k = j->k, stride = j->stride, pad = j->pad, OH = j->OH, OW = j->OW;
    uint8_t b[MAXPOOL_BMAX];
    memset(b, 0, sizeof b);
    uint8_t *vm = b + pad;
    for (long c = c0; c < c1; c++) {
        const uint8_t *plane = j->in + (size_t)c * H * W;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = oy * stride - pad, y1 = y0 + k;
            if (y0 < 0) y0 = 0;
            if (y1 > H) y1 = H;
            if (y0 >= y1) {
                memset(vm, 0, W);
            } else {
                memcpy(vm, plane + (size_t)y0 * W, W);
                for (int y = y0 + 1; y < y1; y++) {
                    const uint8_t *r = plane + (size_t)y * W;
                    for (int x = 0; x < W; x++) vm[x] = r[x] > vm[x] ? r[x] : vm[x];
                }
            }
            uint8_t *o = j->out + ((size_t)c * OH + oy) * OW;
            int ox = 0;
#if defined(__aarch64__)
            if (k == 3 && stride == 2) // reads b[2 ox .. 2 ox + 33], within blen + 64
                for (; ox + 16 <= OW; ox += 16) {
                    uint8x16x2_t e0 = vld2q_u8(b + 2 * ox), e1 = vld2q_u8(b + 2 * ox + 2);
                    vst1q_u8(o + ox, vmaxq_u8(vmaxq_u8(e0.val[0], e0.val[1]), e1.val[0]));
                }
#elif defined(__x86_64__)
            if (k == 3 && stride == 2) { // SSE2 (baseline): the same reads as the NEON loop above
                const __m128i lo8 = _mm_set1_epi16(0x00FF);
                for (; ox + 16 <= OW; ox += 16) {
                    const uint8_t *w = b + 2 * ox;
                    const __m128i a0 = _mm_loadu_si128((const __m128i *)w), a1 = _mm_loadu_si128((const __m128i *)(w + 16));
                    const __m128i c0 = _mm_loadu_si128((const __m128i *)(w + 2)), c1 = _mm_loadu_si128((const __m128i *)(w + 18));
                    const __m128i ev = _mm_packus_epi16(_mm_and_si128(a0, lo8), _mm_and_si128(a1, lo8)); // b[2 x]
                    const __m128i od = _mm_packus_epi16(_mm_srli_epi16(a0, 8), _mm_srli_epi16(a1, 8));    // b[2 x + 1]
                    const __m128i e2 = _mm_packus_epi16(_mm_and_si128(c0, lo8), _mm_and_si128(c1, lo8)); // b[2 x + 2]
                    _mm_storeu_si128((__m128i *)(o + ox), _mm_max_epu8(_mm_max_epu8(ev, od), e2));
                }
            }
#endif
            for (; ox < OW; ox++) {
                const uint8_t *w = b + ox * stride;
                uint8_t m = 0;
                for (int x = 0; x < k; x++) m = w[x] > m ? w[x] : m;
                o[ox] = m;
            }
        }
    }
}

void em_qmaxpool2d_u8(const uint8_t *in, int C, int H, int W, int k, int stride, int pad,
                      uint8_t *out) {
    if (!in || !out || C <= 0 || H <= 0 || W <= 0 || k <= 0 || stride <= 0 || pad < 0) return;
    const int OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    const int blen = (OW - 1) * stride + k; // the last window ends at b[blen - 1]
    if (OH <= 0 || OW <= 0) return;
    if (pad + W + 64 > MAXPOOL_BMAX || blen + 64 > MAXPOOL_BMAX) {
        em_qmaxpool2d_u8_ref(in, C, H, W, k, stride, pad, out);
        return;
    }
    maxpool_ctx j = {in, H, W, k, stride, pad, OH, OW, out};
    long hw = (long)H * W;
    em_parallel_for(C, hw >= EM_EW_GRAIN ? 1 : EM_EW_GRAIN / hw, maxpool_channels, &j);
}

// ---------------------------------------------------------------- micro-kernel test hooks

void em_qukr_info(int *mr, int *nr, int *kstep) {
    const em_qgemm_params *P = em_qgemm_params_current();
    if (mr) *mr = P->mr;
    if (nr) *nr = P->nr;
    if (kstep) *kstep = P->kstep;
}

// The test hooks' operands: the 8 x K weights w packed (z_in 0, no bias) into *blob, opened as q,
// and the K x NR activations x (row-major, rows past K zero) formatted into *panel, the ISA's
// panel. The caller frees *blob and *panel (also when this fails). Returns 0, or -1.
static int ukr_test_operands(const em_qgemm_params *P, int K, const int8_t *w, const uint8_t *x,
                             uint8_t **blob, uint8_t **panel, em_qw *q) {
    const int NR = P->nr, ks = P->kstep;
    const int Kp = (K + 3) / 4 * 4, Kpad = (Kp + ks - 1) / ks * ks;
    const size_t pb = (size_t)Kpad * NR;
    uint8_t *tmp = NULL;
    *blob = *panel = NULL;
    int rc = -1;
    if (posix_memalign((void **)blob, 64, em_qpack_weights_bytes(8, K)) ||
        posix_memalign((void **)&tmp, 64, pb + 64) || posix_memalign((void **)panel, 64, pb))
        goto done;
    if (em_qpack_weights(w, 8, K, 0, NULL, *blob) != 0 || em_qw_open(*blob, q) != 0) goto done;
    for (int k = 0; k < Kpad; k++)
        for (int p = 0; p < NR; p++) tmp[(size_t)k * NR + p] = k < K ? x[(size_t)k * NR + p] : 0;
    format_panel(tmp, NR, Kpad, NR, P->panel, *panel);
    rc = 0;
done:
    free(tmp);
    return rc;
}

int em_qukr_call(int K, const int8_t *w, const uint8_t *x, int32_t *acc, int accumulate) {
    const em_qgemm_params *P = em_qgemm_params_current();
    if (K <= 0 || K > 65536 || !w || !x || !acc) return -1;
    const int NR = P->nr, ks = P->kstep;
    const int Kp = (K + 3) / 4 * 4, Kpad = (Kp + ks - 1) / ks * ks;
    uint8_t *blob = NULL, *panel = NULL, *prep = NULL;
    int rc = -1;
    em_qw q;
    if (ukr_test_operands(P, K, w, x, &blob, &panel, &q) != 0 ||
        posix_memalign((void **)&prep, 64, (P->prep_bytes_per_k ? P->prep_bytes_per_k : 1) * (size_t)Kpad))
        goto done;
    const uint8_t *wp = (const uint8_t *)q.w;
    int cstride = 4;
    if (P->prep) {
        P->prep(Kp, q.w, prep);
        wp = prep;
        cstride = P->prep_cstride;
    }
    for (int i0 = 0; i0 < 8; i0 += P->mr)
        P->ukr(Kpad, wp + (size_t)i0 * cstride, panel, acc + (size_t)i0 * NR, accumulate);
    if (P->xor_term)
        for (int m = 0; m < 8; m++)
            for (int p = 0; p < NR; p++) acc[m * NR + p] += 128 * q.rowsum[m];
    rc = 0;
done:
    free(blob);
    free(panel);
    free(prep);
    return rc;
}

int em_qukr_rq_call(int K, const int8_t *w, const uint8_t *x, int rows, int nv, const int32_t *terms,
                    const float *mults, int32_t z_out, int32_t lo, const uint8_t *res, long res_ld,
                    int32_t z_res, float res_mult, uint8_t *dst, long dst_ld) {
    const em_qgemm_params *P = em_qgemm_params_current();
    const int NR = P->nr, MR = P->mr, ks = P->kstep;
    if (K <= 0 || K > 65536 || !w || !x || !terms || !mults || !dst || rows < 1 || rows > 8 ||
        nv < 1 || nv > NR || dst_ld < nv || (res && res_ld < nv))
        return -1;
    if (!P->ukr_rq || P->prep) return 1;
    const int Kp = (K + 3) / 4 * 4;
    uint8_t *blob = NULL, *panel = NULL;
    int32_t *acc = NULL;
    int rc = -1;
    em_qw q;
    if (ukr_test_operands(P, K, w, x, &blob, &panel, &q) != 0 ||
        posix_memalign((void **)&acc, 64, (size_t)8 * NR * 4))
        goto done;
    int32_t tm[8];
    for (int i = 0; i < rows; i++) tm[i] = terms[i] + (P->xor_term ? 128 * q.rowsum[i] : 0);
    const int KC = Kp <= 640 ? Kp : 512; // run_range's x86 K slice (its fused layers: K over 2304)
    int k0 = 0;
    for (; k0 + KC < Kp; k0 += KC) // the slices before the last, as run_range
        for (int i0 = 0; i0 < 8; i0 += MR)
            P->ukr(KC, (const uint8_t *)(q.w + (size_t)k0 * 8) + (size_t)i0 * 4, panel + (size_t)k0 * NR,
                   acc + (size_t)i0 * NR, k0 > 0);
    const int kc = Kp - k0, kcu = (kc + ks - 1) / ks * ks;
    em_qrq_tile t = {.z_out = z_out, .lo = lo, .res_ld = (size_t)res_ld, .z_res = z_res,
                     .res_mult = res_mult, .dst_ld = (size_t)dst_ld, .nv = nv};
#if defined(__x86_64__)
    t.nocl = em_rq_nocl(tm, rows, mults, rows, Kp, res, z_res, res_mult);
#endif
    for (int i0 = 0; i0 < rows; i0 += MR) {
        t.rows = rows - i0 < MR ? rows - i0 : MR;
        t.terms = tm + i0;
        t.mults = mults + i0;
        t.res = res ? res + (size_t)i0 * res_ld : NULL;
        t.dst = dst + (size_t)i0 * dst_ld;
        P->ukr_rq(kcu, (const uint8_t *)(q.w + (size_t)k0 * 8) + (size_t)i0 * 4, panel + (size_t)k0 * NR,
                  k0 > 0 ? acc + (size_t)i0 * NR : NULL, &t);
    }
    rc = 0;
done:
    free(blob);
    free(panel);
    free(acc);
    return rc;
}

void em_qrow_ref_call(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                      const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst) {
    em_qrow_generic(acc, n, mult, z_out, lo, res, z_res, res_mult, dst);
}
