// One output channel per window of an int8 1x1 convolution with float output (the mask logits:
// per RoI only its label's channel), avx512vnni, straight from the uint8 CHW map: no window copy,
// no panel in memory, one weight row per pixel instead of an 8-row block (em_qkernels.h,
// em_qconv1x1_rows_u8_f32; the driver is in qgemm.c).
//
// The windows lie side by side in the map's rows (the mask head's batch), so the work goes by
// 64-column chunks of the map rows, whatever window each column belongs to: per group of 4 k the 4
// map rows of a chunk (4 loads) are zipped in registers by the same byte / word unpacks as the
// 48-pixel panels (x86/qpanel_avx512.c): x_j lane L dword i = pixel 16 L + 4 j + i, its 4 k in
// order. vpdpbusd multiplies each dword lane by its own weight dword, so lane l gets the weights
// of the channel of its column's window: b_j = vpermd (the lanes' window index, the weight dwords
// of this group of the 16 windows from the chunk's first), made once per group and unit. The
// int32 sums (wrapping, as every path's) go back to pixel order by a 4 x 4 transpose of 128-bit
// lanes, get the term of their channel added (int32), then (float)sum * deq[channel] (vcvtdq2ps,
// vmulps: the drivers' epilogue, one rounding): the same floats as em_qconv2d_u8_f32 gives for
// that channel. Lanes of columns in no window (gaps, past the last window) are computed with some
// window's weights and not stored.
//
// Each input byte is used once, so the input's path from memory sets the speed: a unit (a few
// window rows, up to 8 chunks) goes group by group, and in each group reads the unit's rows of
// the 4 channels in address order (runs of rows x chunks contiguous bytes that the hardware
// prefetchers follow), the int32 sums of the unit staying in L1. (Chunk by chunk with the sums in
// registers, k innermost, every load was a new line of another channel plane: ~2x slower per
// batch from L2/L3 in a single-threaded harness, 16 RoIs of 256 x 28 x 28.)
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "../em_qinternal.h"

#define EM_VNNI1 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

enum { Q1_MAXCH = 8, Q1_MAXROWS = 8, Q1_MAXST = 8 };

// One store of a chunk's plan: the lanes k of column group m (16 columns) of row y go to
// base + y * ww floats.
typedef struct {
    uintptr_t base;
    __mmask16 k;
    int m;
} q1_store;

// The unit's scratch (64-byte aligned).
typedef struct {
    __m512i acc[Q1_MAXROWS][Q1_MAXCH][4]; // the sums, permuted lane order
    __m512i b[Q1_MAXCH][4];               // this group's weights per chunk, permuted lane order
    __m512i pidx[Q1_MAXCH][4];            // per chunk and lane (permuted order) its window from rlo
    __m512i tv[Q1_MAXCH][4];              // terms, natural order
    __m512 dv[Q1_MAXCH][4];               // multipliers, natural order
    int rlo[Q1_MAXCH], nst[Q1_MAXCH];
    __mmask64 kl[Q1_MAXCH];
    q1_store st[Q1_MAXCH][Q1_MAXST];
} q1_scratch;

size_t em_q1rows_scratch_bytes(void) { return sizeof(q1_scratch); }

