// AVX-512 VNNI int8 micro-kernel: vpdpbusd (u8 x s8, 4 exact products summed into each int32
// lane; no intermediate saturation) straight on the packed weight blocks. 8 channels x 32
// pixels: 16 zmm accumulators.
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>

#include "../em_qinternal.h"

#define EM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// wblk: packed block (group stride 32 bytes, channel c at c*4); panel EM_QP_K4 with NR = 32
// (128 bytes per group of 4 k).
EM_VNNI void em_qukr_u8s8_avx512vnni_8x32(int kp, const void *wblk, const uint8_t *panel,
                                          int32_t *acc, int accumulate) {
    const uint8_t *w = (const uint8_t *)wblk;
    __m512i c[8][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = _mm512_setzero_si512();
    for (int g = 0; g < kp / 4; g++) {
        __m512i x0 = _mm512_loadu_si512((const void *)(panel + (size_t)g * 128));
        __m512i x1 = _mm512_loadu_si512((const void *)(panel + (size_t)g * 128 + 64));
        const uint8_t *wg = w + (size_t)g * 32;
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++) {
            // embedded broadcast: the weight dword is read by each vpdpbusd ({1to16}), no
            // separate broadcast instruction
            __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]"
                    : [c] "+v"(c[i][0])
                    : [x] "v"(x0), [w] "m"(*(const int32_t *)(wg + i * 4)));
            __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]"
                    : [c] "+v"(c[i][1])
                    : [x] "v"(x1), [w] "m"(*(const int32_t *)(wg + i * 4)));
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        _mm512_storeu_si512((void *)(acc + i * 32), accumulate ? _mm512_add_epi32(c[i][0], _mm512_loadu_si512((const void *)(acc + i * 32))) : c[i][0]);
        _mm512_storeu_si512((void *)(acc + i * 32 + 16), accumulate ? _mm512_add_epi32(c[i][1], _mm512_loadu_si512((const void *)(acc + i * 32 + 16))) : c[i][1]);
    }
}
#endif

#if defined(__x86_64__)
// 8 channels x 48 pixels: 24 zmm accumulators, 3 panel vectors per group of 4 k. Each weight
// dword now feeds 3 vpdpbusd (8x32: 2), so the loads per multiply-accumulate instruction drop
// from 18/16 to 11/24 and the per-call overhead is spread over 1.5x the work. Panel EM_QP_K4
// with NR = 48 (192 bytes per group of 4 k).
// The multiply-accumulate loop of the 8x48 kernels (plain and requantising): c (holding the
// starting values) += the sums over kp values of k, on the first nvec (1..3, a constant at every
// call) of the 3 pixel vectors; c[i][nvec..2] keep their starting values. nvec < 3: a panel whose
// pixels past 16 nvec are not stored (a layer's last panel: the mask head's side-by-side batches
// of 14 or 15 RoIs end in a panel of 8 or 12 pixels, N 2744, 2940: 1 vector instead of 3 there).
static inline __attribute__((always_inline)) EM_VNNI void vnni_8x48_loop(int kp, const uint8_t *w,
                                                                        const uint8_t *panel,
                                                                        __m512i c[8][3], int nvec) {
    const uint8_t *p = panel, *pend = panel + (size_t)(kp / 4) * 192;
    for (; p < pend; p += 192, w += 32) {
        __m512i x0 = _mm512_loadu_si512((const void *)p);
        __m512i x1 = nvec > 1 ? _mm512_loadu_si512((const void *)(p + 64)) : x0;
        __m512i x2 = nvec > 2 ? _mm512_loadu_si512((const void *)(p + 128)) : x0;
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++) {
            __m512i wb = _mm512_set1_epi32(*(const int32_t *)(w + i * 4));
            c[i][0] = _mm512_dpbusd_epi32(c[i][0], x0, wb);
            if (nvec > 1) c[i][1] = _mm512_dpbusd_epi32(c[i][1], x1, wb);
            if (nvec > 2) c[i][2] = _mm512_dpbusd_epi32(c[i][2], x2, wb);
        }
    }
}

// The masks of `count` vectors of 16 lanes whose first n lanes are valid (vector j: lanes
// 16 j .. 16 j + 15; all, some or none).
static inline __attribute__((always_inline)) void vnni_lane_masks(int n, int count, __mmask16 *km) {
#pragma clang loop unroll(full)
    for (int j = 0; j < count; j++) {
        const int r = n - 16 * j;
        km[j] = r >= 16 ? (__mmask16)0xFFFF : r <= 0 ? (__mmask16)0 : (__mmask16)((1u << r) - 1);
    }
}

