// AVX-512BW builders of the EM_QP_K4 panel of 48 pixels (the avx512vnni micro-kernel's:
// [Kpad/4][48][4] u8) straight from the GEMM's source (em_qpanel_x86.h), one ISA per file.
//
// Each panel row (one k, 48 pixels) is one zmm filled by byte-masked loads: lane p reads
// base + stride * p + off[k], the lanes whose tap lies outside the input (the padding, the rows
// above and below, the wrap into the neighbouring input row, pixels past N, k past K) are masked
// off and keep the zero point. Masked-off lanes are not read (AVX-512 fault suppression), so the
// loads need no bounds checks. Where the panel's pixels sit at one constant input offset from one
// another (stride 1 with OW == W, as in every 3x3 pad-1 convolution: pixel n's input is at n plus
// a constant even across output rows), one load per k row covers the whole panel; otherwise one
// per output row segment of the panel (at most MAXSEG). Stride 2 reads 96 bytes (two loads, the
// even bytes only) and packs them to 48.
//
// Four rows r0..r3 are then interleaved to the panel's 4-k groups: one vpermd per row puts pixels
// 16 j + 4 L .. 16 j + 4 L + 3 into 128-bit lane L, dword j (j < 3), after which the in-lane byte
// and word unpacks (vpunpck{l,h}bw, vpunpck{l,h}wd) produce the 192 bytes of the group in order,
// 11 shuffles per group instead of the 24 SSE unpacks (plus the gather and its second pass).
// The panel bytes are the same as the gather + format_panel path's (pure data movement).
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "em_qpanel_x86.h"

#define EM_P512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

enum { NR = 48, MAXSEG = 12, MAXTAP = 63 };

// Per layer (EM_QPS_CONV): for k < Kpad the offset of its tap from the pixel's top-left input
// position ((ci * H + ky) * W + kx) and its tap index ky * KW + kx (KH * KW for k >= K: no lane).
static __thread uint8_t *tabbuf;
static __thread size_t tabcap;

static int is_linear(const em_qpsrc *s) { return s->stride == 1 && s->OW == s->W; }

int em_qpanel48_covers(const em_qpsrc *s) {
    if (s->Kpad % 4 != 0 || s->Kpad < s->K || s->N <= 0) return 0;
    if (s->kind == EM_QPS_ROWS) return 1;
    if (s->kind != EM_QPS_CONV) return 0;
    if ((s->stride != 1 && s->stride != 2) || s->KH * s->KW > MAXTAP) return 0;
    if (s->tw > 0 && s->tw < s->W && !(is_linear(s) && s->W % s->tw == 0)) return 0;
    // a panel spans at most 47 / OW + 2 output rows
    if (!is_linear(s) && 47 / s->OW + 2 > MAXSEG) return 0;
    return 1;
}

int em_qpanel48_setup(const em_qpsrc *s) {
    if (s->kind != EM_QPS_CONV) return 0;
    size_t need = (size_t)s->Kpad * (sizeof(long) + 1);
    if (need > tabcap) {
        void *q = NULL;
        if (posix_memalign(&q, 64, need) != 0) return -1;
        free(tabbuf);
        tabbuf = (uint8_t *)q;
        tabcap = need;
    }
    long *off = (long *)(void *)tabbuf;
    uint8_t *tap = tabbuf + (size_t)s->Kpad * sizeof(long);
    const int KK = s->KH * s->KW;
    for (int k = 0, ci = 0, ky = 0, kx = 0; k < s->Kpad; k++) {
        if (k >= s->K) {
            off[k] = 0;
            tap[k] = (uint8_t)KK;
            continue;
        }
        off[k] = ((long)ci * s->H + ky) * s->W + kx;
        tap[k] = (uint8_t)(ky * s->KW + kx);
        if (++kx == s->KW) {
            kx = 0;
            if (++ky == s->KH) ky = 0, ci++;
        }
    }
    return 0;
}

// Bits [a, b) of a 64-bit mask (a, b clamped to [0, 64]).
static inline uint64_t bits(int a, int b) {
    if (a < 0) a = 0;
    if (b > 64) b = 64;
    if (b <= a) return 0;
    uint64_t hi = b == 64 ? ~0ull : (1ull << b) - 1;
    return hi & ~((1ull << a) - 1);
}

