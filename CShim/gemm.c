// Blocked, packed SGEMM driver (Goto/BLIS loop order) shared by every ISA: the ISA only supplies
// the register-tile micro-kernel and the block sizes (dispatch.c). B is packed per (NC, KC) block
// straight from its source, which for a convolution is the image itself (the im2col tile is built
// in the packed panel, so no im2col matrix is ever materialised). A is packed per (MC, KC) block.
// Threads get disjoint ranges of output tiles; every output element goes through the same
// sequence of operations whatever the thread count, so results are bitwise identical.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "em_internal.h"

// Baseline SIMD of the target (not run-time dispatched): SSE2 on x86-64, NEON on aarch64. Used
// only for the 4x4 transposes of the A packing.
#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

// ---------------------------------------------------------------- per-thread packing buffers

typedef struct {
    float *a, *b;
    size_t acap, bcap; // floats
} packbuf;

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void buf_free(void *p) {
    packbuf *pb = (packbuf *)p;
    if (!pb) return;
    free(pb->a);
    free(pb->b);
    free(pb);
}
static void buf_key_init(void) { pthread_key_create(&buf_key, buf_free); }

static float *alloc_floats(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) return NULL;
    return (float *)p;
}

// The calling thread's buffers with room for na and nb floats, or NULL.
static packbuf *thread_bufs(size_t na, size_t nb) {
    pthread_once(&buf_once, buf_key_init);
    packbuf *pb = (packbuf *)pthread_getspecific(buf_key);
    if (!pb) {
        pb = (packbuf *)calloc(1, sizeof *pb);
        if (!pb) return NULL;
        if (pthread_setspecific(buf_key, pb) != 0) {
            free(pb);
            return NULL;
        }
    }
    if (pb->acap < na) {
        free(pb->a);
        pb->a = alloc_floats(na);
        pb->acap = pb->a ? na : 0;
        if (!pb->a) return NULL;
    }
    if (pb->bcap < nb) {
        free(pb->b);
        pb->b = alloc_floats(nb);
        pb->bcap = pb->b ? nb : 0;
        if (!pb->b) return NULL;
    }
    return pb;
}

// ---------------------------------------------------------------- packing

// A block rows [m0, m0+mc) x cols [k0, k0+kc) into MR-row panels: panel p holds kc groups of MR.
static void pack_a(const em_gemm_job *j, int m0, int mc, int k0, int kc, int MR, float *dst) {
    for (int p = 0; p < mc; p += MR) {
        int mr = mc - p < MR ? mc - p : MR;
        float *d = dst + (size_t)p * kc;
        const float *base = j->A + (size_t)(m0 + p) * j->a_rs + (size_t)k0 * j->a_cs;
        if (j->a_cs == 1 && mr == MR) {
            // Rows are contiguous in k: transpose 4 rows x 4 k at a time so that the writes of
            // each k's MR values are contiguous.
            const size_t rs = (size_t)j->a_rs;
            int k = 0;
            for (; k + 4 <= kc; k += 4) {
                int i = 0;
                for (; i + 4 <= MR; i += 4) {
                    const float *s0 = base + i * rs + k;
                    float *o = d + (size_t)k * MR + i;
#if defined(__SSE2__)
                    __m128 r0 = _mm_loadu_ps(s0), r1 = _mm_loadu_ps(s0 + rs),
                           r2 = _mm_loadu_ps(s0 + 2 * rs), r3 = _mm_loadu_ps(s0 + 3 * rs);
                    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                    _mm_storeu_ps(o, r0);
                    _mm_storeu_ps(o + MR, r1);
                    _mm_storeu_ps(o + 2 * MR, r2);
                    _mm_storeu_ps(o + 3 * MR, r3);
#elif defined(__ARM_NEON)
                    float32x4x2_t t01 = vtrnq_f32(vld1q_f32(s0), vld1q_f32(s0 + rs));
                    float32x4x2_t t23 = vtrnq_f32(vld1q_f32(s0 + 2 * rs), vld1q_f32(s0 + 3 * rs));
                    vst1q_f32(o, vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0])));
                    vst1q_f32(o + MR, vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1])));
                    vst1q_f32(o + 2 * MR, vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0])));
                    vst1q_f32(o + 3 * MR, vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1])));