// The int32 sums of the requantising 8x48 kernels (rq, rqdc, rqnm): the term is where the
// accumulators start when there is no acc, else it is added with acc's tile (the earlier K
// slices); rows past `rows` stay 0 and their terms are not read. int32 additions wrap modulo 2^32
// in any order, so the sums are the driver's.
static inline __attribute__((always_inline)) EM_VNNI void vnni_8x48_sums(int kp, const uint8_t *w,
                                                                        const uint8_t *panel,
                                                                        const int32_t *acc, int rows,
                                                                        const int32_t *terms, int nv,
                                                                        __m512i c[8][3]) {
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++)
        c[i][0] = c[i][1] = c[i][2] = acc || i >= rows ? _mm512_setzero_si512() : _mm512_set1_epi32(terms[i]);
    // lanes past nv are never stored by the callers: a short last panel sums only its vectors
    if (nv > 32) vnni_8x48_loop(kp, w, panel, c, 3);
    else if (nv > 16) vnni_8x48_loop(kp, w, panel, c, 2);
    else vnni_8x48_loop(kp, w, panel, c, 1);
    if (acc) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++) {
            const __m512i vt = i < rows ? _mm512_set1_epi32(terms[i]) : _mm512_setzero_si512();
#pragma clang loop unroll(full)
            for (int j = 0; j < 3; j++)
                c[i][j] = _mm512_add_epi32(c[i][j], _mm512_add_epi32(_mm512_loadu_si512((const void *)(acc + i * 48 + j * 16)), vt));
        }
    }
}

EM_VNNI void em_qukr_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                          int32_t *acc, int accumulate) {
    __m512i c[8][3];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = c[i][2] = _mm512_setzero_si512();
    vnni_8x48_loop(kp, (const uint8_t *)wblk, panel, c, 3);
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++)
#pragma clang loop unroll(full)
        for (int j = 0; j < 3; j++) {
            int32_t *a = acc + i * 48 + j * 16;
            _mm512_storeu_si512((void *)a, accumulate ? _mm512_add_epi32(c[i][j], _mm512_loadu_si512((const void *)a)) : c[i][j]);
        }
}

// One row of 48 lanes of the requantising kernel, c: the int32 sums with the term (rr == NULL: no
// residual).
static inline __attribute__((always_inline)) EM_VNNI void vnni_rq_row48(
    const __m512i c[3], float mult, __m512 flo, __m512 fhi, __m512i vz, const __mmask16 km[3],
    const uint8_t *rr, __m512i vzr, __m512 vrm, uint8_t *d) {
    const __m512 vm = _mm512_set1_ps(mult);
#pragma clang loop unroll(full)
    for (int j = 0; j < 3; j++) {
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(c[j]), vm);
        if (rr) {
            __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(km[j], rr + 16 * j));
            __m512 rv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, vzr)), vrm);
            v = _mm512_add_ps(v, rv);
        }
        v = _mm512_min_ps(_mm512_max_ps(v, flo), fhi);
        __m512i y = _mm512_add_epi32(_mm512_cvtps_epi32(v), vz);
        _mm_mask_storeu_epi8(d + 16 * j, km[j], _mm512_cvtepi32_epi8(y));
    }
}

// Two rows (a, b) of 48 lanes requantised with saturating packs instead of the float clamp
// (vmaxps, vminps) and vpmovdb: the pack path, taken when 0 <= z_out <= 255, lo is 0 or z_out and
// the driver proved |v| < 2^30 for the layer (em_qrq_tile.nocl). Per 16 lanes vcvtdq2ps, vmulps
// (+ the residual's vpmovzxbd, vpsubd, vcvtdq2ps, vmulps, vaddps: the contract's floats),
// vcvtps2dq: r = rne(v) exactly (no overflow below 2^30; a NaN, which the bound excludes, would
// give 0x80000000 and so lo). Then vpackssdw (r saturated to int16: s), and
//   form 0, lo == 0:     y = sat_u8(sat16(s + z_out))   (vpaddsw, vpackuswb)
//   form 1, lo == z_out: y = sat_u8(s) +sat_u8 z_out    (vpackuswb, vpaddusb)
//   form 2, z_out == 0 (so lo == 0): y = sat_u8(s)      (vpackuswb: the ReLU layers' outputs)
// both equal clamp(z_out + r, lo, 255), the contract's y (its clampf to +-2^24 changes nothing
// there): a saturation only happens where the value is beyond 255 or below 0 already
// (0 <= z_out <= 255 against the int16 range). The 6 vectors' dwords (4 bytes each) come out of the packs in 128-bit-lane order and go
// back into pixel order by one vpermd (row a) and one vpermt2d (row b); one masked 48-byte store
// per row (lanes past nv masked out).
static inline __attribute__((always_inline)) EM_VNNI __m512i vnni_rq_cvt16(__m512i c, __m512 vm,
                                                                          const uint8_t *rr,
                                                                          __mmask16 k, __m512i vzr,
                                                                          __m512 vrm) {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(c), vm);
    if (rr) {
        // 16 whole lanes (every tile but a layer's last): vpmovzxbd straight from memory instead
        // of a byte-masked load and vpmovzxbd; the same bytes. Measured on the 8x48 kernel with a
        // residual in a loop over L2-resident tiles: K 64 329 -> 310 cycles per call, K 128
        // 509 -> 465, K 256 882 -> 863
        const __m128i r16 = k == (__mmask16)0xFFFF ? _mm_loadu_si128((const __m128i *)(const void *)rr)
                                                   : _mm_maskz_loadu_epi8(k, rr);
        __m512i q = _mm512_cvtepu8_epi32(r16);
        __m512 rv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, vzr)), vrm);
        v = _mm512_add_ps(v, rv);
    }
    return _mm512_cvtps_epi32(v);
}