// The taps t in [0, len) with 0 <= ix0 + s * t < W (as em_conv_segment).
static inline void col_range(int ix0, int s, int W, int len, int *tlo, int *thi) {
    int lo = ix0 >= 0 ? 0 : (-ix0 + s - 1) / s;
    int hi = ix0 < W ? (W - 1 - ix0) / s + 1 : 0;
    if (lo > len) lo = len;
    if (hi > len) hi = len;
    if (hi < lo) hi = lo;
    *tlo = lo;
    *thi = hi;
}

// Four rows (each permuted by perm: lane L dword j = pixels 16 j + 4 L ..) -> one 4-k group.
EM_P512 static inline void zip_store(__m512i r0, __m512i r1, __m512i r2, __m512i r3, uint8_t *d) {
    __m512i ab0 = _mm512_unpacklo_epi8(r0, r1), ab1 = _mm512_unpackhi_epi8(r0, r1);
    __m512i cd0 = _mm512_unpacklo_epi8(r2, r3), cd1 = _mm512_unpackhi_epi8(r2, r3);
    _mm512_storeu_si512((void *)d, _mm512_unpacklo_epi16(ab0, cd0));
    _mm512_storeu_si512((void *)(d + 64), _mm512_unpackhi_epi16(ab0, cd0));
    _mm512_storeu_si512((void *)(d + 128), _mm512_unpacklo_epi16(ab1, cd1));
}

static inline const uint8_t *at(uintptr_t base, long off) { return (const uint8_t *)(base + (uintptr_t)off); }

// Per panel: its segments (lane p of segment g reads base[g] + stride * p + off[k]) and per
// segment and tap the lanes it loads: stride 1 the pixel lanes (lo), stride 2 the byte lanes 2 p
// of pixels 0..31 (lo) and of pixels 32..47 (hi). Stored for the whole chunk (pm_bytes each).
typedef struct {
    int nseg;
    uintptr_t base[MAXSEG];
    uint64_t m[]; // [nseg][KK + 1][2] (lo, hi)
} pmask;

static size_t pm_bytes(const em_qpsrc *s) {
    const int ns = is_linear(s) ? 1 : 47 / s->OW + 2;
    return (sizeof(pmask) + (size_t)ns * (s->KH * s->KW + 1) * 16 + 63) & ~(size_t)63;
}

// The segments and masks of the panel of pixels [pn, pn + nv).
static void conv_masks(const em_qpsrc *s, int pn, int nv, pmask *g) {
    const int st = s->stride, pad = s->pad, W = s->W, H = s->H, OW = s->OW, KW = s->KW, KH = s->KH;
    const int T = KH * KW + 1, lin = is_linear(s);
    const uint64_t even = 0x5555555555555555ull;
    // segments: runs of output row (tiles: of a tile's row) whose valid taps share the columns
    const int tiled = s->tw > 0 && s->tw < W, cw = tiled ? s->tw : W;
    int oy = pn / OW, ox = pn - oy * OW, ns = 0;
    for (int p = 0; p < nv;) {
        const int tx = tiled ? ox % cw : ox, end = tiled ? ox - tx + cw : OW; // (tx: column in the tile)
        const int len = end - ox < nv - p ? end - ox : nv - p;
        const int sg = lin ? 0 : ns;
        uint64_t *m = g->m + (size_t)sg * T * 2;
        if (!lin || p == 0) {
            g->base[sg] = (uintptr_t)s->src + (uintptr_t)((long)(oy * st - pad) * W + (long)ox * st - pad - (long)st * p);
            for (int t = 0; t < 2 * T; t++) m[t] = 0;
            ns++;
        }
        // the valid columns depend on kx only, the valid rows on ky only
        uint64_t clo[8], chi[8];
        const int kw8 = KW < 8 ? KW : 8;
        for (int kx = 0; kx < kw8; kx++) {
            int tlo, thi;
            col_range(tx * st - pad + kx, st, cw, len, &tlo, &thi);
            const int a = p + tlo, b = p + thi;
            clo[kx] = st == 1 ? bits(a, b) : bits(2 * a, 2 * b) & even;
            chi[kx] = st == 1 ? 0 : bits(2 * a - 64, 2 * b - 64) & even;
        }
        for (int ky = 0; ky < KH; ky++) {
            const int iy = oy * st - pad + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; kx++) {
                uint64_t lo, hi;
                if (kx < 8) {
                    lo = clo[kx], hi = chi[kx];
                } else {
                    int tlo, thi;
                    col_range(tx * st - pad + kx, st, cw, len, &tlo, &thi);
                    const int a = p + tlo, b = p + thi;
                    lo = st == 1 ? bits(a, b) : bits(2 * a, 2 * b) & even;
                    hi = st == 1 ? 0 : bits(2 * a - 64, 2 * b - 64) & even;
                }
                m[(ky * KW + kx) * 2] |= lo;
                m[(ky * KW + kx) * 2 + 1] |= hi;
            }
        }
        p += len;
        ox += len;
        if (ox == OW) ox = 0, oy++;
    }
    g->nseg = ns;
}