// Chunk cc at column c: its windows, lane indices, terms, multipliers, load mask and stores.
// Returns 0, or -1 (more than 16 windows or Q1_MAXST stores).
static EM_VNNI1 int q1_chunk(const em_q1rows *j, int c, q1_scratch *s, int cc) {
    const int ww = j->ww, n = j->count;
    int r_lo = 0;
    while (r_lo < n && j->x0s[r_lo] + ww <= c) r_lo++;
    if (r_lo >= n) r_lo = n - 1; // (no window here: any, nothing stored)
    int32_t wi[64], pi[64];
    for (int l = 0; l < 64; l++) wi[l] = 0;
    int nst = 0;
    for (int r = r_lo; r < n && j->x0s[r] < c + 64; r++) {
        if (j->x0s[r] + ww <= c) continue;
        if (r - r_lo >= 16) return -1;
        const int a = j->x0s[r] > c ? j->x0s[r] - c : 0;
        const int e = j->x0s[r] + ww - c < 64 ? j->x0s[r] + ww - c : 64;
        for (int l = a; l < e; l++) wi[l] = r - r_lo;
        for (int m = a / 16; m * 16 < e; m++) { // the stores of window r
            const int lo = a > 16 * m ? a - 16 * m : 0, hi = e < 16 * m + 16 ? e - 16 * m : 16;
            if (nst >= Q1_MAXST) return -1;
            q1_store *t = &s->st[cc][nst++];
            t->k = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
            t->m = m;
            // float of column c + 16 m of row 0 of window r (lanes before the window masked off)
            t->base = (uintptr_t)(j->out + (size_t)r * j->wh * ww) +
                      (uintptr_t)((intptr_t)(c + 16 * m - j->x0s[r]) * (intptr_t)sizeof(float));
        }
    }
    s->nst[cc] = nst;
    s->rlo[cc] = r_lo;
    for (int jj = 0; jj < 4; jj++)
        for (int L = 0; L < 4; L++)
            for (int i = 0; i < 4; i++) pi[jj * 16 + 4 * L + i] = wi[16 * L + 4 * jj + i];
    const __m512i tt = _mm512_loadu_si512((const void *)(j->terms + r_lo));
    const __m512 dd = _mm512_loadu_ps(j->deqs + r_lo);
    for (int m = 0; m < 4; m++) {
        const __m512i ix = _mm512_loadu_si512((const void *)(wi + 16 * m));
        s->tv[cc][m] = _mm512_permutexvar_epi32(ix, tt);
        s->dv[cc][m] = _mm512_permutexvar_ps(ix, dd);
        s->pidx[cc][m] = _mm512_loadu_si512((const void *)(pi + 16 * m));
    }
    const int cols = j->W - c < 64 ? j->W - c : 64;
    s->kl[cc] = cols >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << cols) - 1);
    return 0;
}

// The four 4-k vectors of one group of rows r0..r3 (64 columns each) multiplied into c[0..3]
// (b: the group's 4 weight vectors in the permuted lane order).
static inline __attribute__((always_inline)) EM_VNNI1 void q1_group(__m512i r0, __m512i r1, __m512i r2, __m512i r3,
                                                                    const __m512i *b, __m512i *c) {
    const __m512i ab0 = _mm512_unpacklo_epi8(r0, r1), ab1 = _mm512_unpackhi_epi8(r0, r1);
    const __m512i cd0 = _mm512_unpacklo_epi8(r2, r3), cd1 = _mm512_unpackhi_epi8(r2, r3);
    c[0] = _mm512_dpbusd_epi32(c[0], _mm512_unpacklo_epi16(ab0, cd0), b[0]);
    c[1] = _mm512_dpbusd_epi32(c[1], _mm512_unpackhi_epi16(ab0, cd0), b[1]);
    c[2] = _mm512_dpbusd_epi32(c[2], _mm512_unpacklo_epi16(ab1, cd1), b[2]);
    c[3] = _mm512_dpbusd_epi32(c[3], _mm512_unpackhi_epi16(ab1, cd1), b[3]);
}