static inline __attribute__((always_inline)) EM_VNNI void vnni_rq_pair48(
    const __m512i ca[3], const __m512i cb[3], float ma, float mb, int form,
    __m512i vz16, __m512i vz8, const __mmask16 km[3], __mmask64 kst, const uint8_t *rra,
    const uint8_t *rrb, __m512i vzr, __m512 vrm, uint8_t *da, uint8_t *db) {
    const __m512 va = _mm512_set1_ps(ma), vb = _mm512_set1_ps(mb);
    __m512i ya[3], yb[3];
#pragma clang loop unroll(full)
    for (int j = 0; j < 3; j++) {
        ya[j] = vnni_rq_cvt16(ca[j], va, rra ? rra + 16 * j : NULL, km[j], vzr, vrm);
        yb[j] = vnni_rq_cvt16(cb[j], vb, rrb ? rrb + 16 * j : NULL, km[j], vzr, vrm);
    }
    // s1 lane L: words of a0, a1 (pixels 4L..4L+3 of each); s2: a2, b0; s3: b1, b2
    __m512i s1 = _mm512_packs_epi32(ya[0], ya[1]), s2 = _mm512_packs_epi32(ya[2], yb[0]);
    __m512i s3 = _mm512_packs_epi32(yb[1], yb[2]);
    if (form == 0) {
        s1 = _mm512_adds_epi16(s1, vz16);
        s2 = _mm512_adds_epi16(s2, vz16);
        s3 = _mm512_adds_epi16(s3, vz16);
    }
    // u1 dword 4L + j: a_j's pixels 4L..4L+3 (j < 3), 4L + 3: b0's; u2 dword 4L: b1's, 4L + 1: b2's
    __m512i u1 = _mm512_packus_epi16(s1, s2), u2 = _mm512_packus_epi16(s3, s3);
    if (form == 1) {
        u1 = _mm512_adds_epu8(u1, vz8);
        u2 = _mm512_adds_epu8(u2, vz8);
    }
    const __m512i ia = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 0, 0, 0, 0);
    const __m512i ib = _mm512_setr_epi32(3, 7, 11, 15, 16, 20, 24, 28, 17, 21, 25, 29, 0, 0, 0, 0);
    _mm512_mask_storeu_epi8(da, kst, _mm512_permutexvar_epi32(ia, u1));
    if (db) _mm512_mask_storeu_epi8(db, kst, _mm512_permutex2var_epi32(u1, ib, u2));
}

// The rows of the requantising 8x48 kernel by the pack path (vnni_rq_pair48), rows in pairs; an
// odd last row as row a of a pair whose row b (the same row again, no residual) is not stored.
static inline __attribute__((always_inline)) EM_VNNI void vnni_rq_rows_pk(
    const __m512i c[8][3], int rows, const float *mults, int form, __m512i vz16,
    __m512i vz8, const __mmask16 km[3], __mmask64 kst, const uint8_t *rr, size_t res_ld, __m512i vzr,
    __m512 vrm, uint8_t *d, size_t dst_ld) {
    // (written out: a loop over the pairs is not unrolled by clang, and c must stay in registers)
#define EM_RQ_PAIR(i)                                                                                    \
    if ((i) < rows) {                                                                                    \
        const uint8_t *ra = rr ? rr + (i) * res_ld : NULL;                                               \
        if ((i) + 1 < rows)                                                                              \
            vnni_rq_pair48(c[i], c[(i) + 1], mults[i], mults[(i) + 1], form, vz16, vz8, km, kst,          \
                           ra, rr ? ra + res_ld : NULL, vzr, vrm, d + (i) * dst_ld, d + ((i) + 1) * dst_ld); \
        else                                                                                             \
            vnni_rq_pair48(c[i], c[i], mults[i], mults[i], form, vz16, vz8, km, kst, ra, NULL,            \
                           vzr, vrm, d + (i) * dst_ld, NULL);                                            \
    }
    EM_RQ_PAIR(0)
    EM_RQ_PAIR(2)
    EM_RQ_PAIR(4)
    EM_RQ_PAIR(6)
#undef EM_RQ_PAIR
}