#else
                    for (int kk = 0; kk < 4; kk++)
                        for (int ii = 0; ii < 4; ii++) o[kk * MR + ii] = s0[ii * rs + kk];
#endif
                }
                for (; i < MR; i++) {
                    const float *s1 = base + i * rs + k;
                    for (int kk = 0; kk < 4; kk++) d[(size_t)(k + kk) * MR + i] = s1[kk];
                }
            }
            for (; k < kc; k++)
                for (int i = 0; i < MR; i++) d[(size_t)k * MR + i] = base[i * rs + k];
        } else if (j->a_cs == 1) {
            for (int i = 0; i < mr; i++) {
                const float *s = base + (size_t)i * j->a_rs;
                for (int k = 0; k < kc; k++) d[(size_t)k * MR + i] = s[k];
            }
        } else if (j->a_rs == 1) {
            for (int k = 0; k < kc; k++) {
                const float *s = base + (size_t)k * j->a_cs;
                for (int i = 0; i < mr; i++) d[(size_t)k * MR + i] = s[i];
            }
        } else {
            for (int k = 0; k < kc; k++)
                for (int i = 0; i < mr; i++) d[(size_t)k * MR + i] = base[(size_t)i * j->a_rs + (size_t)k * j->a_cs];
        }
        if (mr < MR)
            for (int k = 0; k < kc; k++)
                for (int i = mr; i < MR; i++) d[(size_t)k * MR + i] = 0.0f;
    }
}