// Groups [k0, k1) of a convolution panel (d: the panel).
EM_P512 static void conv_groups(const em_qpsrc *s, const pmask *g, int k0, int k1, uint8_t *d, __m512i perm1,
                                __m512i perm2) {
    const long *off = (const long *)(const void *)tabbuf;
    const uint8_t *tap = tabbuf + (size_t)s->Kpad * sizeof(long);
    const int T2 = (s->KH * s->KW + 1) * 2;
    d += (size_t)k0 * NR;
    if (s->stride == 1) {
        const __m512i zv = _mm512_set1_epi8((char)s->z);
        if (g->nseg == 1) {
            const uintptr_t b = g->base[0];
            const uint64_t *m = g->m;
            for (; k0 < k1; k0 += 4, d += 4 * NR) {
                __m512i r[4];
                for (int i = 0; i < 4; i++)
                    r[i] = _mm512_permutexvar_epi32(
                        perm1, _mm512_mask_loadu_epi8(zv, _cvtu64_mask64(m[2 * tap[k0 + i]]), at(b, off[k0 + i])));
                zip_store(r[0], r[1], r[2], r[3], d);
            }
        } else {
            for (; k0 < k1; k0 += 4, d += 4 * NR) {
                __m512i r[4];
                for (int i = 0; i < 4; i++) {
                    const int t = tap[k0 + i];
                    const long o = off[k0 + i];
                    __m512i v = zv;
                    for (int q = 0; q < g->nseg; q++)
                        v = _mm512_mask_loadu_epi8(v, _cvtu64_mask64(g->m[q * T2 + 2 * t]), at(g->base[q], o));
                    r[i] = _mm512_permutexvar_epi32(perm1, v);
                }
                zip_store(r[0], r[1], r[2], r[3], d);
            }
        }
    } else {
        // words z (the odd bytes are never loaded and stay 0: packus keeps the even bytes)
        const __m512i zw = _mm512_set1_epi16((short)s->z);
        for (; k0 < k1; k0 += 4, d += 4 * NR) {
            __m512i r[4];
            for (int i = 0; i < 4; i++) {
                const int t = tap[k0 + i];
                const long o = off[k0 + i];
                __m512i lo = zw, hi = zw;
                for (int q = 0; q < g->nseg; q++) {
                    const uint8_t *a = at(g->base[q], o);
                    lo = _mm512_mask_loadu_epi8(lo, _cvtu64_mask64(g->m[q * T2 + 2 * t]), a);
                    hi = _mm512_mask_loadu_epi8(hi, _cvtu64_mask64(g->m[q * T2 + 2 * t + 1]), a + 64);
                }
                r[i] = _mm512_permutexvar_epi32(perm2, _mm512_packus_epi16(lo, hi));
            }
            zip_store(r[0], r[1], r[2], r[3], d);
        }
    }
}

// EM_QPS_ROWS: groups [k0, k1) of the panel at pixel pn (row k is src + k * ldk + pn).
EM_P512 static void rows_groups(const em_qpsrc *s, int pn, int k0, int k1, uint8_t *d, __m512i perm1) {
    const int nv = s->N - pn < NR ? s->N - pn : NR, K = s->K;
    const __m512i zv = _mm512_set1_epi8((char)s->z);
    const __mmask64 m = _cvtu64_mask64(bits(0, nv));
    const uint8_t *src = s->src + pn;
    const long ld = s->ldk;
    d += (size_t)k0 * NR;
    for (; k0 + 4 <= k1 && k0 + 4 <= K; k0 += 4, d += 4 * NR) {
        const uint8_t *r = src + (size_t)k0 * ld;
        __m512i r0 = _mm512_permutexvar_epi32(perm1, _mm512_mask_loadu_epi8(zv, m, r));
        __m512i r1 = _mm512_permutexvar_epi32(perm1, _mm512_mask_loadu_epi8(zv, m, r + ld));
        __m512i r2 = _mm512_permutexvar_epi32(perm1, _mm512_mask_loadu_epi8(zv, m, r + 2 * ld));
        __m512i r3 = _mm512_permutexvar_epi32(perm1, _mm512_mask_loadu_epi8(zv, m, r + 3 * ld));
        zip_store(r0, r1, r2, r3, d);
    }
    for (; k0 < k1; k0 += 4, d += 4 * NR) { // the last groups: k >= K is z
        __m512i r[4];
        for (int i = 0; i < 4; i++)
            r[i] = k0 + i < K ? _mm512_permutexvar_epi32(perm1, _mm512_mask_loadu_epi8(zv, m, src + (size_t)(k0 + i) * ld))
                              : zv;
        zip_store(r[0], r[1], r[2], r[3], d);
    }
}