// em_qukr_rq_fn of the 8x48 kernel: the sums (+ acc's) requantised from the registers. With
// 0 <= z_out <= 255, lo 0 or z_out and the layer's bound (t->nocl; every layer of the models) by
// the pack path (vnni_rq_pair48); otherwise with
// em_qrows_avx512's instructions per 16 lanes (vcvtdq2ps, vmulps, residual vmulps + vaddps,
// vmaxps/vminps, vcvtps2dq, vpaddd z_out, vpmovdb). Both give the contract's bytes. The int32 term
// is where the accumulators start when there is no acc (else added with acc's tile): int32
// additions wrap modulo 2^32 in any order, so the int32 value converted is em_qrows_avx512's.
// Lanes past nv are masked out of the residual loads and the stores (the last panel of a layer),
// rows past t->rows not stored (M ending inside the block; their terms and mults are not read).
EM_VNNI void em_qukr_rq_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                             const int32_t *acc, const em_qrq_tile *t) {
    // the tile's arguments in locals first (the byte stores could alias *t)
    const int nv = t->nv, rows = t->rows, nocl = t->nocl;
    const int32_t *terms = t->terms;
    const float *mults = t->mults;
    const int32_t z_out = t->z_out, lo = t->lo;
    const uint8_t *rr = t->res;
    const size_t res_ld = t->res_ld, dst_ld = t->dst_ld;
    uint8_t *d = t->dst;
    const __m512i vzr = _mm512_set1_epi32(t->z_res);
    const __m512 vrm = _mm512_set1_ps(t->res_mult);
    __m512i c[8][3];
    vnni_8x48_sums(kp, (const uint8_t *)wblk, panel, acc, rows, terms, nv, c);
    __mmask16 km[3];
    vnni_lane_masks(nv, 3, km);
    if (nocl && z_out >= 0 && z_out <= 255 && (lo == 0 || lo == z_out)) {
        const __mmask64 kst = nv >= 48 ? (__mmask64)0xFFFFFFFFFFFFull : (__mmask64)((1ull << nv) - 1);
        const __m512i vz16 = _mm512_set1_epi16((short)z_out), vz8 = _mm512_set1_epi8((char)z_out);
        const int form = z_out == 0 ? 2 : lo != 0;
#define EM_RQ_PK(RR)                                                                                     \
    if (form == 0) vnni_rq_rows_pk(c, rows, mults, 0, vz16, vz8, km, kst, RR, res_ld, vzr, vrm, d, dst_ld); \
    else if (form == 1) vnni_rq_rows_pk(c, rows, mults, 1, vz16, vz8, km, kst, RR, res_ld, vzr, vrm, d, dst_ld); \
    else vnni_rq_rows_pk(c, rows, mults, 2, vz16, vz8, km, kst, RR, res_ld, vzr, vrm, d, dst_ld);
        if (rr) {
            EM_RQ_PK(rr)
        } else {
            EM_RQ_PK(NULL)
        }
#undef EM_RQ_PK
        return;
    }
    const __m512 flo = _mm512_set1_ps((float)(lo - z_out)), fhi = _mm512_set1_ps((float)(255 - z_out));
    const __m512i vz = _mm512_set1_epi32(z_out);
    if (rr) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++)
            if (i < rows)
                vnni_rq_row48(c[i], mults[i], flo, fhi, vz, km, rr + i * res_ld, vzr, vrm, d + i * dst_ld);
    } else {
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++)
            if (i < rows) vnni_rq_row48(c[i], mults[i], flo, fhi, vz, km, NULL, vzr, vrm, d + i * dst_ld);
    }
}

// One row of 48 lanes requantised as vnni_rq_row48 without residual (the same instructions), the
// 48 bytes left in b[0..2] (lanes past the tile's nv hold bytes that are not stored).
static inline __attribute__((always_inline)) EM_VNNI void vnni_rq_bytes48(const __m512i c[3], float mult,
                                                                         __m512 flo, __m512 fhi, __m512i vz,
                                                                         __m128i b[3]) {
    const __m512 vm = _mm512_set1_ps(mult);
#pragma clang loop unroll(full)
    for (int j = 0; j < 3; j++) {
        __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(c[j]), vm), flo), fhi);
        b[j] = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), vz));
    }
}