// B block rows [k0, k0+kc) x cols [n0, n0+nc) into NR-column panels (panel p: kc rows of NR
// values), zero-padded to NR. Panel by panel, so that the writes are sequential.
static void pack_b(const em_gemm_job *j, int k0, int kc, int n0, int nc, int NR, float *dst) {
    for (int c0 = 0; c0 < nc; c0 += NR) {
        int nr = nc - c0 < NR ? nc - c0 : NR;
        float *d = dst + (size_t)c0 * kc;
        int n = n0 + c0;
        if (j->b_kind == EM_B_STRIDED) {
            if (j->b_cs == 1) {
                const float *s = j->B + (size_t)k0 * j->b_rs + n;
                if (nr == NR) {
                    for (int k = 0; k < kc; k++, s += j->b_rs, d += NR) memcpy(d, s, NR * sizeof(float));
                } else {
                    for (int k = 0; k < kc; k++, s += j->b_rs, d += NR) {
                        memcpy(d, s, nr * sizeof(float));
                        memset(d + nr, 0, (NR - nr) * sizeof(float));
                    }
                }
            } else {
                // Columns contiguous in k (a Linear weight): read each column, write strided by NR.
                for (int t = 0; t < nr; t++) {
                    const float *s = j->B + (size_t)(n + t) * j->b_cs + (size_t)k0 * j->b_rs;
                    for (int k = 0; k < kc; k++) d[(size_t)k * NR + t] = s[(size_t)k * j->b_rs];
                }
                if (nr < NR)
                    for (int k = 0; k < kc; k++) memset(d + (size_t)k * NR + nr, 0, (NR - nr) * sizeof(float));
            }
            continue;
        }
        // Convolution: split the panel's columns into runs within one output row.
        enum { MAXSEG = 64 };
        int seg_c[MAXSEG], seg_oy[MAXSEG], seg_ox[MAXSEG], seg_len[MAXSEG], nseg = 0;
        {
            int oy = n / j->OW, ox = n - oy * j->OW, c = 0;
            while (c < nr && nseg < MAXSEG) {
                int len = j->OW - ox < nr - c ? j->OW - ox : nr - c;
                seg_c[nseg] = c;
                seg_oy[nseg] = oy;
                seg_ox[nseg] = ox;
                seg_len[nseg] = len;
                nseg++;
                c += len;
                ox = 0;
                oy++;
            }
        }
        const int H = j->H, W = j->W, KH = j->KH, KW = j->KW, s = j->stride, pad = j->pad;
        int ci = k0 / (KH * KW), r = k0 - ci * (KH * KW), ky = r / KW, kx = r - ky * KW;
        for (int k = 0; k < kc; k++, d += NR) {
            const float *plane = j->B + (size_t)ci * H * W;
            for (int g = 0; g < nseg; g++) {
                float *o = d + seg_c[g];
                int len = seg_len[g];
                int iy = seg_oy[g] * s - pad + ky;
                if (iy < 0 || iy >= H) {
                    for (int t = 0; t < len; t++) o[t] = 0.0f;
                    continue;
                }
                const float *row = plane + (size_t)iy * W;
                int ix0 = seg_ox[g] * s - pad + kx;
                // valid t: 0 <= ix0 + t*s < W (no division on the common stride-1 path)
                int tlo, thi;
                em_conv_segment(ix0, s, W, len, &tlo, &thi);
                int t = 0;
                for (; t < tlo; t++) o[t] = 0.0f;
                if (s == 1) {
                    const float *src = row + ix0;
                    for (; t < thi; t++) o[t] = src[t];
                } else {
                    for (; t < thi; t++) o[t] = row[ix0 + t * s];
                }
                for (; t < len; t++) o[t] = 0.0f;
            }
            for (int t = nr; t < NR; t++) d[t] = 0.0f;
            if (++kx == KW) {
                kx = 0;
                if (++ky == KH) {
                    ky = 0;
                    ci++;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- epilogue and macro-kernel

static void epilogue(const em_gemm_job *j, int m, int n, int mr, int nr) {
    for (int i = 0; i < mr; i++) {
        float *c = j->C + (size_t)(m + i) * j->ldc + n;
        if (j->bias_row) {
            float b = j->bias_row[m + i];
            for (int t = 0; t < nr; t++) c[t] += b;
        }
        if (j->bias_col)
            for (int t = 0; t < nr; t++) c[t] += j->bias_col[n + t];
        if (j->res) {
            const float *r = j->res + (size_t)(m + i) * j->ldr + n;
            for (int t = 0; t < nr; t++) c[t] += r[t];
        }
        if (j->relu)
            for (int t = 0; t < nr; t++) c[t] = c[t] < 0.0f ? 0.0f : c[t];
    }
}

static int needs_epilogue(const em_gemm_job *j) {
    return j->bias_row || j->bias_col || j->res || j->relu;
}

typedef struct {
    const em_gemm_job *job;
    const em_gemm_params *P;
    int split_n;   // 1: tasks split N, 0: tasks split M
    int ntasks, tiles;
    volatile int failed;
} run_ctx;

static void run_range(const em_gemm_job *j, const em_gemm_params *P, int m_lo, int m_hi, int n_lo,
                      int n_hi, int *failed) {
    const int MR = P->mr, NR = P->nr, KC = P->kc, MC = P->mc, NC = P->nc;
    const int K = j->K;
    const int epi = needs_epilogue(j);
    if (K <= 0) {
        for (int m = m_lo; m < m_hi; m++) {
            float *c = j->C + (size_t)m * j->ldc;
            if (!j->accumulate)
                for (int n = n_lo; n < n_hi; n++) c[n] = 0.0f;
        }
        if (epi) epilogue(j, m_lo, n_lo, m_hi - m_lo, n_hi - n_lo);
        return;
    }
    int kcmax = K < KC ? K : KC;
    packbuf *pb = thread_bufs((size_t)MC * kcmax, (size_t)kcmax * NC);
    if (!pb) {
        *failed = 1;
        return;
    }
    float tile[32 * 32] __attribute__((aligned(64)));
    for (int jc = n_lo; jc < n_hi; jc += NC) {
        int nc = n_hi - jc < NC ? n_hi - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC;
            int load_c = pc > 0 || j->accumulate;
            int last = pc + kc >= K;
            pack_b(j, pc, kc, jc, nc, NR, pb->b);
            for (int ic = m_lo; ic < m_hi; ic += MC) {
                int mc = m_hi - ic < MC ? m_hi - ic : MC;
                pack_a(j, ic, mc, pc, kc, MR, pb->a);
                for (int jr = 0; jr < nc; jr += NR) {
                    int nr = nc - jr < NR ? nc - jr : NR;
                    const float *Bp = pb->b + (size_t)jr * kc;
                    for (int ir = 0; ir < mc; ir += MR) {
                        int mr = mc - ir < MR ? mc - ir : MR;
                        const float *Ap = pb->a + (size_t)ir * kc;
                        float *Cp = j->C + (size_t)(ic + ir) * j->ldc + jc + jr;
                        if (mr == MR && nr == NR) {
                            const em_epi *e = NULL;
                            em_epi ep;
                            if (last && epi) {
                                int m = ic + ir, n = jc + jr;
                                ep.bias_row = j->bias_row ? j->bias_row + m : NULL;
                                ep.bias_col = j->bias_col ? j->bias_col + n : NULL;
                                ep.res = j->res ? j->res + (size_t)m * j->ldr + n : NULL;
                                ep.ldr = j->ldr;
                                ep.relu = j->relu;
                                e = &ep;
                            }
                            P->ukr(kc, Ap, Bp, Cp, j->ldc, load_c, e);
                        } else {
                            // Edge tile: through a full-size temporary, then the same epilogue
                            // operations in scalar code (identical float arithmetic).
                            if (load_c)
                                for (int i = 0; i < mr; i++)
                                    memcpy(tile + i * NR, Cp + (size_t)i * j->ldc, nr * sizeof(float));
                            if (nr <= NR / 2 && P->ukr_half)
                                P->ukr_half(kc, Ap, Bp, tile, NR, load_c, NULL);
                            else
                                P->ukr(kc, Ap, Bp, tile, NR, load_c, NULL);
                            for (int i = 0; i < mr; i++)
                                memcpy(Cp + (size_t)i * j->ldc, tile + i * NR, nr * sizeof(float));
                            if (last && epi) epilogue(j, ic + ir, jc + jr, mr, nr);
                        }
                    }
                }
            }
        }
    }
}

static void run_task(void *vctx, int t) {
    run_ctx *x = (run_ctx *)vctx;
    const em_gemm_job *j = x->job;
    int t0, t1, failed = 0;
    em_task_range(x->tiles, t, x->ntasks, &t0, &t1);
    if (x->split_n) {
        int n0 = t0 * x->P->nr, n1 = t1 * x->P->nr;
        if (n1 > j->N) n1 = j->N;
        if (n0 < n1) run_range(j, x->P, 0, j->M, n0, n1, &failed);
    } else {
        int m0 = t0 * x->P->mr, m1 = t1 * x->P->mr;
        if (m1 > j->M) m1 = j->M;
        if (m0 < m1) run_range(j, x->P, m0, m1, 0, j->N, &failed);
    }
    if (failed) x->failed = 1;
}

int em_gemm_run(const em_gemm_job *j) {
    if (j->M <= 0 || j->N <= 0) return 0;
    const em_gemm_params *P = em_gemm_params_current();
    int nth = em_num_threads();
    int ntn = (j->N + P->nr - 1) / P->nr, ntm = (j->M + P->mr - 1) / P->mr;
    run_ctx x = {j, P, 1, 1, ntn, 0};
    if (nth > 1) {
        // Split the dimension whose tiles spread more evenly over the threads (N on near-ties:
        // each thread then packs only its own im2col columns); tiny problems stay on one thread.
        double en = (double)ntn / (nth * ((ntn + nth - 1) / nth));
        double em = (double)ntm / (nth * ((ntm + nth - 1) / nth));
        if (en >= em - 0.05) {
            x.split_n = 1;
            x.tiles = ntn;
        } else {
            x.split_n = 0;
            x.tiles = ntm;
        }
        x.ntasks = nth < x.tiles ? nth : x.tiles;
        if ((double)j->M * j->N * (j->K > 0 ? j->K : 1) < 32768.0) x.ntasks = 1;
    }
    if (x.ntasks <= 1) {
        int failed = 0;
        run_range(j, P, 0, j->M, 0, j->N, &failed);
        return failed ? -1 : 0;
    }
    em_parallel(x.ntasks, run_task, &x);
    return x.failed ? -1 : 0;
}

// ---------------------------------------------------------------- portable micro-kernel

void em_ukr_generic_4x16(int kc, const float *Ap, const float *Bp, float *C, long ldc, int load_c,
                         const em_epi *epi) {
    float acc[4][16];
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < 16; t++) acc[i][t] = 0.0f;
    for (int k = 0; k < kc; k++) {
        const float *b = Bp + (size_t)k * 16;
        for (int i = 0; i < 4; i++) {
            float a = Ap[(size_t)k * 4 + i];
            for (int t = 0; t < 16; t++) acc[i][t] += a * b[t];
        }
    }
    for (int i = 0; i < 4; i++) {
        float *c = C + (size_t)i * ldc;
        for (int t = 0; t < 16; t++) {
            float x = load_c ? c[t] + acc[i][t] : acc[i][t];
            if (epi) {
                if (epi->bias_row) x += epi->bias_row[i];
                if (epi->bias_col) x += epi->bias_col[t];
                if (epi->res) x += epi->res[(size_t)i * epi->ldr + t];
                if (epi->relu) x = x < 0.0f ? 0.0f : x;
            }
            c[t] = x;
        }
    }
}

// ---------------------------------------------------------------- public entry points (em_kernels.h)

void em_sgemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc, const float *bias, int accumulate, int relu) {
    if (M <= 0 || N <= 0) return;
    em_gemm_job j;
    memset(&j, 0, sizeof j);
    j.M = M;
    j.N = N;
    j.K = K;
    j.A = A;
    j.a_rs = lda;
    j.a_cs = 1;
    j.b_kind = EM_B_STRIDED;
    j.B = B;
    j.b_rs = ldb;
    j.b_cs = 1;
    j.C = C;
    j.ldc = ldc;
    j.bias_row = bias;
    j.accumulate = accumulate;
    j.relu = relu;
    if (em_gemm_run(&j) != 0) em_sgemm_ref(M, N, K, A, lda, B, ldb, C, ldc, bias, accumulate, relu);
}

size_t em_conv2d_f32_scratch_bytes(int Cin, int H, int W, int Cout, int KH, int KW, int stride,
                                   int pad) {
    // The im2col tiles are packed straight into the GEMM driver's per-thread panels, so a
    // convolution needs no caller scratch.
    (void)Cin, (void)H, (void)W, (void)Cout, (void)KH, (void)KW, (void)stride, (void)pad;
    return 0;
}

void em_conv2d_f32(const float *in, int Cin, int H, int W, const float *weight, const float *bias,
                   int Cout, int KH, int KW, int stride, int pad, const float *residual, int relu,
                   float *out, void *scratch) {
    (void)scratch;
    if (Cout <= 0 || stride <= 0) return;
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    if (OH <= 0 || OW <= 0 || H + 2 * pad < KH || W + 2 * pad < KW) return;
    em_gemm_job j;
    memset(&j, 0, sizeof j);
    j.M = Cout;
    j.N = OH * OW;
    j.K = Cin * KH * KW;
    j.A = weight;
    j.a_rs = j.K;
    j.a_cs = 1;
    if (KH == 1 && KW == 1 && stride == 1 && pad == 0) {
        j.b_kind = EM_B_STRIDED; // 1x1 stride 1: the input is the B matrix
        j.B = in;
        j.b_rs = (long)H * W;
        j.b_cs = 1;
    } else {
        j.b_kind = EM_B_CONV;
        j.B = in;
        j.H = H;
        j.W = W;
        j.KH = KH;
        j.KW = KW;
        j.stride = stride;
        j.pad = pad;
        j.OW = OW;
    }
    j.C = out;
    j.ldc = j.N;
    j.bias_row = bias;
    j.relu = relu;
    if (residual == out) {
        j.accumulate = 1; // out already holds the residual: add into it
        residual = NULL;
    }
    j.res = residual;
    j.ldr = j.N;
    if (em_gemm_run(&j) != 0)
        em_conv2d_f32_ref(in, Cin, H, W, weight, bias, Cout, KH, KW, stride, pad, residual, relu, out);
}

size_t em_deconv2x2s2_f32_scratch_bytes(int Cin, int H, int W, int Cout) {
    (void)Cin;
    return (size_t)4 * Cout * H * W * sizeof(float);
}

/// The columns of a transposed convolution: tmp[(co, tap), pixel] = sum_ci W[ci, (co, tap)] *
/// in[ci, pixel] for weight [Cin, cols] (torch's ConvTranspose2d layout, cols = Cout * taps): one
/// GEMM with A = W^T. Non-zero when the GEMM cannot run (the caller falls back to the reference).
static int deconv_columns(const float *in, int Cin, int HW, const float *weight, int cols, float *tmp) {
    em_gemm_job j = {
        .M = cols, .N = HW, .K = Cin,
        .A = weight, .a_rs = 1, .a_cs = cols,
        .b_kind = EM_B_STRIDED, .B = in, .b_rs = HW, .b_cs = 1,
        .C = tmp, .ldc = HW,
    };
    return em_gemm_run(&j);
}

void em_deconv2x2s2_f32(const float *in, int Cin, int H, int W, const float *weight,
                        const float *bias, int Cout, int relu, float *out, void *scratch) {
    if (Cout <= 0 || H <= 0 || W <= 0) return;
    float *tmp = (float *)scratch;
    if (!tmp) {
        em_deconv2x2s2_f32_ref(in, Cin, H, W, weight, bias, Cout, relu, out);
        return;
    }
    // tmp[(co, dy, dx), (y, x)] = sum_ci W[ci, co, dy, dx] * in[ci, y, x]
    if (deconv_columns(in, Cin, H * W, weight, 4 * Cout, tmp) != 0) {
        em_deconv2x2s2_f32_ref(in, Cin, H, W, weight, bias, Cout, relu, out);
        return;
    }
    int OW = 2 * W;
    for (int co = 0; co < Cout; co++) {
        float b = bias ? bias[co] : 0.0f;
        for (int d = 0; d < 4; d++) {
            const float *t = tmp + ((size_t)co * 4 + d) * H * W;
            int dy = d >> 1, dx = d & 1;
            for (int y = 0; y < H; y++) {
                float *o = out + ((size_t)co * 2 * H + 2 * y + dy) * OW + dx;
                const float *tr = t + (size_t)y * W;
                for (int x = 0; x < W; x++) {
                    float v = tr[x] + b;
                    if (relu && v < 0.0f) v = 0.0f;
                    o[2 * x] = v;
                }
            }
        }
    }
}

size_t em_deconv4x4s2p1_f32_scratch_bytes(int Cin, int H, int W, int Cout) {
    (void)Cin;
    if (H <= 0 || W <= 0 || Cout <= 0) return 0;
    return (size_t)16 * Cout * H * W * sizeof(float);
}

void em_deconv4x4s2p1_f32(const float *in, int Cin, int H, int W, const float *weight,
                          const float *bias, int Cout, float *out, void *scratch) {
    if (Cout <= 0 || H <= 0 || W <= 0) return;
    float *tmp = (float *)scratch;
    if (!tmp) {
        em_deconv4x4s2p1_f32_ref(in, Cin, H, W, weight, bias, Cout, out);
        return;
    }
    // tmp[(co, ky, kx), (iy, ix)] = sum_ci W[ci, co, ky, kx] * in[ci, iy, ix]
    if (deconv_columns(in, Cin, H * W, weight, 16 * Cout, tmp) != 0) {
        em_deconv4x4s2p1_f32_ref(in, Cin, H, W, weight, bias, Cout, out);
        return;
    }
    int OH = 2 * H, OW = 2 * W;
    for (int co = 0; co < Cout; co++) {
        float *a = out + (size_t)co * OH * OW, b = bias ? bias[co] : 0.0f;
        for (int p = 0; p < OH * OW; p++) a[p] = 0.0f;
        for (int ky = 0; ky < 4; ky++)
            for (int kx = 0; kx < 4; kx++) {
                const float *c = tmp + ((size_t)co * 16 + ky * 4 + kx) * H * W;
                int y0 = ky == 0 ? 1 : 0, y1 = ky == 3 ? H - 1 : H;
                int x0 = kx == 0 ? 1 : 0, x1 = kx == 3 ? W - 1 : W;
                for (int iy = y0; iy < y1; iy++) {
                    float *o = a + (size_t)(2 * iy - 1 + ky) * OW;
                    const float *cr = c + (size_t)iy * W;
                    for (int ix = x0; ix < x1; ix++) o[2 * ix - 1 + kx] += cr[ix];
                }
            }
        for (int p = 0; p < OH * OW; p++) a[p] += b;
    }
}

void em_linear_f32(const float *in, int N, int K, const float *weight, const float *bias, int M,
                   int relu, float *out) {
    if (N <= 0 || M <= 0) return;
    // out[N x M] = in[N x K] * W^T: A = in, B(k, m) = W[m * K + k], bias per column.
    em_gemm_job j;
    memset(&j, 0, sizeof j);
    j.M = N;
    j.N = M;
    j.K = K;
    j.A = in;
    j.a_rs = K;
    j.a_cs = 1;
    j.b_kind = EM_B_STRIDED;
    j.B = weight;
    j.b_rs = 1;
    j.b_cs = K;
    j.C = out;
    j.ldc = M;
    j.bias_col = bias;
    j.relu = relu;
    if (em_gemm_run(&j) != 0) em_linear_f32_ref(in, N, K, weight, bias, M, relu, out);
}

// ---------------------------------------------------------------- micro-kernel test hooks

void em_ukr_info(int *mr, int *nr) {
    const em_gemm_params *P = em_gemm_params_current();
    if (mr) *mr = P->mr;
    if (nr) *nr = P->nr;
}

int em_ukr_call(int K, const float *A, const float *B, float *C, long ldc, int load_c,
                const float *bias, int relu) {
    const em_gemm_params *P = em_gemm_params_current();
    if (K < 0 || !A || !B || !C) return -1;
    const int MR = P->mr, NR = P->nr;
    float *Ap = alloc_floats((size_t)MR * (K ? K : 1)), *Bp = alloc_floats((size_t)NR * (K ? K : 1));
    if (!Ap || !Bp) {
        free(Ap);
        free(Bp);
        return -1;
    }
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < MR; i++) Ap[(size_t)k * MR + i] = A[(size_t)i * K + k];
        for (int t = 0; t < NR; t++) Bp[(size_t)k * NR + t] = B[(size_t)k * NR + t];
    }
    em_epi e = {bias, NULL, NULL, 0, relu};
    P->ukr(K, Ap, Bp, C, ldc, load_c, (bias || relu) ? &e : NULL);
    free(Ap);
    free(Bp);
    return 0;
}
