// Post-processing loops of the detection heads (RPN proposals, the box head's
// postprocess_detections, the mask head's sigmoid), moved out of Swift so that they run without
// bounds checks or reference counting and, where the work splits by rows, on the thread pool.
// Every float value goes through the same operations in the same order as the Swift code they
// replace (Stages/RPN.swift, Stages/BoxHead.swift, Stages/Boxes.swift): Swift's min(x, y) is
// y < x ? y : x and max(x, y) is y >= x ? y : x (NaN and -0 behave as there), no contraction.
// Plain C, the same on every ISA.
#pragma STDC FP_CONTRACT OFF

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "em_internal.h"
#include "em_kernels.h"

static inline float smin(float x, float y) { return y < x ? y : x; }
static inline float smax(float x, float y) { return y >= x ? y : x; }

// The float's bits mapped to an unsigned order ascending with the value (-0 taken as +0, the two
// being equal scores): as Boxes.ScoreOrder.
static inline uint32_t score_up(float v) {
    float z = v + 0.0f;
    uint32_t b;
    memcpy(&b, &z, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// ---------------------------------------------------------------- a binary min-heap of uint64 keys

static inline void heap_sift_down(uint64_t *h, long p, long m) {
    uint64_t v = h[p];
    for (;;) {
        long c = 2 * p + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[p] = h[c];
        p = c;
    }
    h[p] = v;
}

// Quickselect over distinct uint64 keys: afterwards a[0..<k] are the k largest (in no order) and
// a[k - 1] the smallest of them. 1 <= k <= n.
static inline void swap64(uint64_t *a, long i, long j) {
    uint64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static void select_top(uint64_t *a, long n, long k) {
    long lo = 0, hi = n - 1;
    while (lo < hi) {
        // median of three as the pivot, at hi; then larger keys to the front (Lomuto)
        long mid = lo + (hi - lo) / 2;
        if (a[mid] > a[hi]) swap64(a, mid, hi);
        if (a[lo] > a[hi]) swap64(a, lo, hi);
        if (a[mid] > a[lo]) swap64(a, mid, lo);   // a[mid] <= a[lo] <= a[hi]: median at lo
        swap64(a, lo, hi);
        uint64_t p = a[hi];
        long s = lo;
        for (long i = lo; i < hi; i++)
            if (a[i] > p) swap64(a, i, s++);
        swap64(a, s, hi);
        if (s == k - 1) return;
        if (s < k - 1) lo = s + 1; else hi = s - 1;
    }
}

// key: the value's order above the inverted index, so a larger key is a better anchor. The
// candidates go to a buffer of 2k keys; when it fills, a quickselect keeps the k best and their
// worst becomes the bar a later key must pass. Leaves the min(k, count) best keys at buf[0..<]
// (in no order) and returns their count; -1 on a NaN.
static long topk_pixels(const float *logits, long hw, int a, int k, long lo, long hi, uint64_t *buf) {
    long cnt = 0, cap = 2L * k;
    uint64_t bar = 0;   // every key of a non-NaN value is above 0
    uint32_t i = (uint32_t)(lo * a);
    for (long pix = lo; pix < hi; pix++) {
        for (int ai = 0; ai < a; ai++, i++) {
            float v = logits[(long)ai * hw + pix];
            if (v != v) return -1;
            uint64_t key = (uint64_t)score_up(v) << 32 | (uint32_t)~i;
            if (key > bar) {
                buf[cnt++] = key;
                if (cnt == cap) {
                    select_top(buf, cnt, k);
                    cnt = k;
                    bar = buf[k - 1];
                }
            }
        }
    }
    if (cnt > k) {
        select_top(buf, cnt, k);
        cnt = k;
    }
    return cnt;
}

#define EM_TOPK_TASKS 2

typedef struct {
    const float *logits;
    long hw;
    int a, k, nt;
    uint64_t *bufs;
    long cnt[EM_TOPK_TASKS];
} topk_job;

static void topk_task(void *ctx, int t) {
    topk_job *j = (topk_job *)ctx;
    long lo = j->hw * t / j->nt, hi = j->hw * (t + 1) / j->nt;
    j->cnt[t] = topk_pixels(j->logits, j->hw, j->a, j->k, lo, hi, j->bufs + (long)t * 2 * j->k);
}

size_t em_topk_anchors_scratch_bytes(int k) { return (size_t)(k > 0 ? k : 0) * 16 * EM_TOPK_TASKS; }

int em_topk_anchors(const float *logits, long hw, int a, int k, uint64_t *heap, int32_t *out) {
    if (k <= 0) return 0;
    // large levels: the pixels in EM_TOPK_TASKS ranges on the thread pool, each with its own
    // buffer; the k best of the union are the k best of the parts' k best
    topk_job j = {logits, hw, a, k, hw * a >= 65536 ? EM_TOPK_TASKS : 1, heap, {0}};
    em_parallel(j.nt, topk_task, &j);
    for (int t = 0; t < j.nt; t++)
        if (j.cnt[t] < 0) return -1;
    long cnt = j.cnt[0];
    for (int t = 1; t < j.nt; t++) {   // the first buffer holds 2k: room for a second part's k
        memmove(heap + cnt, heap + (long)t * 2 * k, (size_t)j.cnt[t] * 8);
        cnt += j.cnt[t];
        if (cnt > k) {
            select_top(heap, cnt, k);
            cnt = k;
        }
    }
    // sorted best first: a min-heap popped smallest first fills `out` from the back
    for (long p = cnt / 2 - 1; p >= 0; p--) heap_sift_down(heap, p, cnt);
    for (long m = cnt; m > 0; m--) {
        out[m - 1] = (int32_t)~(uint32_t)(heap[0] & 0xFFFFFFFFu);
        heap[0] = heap[m - 1];
        if (m > 1) heap_sift_down(heap, 0, m - 1);
    }
    return (int)cnt;
}

// ---------------------------------------------------------------- box coder, clip, size filter

typedef struct {
    float wx, wy, ww, wh, clip; // BoxCoder weights, bbox_xform_clip
    float height, width;        // clip_boxes_to_image
    float min_size;             // remove_small_boxes
} coder_t;

// BoxCoder.decode, then Boxes.clip; returns Boxes.isLargeEnough.
static inline int decode_clip(const coder_t *cd, const float *d, const float *b, float *o) {
    float width = b[2] - b[0];
    float height = b[3] - b[1];
    float cx = b[0] + 0.5f * width;
    float cy = b[1] + 0.5f * height;
    float dx = d[0] / cd->wx;
    float dy = d[1] / cd->wy;
    float dw = smin(d[2] / cd->ww, cd->clip);
    float dh = smin(d[3] / cd->wh, cd->clip);
    float pcx = dx * width + cx;
    float pcy = dy * height + cy;
    float pw = expf(dw) * width;
    float ph = expf(dh) * height;
    float hw = 0.5f * pw;
    float hh = 0.5f * ph;
    o[0] = pcx - hw;
    o[1] = pcy - hh;
    o[2] = pcx + hw;
    o[3] = pcy + hh;
    o[0] = smin(smax(o[0], 0), cd->width);
    o[2] = smin(smax(o[2], 0), cd->width);
    o[1] = smin(smax(o[1], 0), cd->height);
    o[3] = smin(smax(o[3], 0), cd->height);
    return (o[2] - o[0]) >= cd->min_size && (o[3] - o[1]) >= cd->min_size;
}

// ---------------------------------------------------------------- greedy batched NMS

// The kept boxes of every group, in keep order: group g's at [g * limit, g * limit + count[g]) of
// each coordinate array.
typedef struct {
    float *x1, *y1, *x2, *y2, *area;
    int32_t *count;
    long limit;
} kept_t;

static void kept_init(kept_t *kp, void *scratch, int limit, int groups) {
    size_t n = (size_t)limit * (size_t)groups;
    char *p = (char *)scratch;
    kp->x1 = (float *)p; p += n * 4;
    kp->y1 = (float *)p; p += n * 4;
    kp->x2 = (float *)p; p += n * 4;
    kp->y2 = (float *)p; p += n * 4;
    kp->area = (float *)p; p += n * 4;
    kp->count = (int32_t *)p;
    for (int g = 0; g < groups; g++) kp->count[g] = 0;
    kp->limit = limit;
}

static size_t kept_bytes(int limit, int groups) { return (size_t)limit * (size_t)groups * 20 + (size_t)groups * 4; }

// IoU(kept i, candidate j) > thr, as Boxes.greedyBatchedNMS computes it (i the kept,
// higher-ranked box, j the candidate).
#define EM_IOU_ABOVE(i)                                                                            \
    float xx1 = smax(x1[i], jx1), yy1 = smax(y1[i], jy1);                                          \
    float xx2 = smin(x2[i], jx2), yy2 = smin(y2[i], jy2);                                          \
    float w = smax(0, xx2 - xx1), h = smax(0, yy2 - yy1);                                          \
    float inter = w * h;                                                                           \
    float ovr = inter / (area[i] + jarea - inter);                                                 \
    int above = (double)ovr > thr;

// Candidate j against the kept boxes of its group, 8 at a time (the compiler vectorises the
// block; whether any IoU exceeds thr does not depend on how many are computed), and the keep.
static inline int kept_offer(kept_t *kp, int g, const float *b, double thr) {
    float jx1 = b[0], jy1 = b[1], jx2 = b[2], jy2 = b[3];
    float jarea = (jx2 - jx1) * (jy2 - jy1);
    long o = (long)g * kp->limit;
    const float *x1 = kp->x1 + o, *y1 = kp->y1 + o, *x2 = kp->x2 + o, *y2 = kp->y2 + o, *area = kp->area + o;
    int n = kp->count[g], i = 0;
    for (; i + 8 <= n; i += 8) {
        int any = 0;
        for (int l = i; l < i + 8; l++) {
            EM_IOU_ABOVE(l)
            any |= above;
        }
        if (any) return 0;
    }
    for (; i < n; i++) {
        EM_IOU_ABOVE(i)
        if (above) return 0;
    }
    float *wx1 = kp->x1 + o, *wy1 = kp->y1 + o, *wx2 = kp->x2 + o, *wy2 = kp->y2 + o, *warea = kp->area + o;
    wx1[n] = jx1; wy1[n] = jy1; wx2[n] = jx2; wy2[n] = jy2; warea[n] = jarea;
    kp->count[g] = n + 1;
    return 1;
}

// ScoreOrder's key: the score's order inverted above the index; the smallest key comes first
// (score descending, ties: lower index first).
static inline uint64_t order_key(float s, uint32_t i) { return (uint64_t)~score_up(s) << 32 | i; }

size_t em_greedy_nms_scratch_bytes(int n, int limit, int groups) {
    return (size_t)n * 8 + kept_bytes(limit, groups) + 64;
}

int em_greedy_nms(const float *boxes, const float *scores, const int32_t *groups, int n, int ngroups,
                  double iou_threshold, int limit, void *scratch, int32_t *keep) {
    uint64_t *keys = (uint64_t *)scratch;
    for (int i = 0; i < n; i++) {
        if (scores[i] != scores[i]) return -1;
        keys[i] = order_key(scores[i], (uint32_t)i);
    }
    for (long p = (long)n / 2 - 1; p >= 0; p--) heap_sift_down(keys, p, n);
    kept_t kp;
    kept_init(&kp, (char *)scratch + (size_t)n * 8, limit, ngroups);
    int kept = 0;
    long m = n;
    while (kept < limit && m > 0) {
        int j = (int)(keys[0] & 0xFFFFFFFFu);
        keys[0] = keys[m - 1];
        m--;
        if (m > 0) heap_sift_down(keys, 0, m);
        if (kept_offer(&kp, groups[j], boxes + 4 * (long)j, iou_threshold)) keep[kept++] = j;
    }
    return kept;
}

// ---------------------------------------------------------------- box head

typedef struct {
    const float *in;
    float *out;
    int k;
} softmax_job;

static void softmax_rows(void *ctx, long lo, long hi) {
    const softmax_job *j = (const softmax_job *)ctx;
    int k = j->k;
    for (long i = lo; i < hi; i++) {
        const float *lg = j->in + i * k;
        float *p = j->out + i * k;
        float m = lg[0];
        for (int c = 1; c < k; c++) m = smax(m, lg[c]);
        float sum = 0;
        for (int c = 0; c < k; c++) {
            p[c] = expf(lg[c] - m);
            sum += p[c];
        }
        float inv = 1 / sum;
        for (int c = 0; c < k; c++) p[c] = p[c] * inv;
    }
}

void em_softmax_rows_f32(const float *in, float *out, long rows, int k) {
    softmax_job j = {in, out, k};
    em_parallel_for(rows, 64, softmax_rows, &j);
}

size_t em_box_detections_scratch_bytes(long rows, int k, int limit) {
    return (size_t)rows * (size_t)k * 8 + kept_bytes(limit, k) + 64;
}

int em_box_detections(const float *probs, const float *deltas, const float *proposals, long rows, int k,
                      float score_thresh, float wx, float wy, float ww, float wh, float clip, float height,
                      float width, float min_size, double iou_threshold, int limit, int greedy_above,
                      void *scratch, float *out_boxes, float *out_scores, int32_t *out_labels) {
    if (rows * (long)k > 0xFFFFFFFFL) return -1;
    coder_t cd = {wx, wy, ww, wh, clip, height, width, min_size};
    uint64_t *keys = (uint64_t *)scratch;
    long n = 0;
    for (long i = 0; i < rows; i++) {
        const float *p = probs + i * k;
        for (int c = 1; c < k; c++)
            if (p[c] > score_thresh) keys[n++] = order_key(p[c], (uint32_t)(i * k + c));
    }
    if (n <= greedy_above) return -1;
    // more than `greedy_above` candidates must pass the size filter (else the caller's path)
    long pass = 0;
    float b[4];
    for (long t = 0; t < n && pass <= greedy_above; t++) {
        long f = (long)(keys[t] & 0xFFFFFFFFu), i = f / k;
        pass += decode_clip(&cd, deltas + f * 4, proposals + 4 * i, b);
    }
    if (pass <= greedy_above) return -1;
    for (long p = n / 2 - 1; p >= 0; p--) heap_sift_down(keys, p, n);
    kept_t kp;
    kept_init(&kp, (char *)scratch + (size_t)rows * (size_t)k * 8, limit, k);
    int kept = 0;
    long m = n;
    while (kept < limit && m > 0) {
        long f = (long)(keys[0] & 0xFFFFFFFFu), i = f / k;
        int c = (int)(f - i * k);
        keys[0] = keys[m - 1];
        m--;
        if (m > 0) heap_sift_down(keys, 0, m);
        if (!decode_clip(&cd, deltas + f * 4, proposals + 4 * i, b)) continue;
        if (!kept_offer(&kp, c, b, iou_threshold)) continue;
        memcpy(out_boxes + 4 * kept, b, 16);
        out_scores[kept] = probs[f];
        out_labels[kept] = c;
        kept++;
    }
    return kept;
}

// ---------------------------------------------------------------- mask head

typedef struct {
    float *x;
} sigmoid_job;

static void sigmoid_range(void *ctx, long lo, long hi) {
    float *x = ((const sigmoid_job *)ctx)->x;
    for (long i = lo; i < hi; i++) x[i] = 1 / (1 + expf(-x[i]));
}

void em_sigmoid_f32(float *x, long n) {
    sigmoid_job j = {x};
    em_parallel_for(n, 4096, sigmoid_range, &j);
}

// ---------------------------------------------------------------- side-by-side separators

typedef struct {
    void *x;
    long width;
    int first, step, count, f32;
    uint8_t v8;
    float vf;
} columns_job;

static void columns_rows(void *ctx, long lo, long hi) {
    const columns_job *j = (const columns_job *)ctx;
    if (j->f32) {
        for (long r = lo; r < hi; r++) {
            float *row = (float *)j->x + r * j->width + j->first;
            for (int c = 0; c < j->count; c++) row[(long)c * j->step] = j->vf;
        }
    } else {
        for (long r = lo; r < hi; r++) {
            uint8_t *row = (uint8_t *)j->x + r * j->width + j->first;
            for (int c = 0; c < j->count; c++) row[(long)c * j->step] = j->v8;
        }
    }
}

void em_set_columns_u8(uint8_t *x, long rows, long width, int first, int step, int count, uint8_t value) {
    if (count <= 0) return;
    columns_job j = {x, width, first, step, count, 0, value, 0};
    em_parallel_for(rows, 512, columns_rows, &j);
}

void em_set_columns_f32(float *x, long rows, long width, int first, int step, int count, float value) {
    if (count <= 0) return;
    columns_job j = {x, width, first, step, count, 1, 0, value};
    em_parallel_for(rows, 512, columns_rows, &j);
}