// The deconvolution's row pair (a: dx 0, b: dx 1, one multiplier) by the pack path of
// vnni_rq_pair48 (the same conditions and bytes): vpackssdw of a_j with b_j, vpackuswb, then
// vpshufb interleaves each 128-bit lane's 4 pixels of a and b (output bytes 2 p, 2 p + 1) and
// vpermq puts the 8-byte groups in pixel order: o1 the output bytes 0..63, o2 64..95.
static inline __attribute__((always_inline)) EM_VNNI void vnni_rqdc_pair48(
    const __m512i ca[3], const __m512i cb[3], float mult, int form, __m512i vz16, __m512i vz8,
    __m512i *o1, __m256i *o2) {
    const __m512 vm = _mm512_set1_ps(mult);
    __m512i s[3];
#pragma clang loop unroll(full)
    for (int j = 0; j < 3; j++) {
        s[j] = _mm512_packs_epi32(vnni_rq_cvt16(ca[j], vm, NULL, 0, vz16, vm),
                                  vnni_rq_cvt16(cb[j], vm, NULL, 0, vz16, vm));
        if (form == 0) s[j] = _mm512_adds_epi16(s[j], vz16);
    }
    // u1 lane L: a0, b0, a1, b1 (4 pixels each); u2: a2, b2 (twice)
    __m512i u1 = _mm512_packus_epi16(s[0], s[1]), u2 = _mm512_packus_epi16(s[2], s[2]);
    if (form == 1) {
        u1 = _mm512_adds_epu8(u1, vz8);
        u2 = _mm512_adds_epu8(u2, vz8);
    }
    const __m512i zip = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15));
    const __m512i iq = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    *o1 = _mm512_permutexvar_epi64(iq, _mm512_shuffle_epi8(u1, zip));
    *o2 = _mm512_castsi512_si256(_mm512_permutexvar_epi64(iq, _mm512_shuffle_epi8(u2, zip)));
}

// A deconvolution row pair's 2 nv interleaved bytes (buf) whose pixels span input rows: one run
// per input row, from column x of the first (o: its output position).
static inline void rqdc_store_rows(uint8_t *o, const uint8_t *buf, int x, int nv, int W, size_t W2) {
    int xx = x, i = 0;
    while (i < nv) {
        const int seg = W - xx < nv - i ? W - xx : nv - i;
        memcpy(o, buf + 2 * i, (size_t)2 * seg);
        i += seg;
        o += 2 * W2 - 2 * (size_t)xx; // (y, xx) -> (y + 1, 0) of the same (co, dy)
        xx = 0;
    }
}