// The chunk's panels are built a block of k at a time across all its panels: each input row is
// then read as one run of count * 48 bytes rather than 48 bytes per visit with the rest of K in
// between. (Single-threaded layer timings, Cout 8 so that the panels dominate: blocks of 16 or 64
// k were 3-10% faster than whole panels; 16 for the 1x1 rows, 64 for the convolutions.)
enum { KB_ROWS = 16, KB_CONV = 64 };

// The per-panel masks of a chunk (the calling thread's buffer, grows only).
static __thread uint8_t *pmbuf;
static __thread size_t pmcap;

EM_P512 void em_qpanels48_avx512(const em_qpsrc *s, int n0, int count, uint8_t *dst, size_t pstride) {
    // perm1 (rows in pixel order) and perm2 (stride 2: after the pack, qword 2 L of lane L holds
    // pixels 8 L .. 8 L + 7 and qword 2 L + 1 pixels 32 + 8 L ..): dword 4 L + j <- the dword
    // holding pixels 4 G .. 4 G + 3, G = 4 j + L.
    int32_t p1[16], p2[16];
    for (int q = 0; q < 16; q++) {
        const int G = 4 * (q & 3) + (q >> 2);
        p1[q] = G;
        p2[q] = G < 8 ? 4 * (G >> 1) + (G & 1) : 4 * ((G - 8) >> 1) + 2 + (G & 1);
    }
    const __m512i perm1 = _mm512_loadu_si512((const void *)p1), perm2 = _mm512_loadu_si512((const void *)p2);
    if (n0 + (count - 1) * NR >= s->N) { // panels without any pixel (not reached from the driver)
        while (count > 0 && n0 + (count - 1) * NR >= s->N) {
            count--;
            memset(dst + (size_t)count * pstride, s->z, (size_t)s->Kpad * NR);
        }
    }
    if (s->kind == EM_QPS_ROWS) {
        for (int k0 = 0; k0 < s->Kpad; k0 += KB_ROWS) {
            const int k1 = s->Kpad - k0 < KB_ROWS ? s->Kpad : k0 + KB_ROWS;
            for (int c = 0; c < count; c++) rows_groups(s, n0 + c * NR, k0, k1, dst + (size_t)c * pstride, perm1);
        }
        return;
    }
    const size_t pb = pm_bytes(s);
    if (pb * count > pmcap) {
        void *q = NULL;
        if (posix_memalign(&q, 64, pb * count) == 0) {
            free(pmbuf);
            pmbuf = (uint8_t *)q;
            pmcap = pb * count;
        }
    }
    if (pb * count > pmcap) { // no buffer: one panel at a time, its masks on the stack
        _Alignas(64) uint8_t one[sizeof(pmask) + MAXSEG * (MAXTAP + 1) * 16];
        for (int c = 0; c < count; c++) {
            const int pn = n0 + c * NR;
            conv_masks(s, pn, s->N - pn < NR ? s->N - pn : NR, (pmask *)(void *)one);
            conv_groups(s, (const pmask *)(void *)one, 0, s->Kpad, dst + (size_t)c * pstride, perm1, perm2);
        }
        return;
    }
    for (int c = 0; c < count; c++) {
        const int pn = n0 + c * NR;
        conv_masks(s, pn, s->N - pn < NR ? s->N - pn : NR, (pmask *)(void *)(pmbuf + pb * c));
    }
    for (int k0 = 0; k0 < s->Kpad; k0 += KB_CONV) {
        const int k1 = s->Kpad - k0 < KB_CONV ? s->Kpad : k0 + KB_CONV;
        for (int c = 0; c < count; c++)
            conv_groups(s, (const pmask *)(void *)(pmbuf + pb * c), k0, k1, dst + (size_t)c * pstride, perm1, perm2);
    }
}
#endif