EM_VNNI1 int em_q1rows_unit_avx512vnni(const em_q1rows *j, int c0, int nch, int ya, int yb, void *scratch) {
    q1_scratch *s = (q1_scratch *)scratch;
    const int R = yb - ya;
    if (nch < 1 || nch > Q1_MAXCH || R < 1 || R > Q1_MAXROWS) return -1;
    for (int cc = 0; cc < nch; cc++)
        if (q1_chunk(j, c0 + 64 * cc, s, cc) != 0) return -1;
    const size_t plane = (size_t)j->H * j->W, W = (size_t)j->W;
    const int G = (j->Cin + 3) / 4;
    const uint8_t *base = j->in + (size_t)(j->y0 + ya) * W + c0;
    for (int y = 0; y < R; y++)
        for (int cc = 0; cc < nch; cc++)
            for (int jj = 0; jj < 4; jj++) s->acc[y][cc][jj] = _mm512_setzero_si512();
    for (int g = 0; g < G; g++) {
        // this group's weight vectors of each chunk
        for (int cc = 0; cc < nch; cc++) {
            const __m512i w = _mm512_loadu_si512((const void *)(j->wt + (size_t)g * j->ldw + s->rlo[cc]));
            for (int jj = 0; jj < 4; jj++) s->b[cc][jj] = _mm512_permutexvar_epi32(s->pidx[cc][jj], w);
        }
        const int nk = j->Cin - 4 * g; // rows of this group inside the input (the rest: zero)
        const uint8_t *p = base + (size_t)4 * g * plane;
        for (int y = 0; y < R; y++, p += W) {
            for (int cc = 0; cc < nch; cc++) {
                const uint8_t *q = p + 64 * cc;
                const __mmask64 k = s->kl[cc];
                __m512i r0, r1, r2, r3;
                if (nk >= 4) {
                    r0 = _mm512_maskz_loadu_epi8(k, q);
                    r1 = _mm512_maskz_loadu_epi8(k, q + plane);
                    r2 = _mm512_maskz_loadu_epi8(k, q + 2 * plane);
                    r3 = _mm512_maskz_loadu_epi8(k, q + 3 * plane);
                } else {
                    const __m512i z = _mm512_setzero_si512();
                    r0 = _mm512_maskz_loadu_epi8(k, q);
                    r1 = nk > 1 ? _mm512_maskz_loadu_epi8(k, q + plane) : z;
                    r2 = nk > 2 ? _mm512_maskz_loadu_epi8(k, q + 2 * plane) : z;
                    r3 = z;
                }
                __m512i c[4] = {s->acc[y][cc][0], s->acc[y][cc][1], s->acc[y][cc][2], s->acc[y][cc][3]};
                q1_group(r0, r1, r2, r3, s->b[cc], c);
                for (int jj = 0; jj < 4; jj++) s->acc[y][cc][jj] = c[jj];
            }
        }
    }
    // c[jj] lane L dword i = pixel 16 L + 4 jj + i -> f[m] = pixels 16 m .. 16 m + 15
    for (int y = 0; y < R; y++) {
        const uintptr_t dy = (uintptr_t)(ya + y) * (uintptr_t)j->ww * sizeof(float);
        for (int cc = 0; cc < nch; cc++) {
            const __m512i *c = s->acc[y][cc];
            const __m512i t0 = _mm512_shuffle_i32x4(c[0], c[1], 0x44), t1 = _mm512_shuffle_i32x4(c[2], c[3], 0x44);
            const __m512i t2 = _mm512_shuffle_i32x4(c[0], c[1], 0xEE), t3 = _mm512_shuffle_i32x4(c[2], c[3], 0xEE);
            const __m512i sm[4] = {_mm512_shuffle_i32x4(t0, t1, 0x88), _mm512_shuffle_i32x4(t0, t1, 0xDD),
                                   _mm512_shuffle_i32x4(t2, t3, 0x88), _mm512_shuffle_i32x4(t2, t3, 0xDD)};
            __m512 f[4];
            for (int m = 0; m < 4; m++)
                f[m] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(sm[m], s->tv[cc][m])), s->dv[cc][m]);
            for (int e = 0; e < s->nst[cc]; e++) {
                const q1_store *t = &s->st[cc][e];
                _mm512_mask_storeu_ps((void *)(t->base + dy), t->k, f[t->m]);
            }
        }
    }
    return 0;
}
#endif