// em_qukr_rqdc_fn of the 8x48 kernel (QOUT_DECONV): the sums as em_qukr_rq_u8s8_avx512vnni_8x48
// (term where the accumulators start, or added with acc's tile); with 0 <= z_out <= 255, lo 0
// or z_out and the layer's bound (t->nocl) each row pair by the pack path (vnni_rqdc_pair48),
// else each row requantised with em_qrows_avx512's instructions (no residual), then per row pair (dx 0, dx 1) the two rows' bytes
// interleaved by unpacklo/hi (output bytes 2 p, 2 p + 1 = pixel p of dx 0, dx 1): 96 bytes,
// stored as one run (masked past 2 nv) when the pixels lie on one input row, else one run per
// input row from a stack copy.
EM_VNNI void em_qukr_rqdc_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                               const int32_t *acc, const em_qrq_dc *t) {
    const int nv = t->nv, rows = t->rows, W = t->W, H = t->H, n0 = t->n0;
    const int32_t *terms = t->terms;
    const float m0 = t->mults[0], m1 = rows > 4 ? t->mults[1] : 0.0f;
    const int32_t z_out = t->z_out, lo = t->lo;
    __m512i c[8][3];
    vnni_8x48_sums(kp, (const uint8_t *)wblk, panel, acc, rows, terms, nv, c);
    const __m512 flo = _mm512_set1_ps((float)(lo - z_out)), fhi = _mm512_set1_ps((float)(255 - z_out));
    const __m512i vz = _mm512_set1_epi32(z_out);
    const int y = n0 / W, x = n0 - y * W, one = x + nv <= W;
    const size_t W2 = (size_t)2 * W, plane = (size_t)4 * H * W;
    uint8_t *o0 = t->out + ((size_t)t->co0 * 2 * H + 2 * (size_t)y) * W2 + 2 * (size_t)x;
    if (t->nocl && z_out >= 0 && z_out <= 255 && (lo == 0 || lo == z_out)) { // the pack path
        const __m512i vz16 = _mm512_set1_epi16((short)z_out), vz8 = _mm512_set1_epi8((char)z_out);
        const int n2 = 2 * nv, form = z_out == 0 ? 2 : lo != 0;
        const __mmask64 k1 = n2 >= 64 ? ~(__mmask64)0 : (__mmask64)((1ull << n2) - 1);
        const __mmask32 k2 = n2 >= 96 ? ~(__mmask32)0 : n2 <= 64 ? 0 : (__mmask32)((1u << (n2 - 64)) - 1);
#pragma clang loop unroll(full)
        for (int p = 0; p < 4; p++) {
            if (2 * p >= rows) break;
            const float mult = p < 2 ? m0 : m1;
            __m512i v1;
            __m256i v2;
            if (form == 0) vnni_rqdc_pair48(c[2 * p], c[2 * p + 1], mult, 0, vz16, vz8, &v1, &v2);
            else if (form == 1) vnni_rqdc_pair48(c[2 * p], c[2 * p + 1], mult, 1, vz16, vz8, &v1, &v2);
            else vnni_rqdc_pair48(c[2 * p], c[2 * p + 1], mult, 2, vz16, vz8, &v1, &v2);
            uint8_t *o = o0 + (size_t)(p >> 1) * plane + (size_t)(p & 1) * W2;
            if (one) {
                _mm512_mask_storeu_epi8(o, k1, v1);
                _mm256_mask_storeu_epi8(o + 64, k2, v2);
            } else {
                uint8_t buf[96];
                _mm512_storeu_si512((void *)buf, v1);
                _mm256_storeu_si256((__m256i *)(void *)(buf + 64), v2);
                rqdc_store_rows(o, buf, x, nv, W, W2);
            }
        }
        return;
    }
    __mmask16 km[6];
    vnni_lane_masks(2 * nv, 6, km);
#pragma clang loop unroll(full)
    for (int p = 0; p < 4; p++) {
        if (2 * p >= rows) break;
        const float mult = p < 2 ? m0 : m1;
        __m128i a[3], b[3], v[6];
        vnni_rq_bytes48(c[2 * p], mult, flo, fhi, vz, a);
        vnni_rq_bytes48(c[2 * p + 1], mult, flo, fhi, vz, b);
#pragma clang loop unroll(full)
        for (int j = 0; j < 3; j++) {
            v[2 * j] = _mm_unpacklo_epi8(a[j], b[j]);
            v[2 * j + 1] = _mm_unpackhi_epi8(a[j], b[j]);
        }
        uint8_t *o = o0 + (size_t)(p >> 1) * plane + (size_t)(p & 1) * W2;
        if (one) {
#pragma clang loop unroll(full)
            for (int q = 0; q < 6; q++) _mm_mask_storeu_epi8(o + 16 * q, km[q], v[q]);
        } else {
            uint8_t buf[96];
#pragma clang loop unroll(full)
            for (int q = 0; q < 6; q++) _mm_storeu_si128((__m128i *)(void *)(buf + 16 * q), v[q]);
            rqdc_store_rows(o, buf, x, nv, W, W2);
        }
    }
}

// em_qukr_rqnm_fn of the 8x48 kernel (linear layers, [N][M] outputs): the sums as
// em_qukr_rq_u8s8_avx512vnni_8x48 (the term where the accumulators start, or added with acc's
// tile). u8: each row requantised with em_qrows_avx512's instructions (no residual), then the
// 8 x 16 bytes of each third transposed by byte / word / dword unpacks (pixel p's 8 rows in one
// 8-byte half), one masked 8-byte store per pixel. f32: (float)sum * mult per row (vcvtdq2ps,
// vmulps: the scalar epilogue's conversion and one rounding), the 8 x 16 floats transposed by
// unpack / shuffle within 128-bit lanes (pixel 4 l + s: rows 0-3 in lane l of b[s], rows 4-7 in
// lane l of b[4 + s]), one masked 8-float store per pixel.
EM_VNNI void em_qukr_rqnm_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                               const int32_t *acc, const em_qrq_nm *t) {
    const int nv = t->nv, rows = t->rows;
    const int32_t *terms = t->terms;
    const float *mults = t->mults;
    const size_t M = t->M;
    uint8_t *out = t->out;
    float *outf = t->outf;
    const int32_t z_out = t->z_out, lo = t->lo;
    __m512i c[8][3];
    vnni_8x48_sums(kp, (const uint8_t *)wblk, panel, acc, rows, terms, nv, c);
    float mv[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) mv[i] = i < rows ? mults[i] : 0.0f;
    if (out) {
        const __m512 flo = _mm512_set1_ps((float)(lo - z_out)), fhi = _mm512_set1_ps((float)(255 - z_out));
        const __m512i vz = _mm512_set1_epi32(z_out);
        const __mmask16 km = (__mmask16)((1u << rows) - 1);
        __m128i b[8][3];
#pragma clang loop unroll(full)
        for (int i = 0; i < 8; i++) vnni_rq_bytes48(c[i], mv[i], flo, fhi, vz, b[i]);
#pragma clang loop unroll(full)
        for (int j = 0; j < 3; j++) {
            if (16 * j >= nv) break;
            __m128i t0l = _mm_unpacklo_epi8(b[0][j], b[1][j]), t0h = _mm_unpackhi_epi8(b[0][j], b[1][j]);
            __m128i t1l = _mm_unpacklo_epi8(b[2][j], b[3][j]), t1h = _mm_unpackhi_epi8(b[2][j], b[3][j]);
            __m128i t2l = _mm_unpacklo_epi8(b[4][j], b[5][j]), t2h = _mm_unpackhi_epi8(b[4][j], b[5][j]);
            __m128i t3l = _mm_unpacklo_epi8(b[6][j], b[7][j]), t3h = _mm_unpackhi_epi8(b[6][j], b[7][j]);
            // u[q]: pixels 4 q .. 4 q + 3, rows 0-3 (4 bytes each); v[q]: rows 4-7
            __m128i u[4] = {_mm_unpacklo_epi16(t0l, t1l), _mm_unpackhi_epi16(t0l, t1l),
                            _mm_unpacklo_epi16(t0h, t1h), _mm_unpackhi_epi16(t0h, t1h)};
            __m128i v[4] = {_mm_unpacklo_epi16(t2l, t3l), _mm_unpackhi_epi16(t2l, t3l),
                            _mm_unpacklo_epi16(t2h, t3h), _mm_unpackhi_epi16(t2h, t3h)};
            uint8_t *o = out + (size_t)16 * j * M;
#pragma clang loop unroll(full)
            for (int q = 0; q < 4; q++) {
                const int p = 16 * j + 4 * q;
                __m128i w0 = _mm_unpacklo_epi32(u[q], v[q]), w1 = _mm_unpackhi_epi32(u[q], v[q]);
                if (p < nv) _mm_mask_storeu_epi8(o, km, w0);
                if (p + 1 < nv) _mm_mask_storeu_epi8(o + M, km, _mm_srli_si128(w0, 8));
                if (p + 2 < nv) _mm_mask_storeu_epi8(o + 2 * M, km, w1);
                if (p + 3 < nv) _mm_mask_storeu_epi8(o + 3 * M, km, _mm_srli_si128(w1, 8));
                o += 4 * M;
            }
        }
    } else {
        const __mmask8 km = (__mmask8)((1u << rows) - 1);
#pragma clang loop unroll(full)
        for (int j = 0; j < 3; j++) {
            if (16 * j >= nv) break;
            __m512 r[8];
#pragma clang loop unroll(full)
            for (int i = 0; i < 8; i++) r[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(c[i][j]), _mm512_set1_ps(mv[i]));
            __m512 a[8], bq[8];
#pragma clang loop unroll(full)
            for (int h = 0; h < 4; h++) {
                a[2 * h] = _mm512_unpacklo_ps(r[2 * h], r[2 * h + 1]);
                a[2 * h + 1] = _mm512_unpackhi_ps(r[2 * h], r[2 * h + 1]);
            }
#pragma clang loop unroll(full)
            for (int h = 0; h < 2; h++) { // h 0: rows 0-3 from a[0..3], h 1: rows 4-7 from a[4..7]
                const __m512 *aa = a + 4 * h;
                bq[4 * h + 0] = _mm512_shuffle_ps(aa[0], aa[2], 0x44);
                bq[4 * h + 1] = _mm512_shuffle_ps(aa[0], aa[2], 0xEE);
                bq[4 * h + 2] = _mm512_shuffle_ps(aa[1], aa[3], 0x44);
                bq[4 * h + 3] = _mm512_shuffle_ps(aa[1], aa[3], 0xEE);
            }
            float *o = outf + (size_t)16 * j * M;
            // (the lane index of vextractf32x4 must be a constant)
#define EM_NM_F32_LANE(l)                                                                                  \
    for (int s = 0; s < 4; s++) {                                                                          \
        if (16 * j + 4 * (l) + s < nv)                                                                     \
            _mm256_mask_storeu_ps(o + (size_t)(4 * (l) + s) * M, km,                                       \
                                  _mm256_insertf128_ps(_mm256_castps128_ps256(_mm512_extractf32x4_ps(bq[s], l)), \
                                                       _mm512_extractf32x4_ps(bq[4 + s], l), 1));          \
    }
            EM_NM_F32_LANE(0)
            EM_NM_F32_LANE(1)
            EM_NM_F32_LANE(2)
            EM_NM_F32_LANE(3)
#undef EM_NM_F32_LANE
        }
    }
}
#endif

#if defined(__x86_64__)
// em_qukr_rqf_fn of the 8x48 kernel (QOUT_CHW_F32: the RPN head's logits and deltas): the sums as
// em_qukr_rq_u8s8_avx512vnni_8x48 (the term where the accumulators start, or added with acc's
// tile), then per row (float)sum * mult (vcvtdq2ps, vmulps: the driver's epilogue, one rounding)
// stored straight from the registers, lanes past nv masked off: no int32 tile stored and read
// back, no scalar epilogue pass.
EM_VNNI void em_qukr_rqf_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel,
                                              const int32_t *acc, const em_qrq_f32 *t) {
    const int nv = t->nv, rows = t->rows;
    const int32_t *terms = t->terms;
    const float *mults = t->mults;
    float *d = t->dst;
    const size_t ld = t->dst_ld;
    __m512i c[8][3];
    vnni_8x48_sums(kp, (const uint8_t *)wblk, panel, acc, rows, terms, nv, c);
    __mmask16 km[3];
    vnni_lane_masks(nv, 3, km);
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        if (i >= rows) break;
        const __m512 vm = _mm512_set1_ps(mults[i]);
#pragma clang loop unroll(full)
        for (int j = 0; j < 3; j++)
            _mm512_mask_storeu_ps(d + i * ld + 16 * j, km[j], _mm512_mul_ps(_mm512_cvtepi32_ps(c[i][j]), vm));
    }
}
#endif

#if defined(__x86_64__)
#define EM_AVX512Q __attribute__((target("avx512f,avx512bw,avx512vl")))
// Requantisation row, 16 lanes (masked tail, so every element goes through the same
// instructions): vcvtdq2ps, vmulps (+ residual vmulps, vaddps), then one float clamp to
// [lo - z_out, 255 - z_out] (vmaxps/vminps; NaN -> the lower bound), vcvtps2dq (round half
// even), + z_out, narrow. The same bytes as em_q_finish: its bounds are integers, and rounding is
// monotonic and keeps integers, so clamping before rounding equals clamping after (and covers
// its +-2^24 clamp); a NaN goes to lo in both.
EM_AVX512Q void em_qrow_avx512(const int32_t *acc, int n, float mult, int32_t z_out, int32_t lo,
                               const uint8_t *res, int32_t z_res, float res_mult, uint8_t *dst) {
    const __m512 vm = _mm512_set1_ps(mult), vrm = _mm512_set1_ps(res_mult);
    const __m512 flo = _mm512_set1_ps((float)(lo - z_out)), fhi = _mm512_set1_ps((float)(255 - z_out));
    const __m512i vz = _mm512_set1_epi32(z_out), vzr = _mm512_set1_epi32(z_res);
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, acc + i)), vm);
        if (res) {
            __m512i r = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, res + i));
            __m512 rv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(r, vzr)), vrm);
            v = _mm512_add_ps(v, rv);
        }
        v = _mm512_min_ps(_mm512_max_ps(v, flo), fhi);
        __m512i y = _mm512_add_epi32(_mm512_cvtps_epi32(v), vz);
        _mm_mask_storeu_epi8(dst + i, k, _mm512_cvtepi32_epi8(y));
    }
}

// em_qrows_fn: em_qrow_avx512 over the rows of one accumulator tile, with the int32 term added
// first; the constants are set up once per tile and every element goes through em_qrow_avx512's
// instruction sequence.
EM_AVX512Q void em_qrows_avx512(int32_t *acc, int ld_acc, int rows, int n, const int32_t *terms,
                                const float *mults, int32_t z_out, int32_t lo, const uint8_t *res,
                                size_t res_ld, int32_t z_res, float res_mult, uint8_t *dst,
                                size_t dst_ld) {
    const __m512 vrm = _mm512_set1_ps(res_mult);
    const __m512 flo = _mm512_set1_ps((float)(lo - z_out)), fhi = _mm512_set1_ps((float)(255 - z_out));
    const __m512i vz = _mm512_set1_epi32(z_out), vzr = _mm512_set1_epi32(z_res);
    for (int r = 0; r < rows; r++) {
        const int32_t *a = acc + (size_t)r * ld_acc;
        const __m512i vt = _mm512_set1_epi32(terms[r]);
        const __m512 vm = _mm512_set1_ps(mults[r]);
        uint8_t *d = dst + (size_t)r * dst_ld;
        const uint8_t *rr = res ? res + (size_t)r * res_ld : NULL;
        for (int i = 0; i < n; i += 16) {
            __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
            __m512i ai = _mm512_add_epi32(_mm512_maskz_loadu_epi32(k, a + i), vt);
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(ai), vm);
            if (rr) {
                __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, rr + i));
                __m512 rv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, vzr)), vrm);
                v = _mm512_add_ps(v, rv);
            }
            v = _mm512_min_ps(_mm512_max_ps(v, flo), fhi);
            __m512i y = _mm512_add_epi32(_mm512_cvtps_epi32(v), vz);
            _mm_mask_storeu_epi8(d + i, k, _mm512_cvtepi32_epi8(y));
        }
    }
}
#endif
