// The mask head's four 3x3 convolutions (256 -> 256, pad 1) as the pipeline runs them on x86:
// side-by-side batches of 14x14 RoIs without separator columns (em_qconv2d_u8_tiles, tiles of
// 14 columns), `rois` RoIs in batches of at most `batch`, as few as that allows and of equal
// size (Executor.sideBySide), four layers with their own weights in turn, the output of one the
// input of the next. Prints the best and the median over EM_REPS repetitions of the four layers'
// time (the batch fill and the rest of the head are not timed) against the undisturbed peak
// em_int8_peak_macs_per_s measures (EM_NOPEAK=1: 236.4 GMAC/s per thread, the Zen 4 VM's).
// Not a test.
//   clang -O3 -ICShim/include bench/maskhead_bench.c CShim/*.c CShim/ref/*.c CShim/io/*.c \
//         CShim/x86/*.c CShim/arm/*.c -lm -lpthread -ljpeg -o /tmp/maskhead
//   /tmp/maskhead [batch 16] [rois 100]   (EM_THREADS=n, default 2; EM_REPS=n, default 9)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_dispatch.h"
#include "em_peak.h"
#include "em_qkernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 20);
}
static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *th = getenv("EM_THREADS"), *rp = getenv("EM_REPS");
    const int threads = th ? atoi(th) : 2, reps = rp && atoi(rp) > 0 ? atoi(rp) : 9;
    const int most = argc > 1 ? atoi(argv[1]) : 16, n = argc > 2 ? atoi(argv[2]) : 100;
    if (most < 1 || n < 1) return 1;
    em_set_num_threads(threads);
    const int isa = em_isa_current();
    double peak = 236.4e9 * threads;
    if (!getenv("EM_NOPEAK")) em_int8_peak_macs_per_s(isa, threads, 0.3, &peak);
    const int C = 256, M = 256, P = 14, K = C * 9, nb = (n + most - 1) / most;
    const size_t maxb = (size_t)C * P * P * (size_t)(n / nb + 1);
    uint8_t *a = malloc(maxb), *b = malloc(maxb);
    fill(a, maxb, 3);
    void *pk[4];
    int8_t *w = malloc((size_t)M * K);
    for (int l = 0; l < 4; l++) {
        fill((uint8_t *)w, (size_t)M * K, 5 + l);
        for (size_t i = 0; i < (size_t)M * K; i++)
            if (w[i] == -128) w[i] = -127;
        pk[l] = malloc(em_qpack_weights_bytes(M, K));
        em_qpack_weights(w, M, K, 7, NULL, pk[l]);
    }
    float *mult = malloc(4 * (size_t)M);
    for (int m = 0; m < M; m++) mult[m] = 0.0005f;
    double *ts = malloc(sizeof(double) * reps);
    for (int r = 0; r < reps; r++) {
        double t = 0;
        for (int start = 0, bi = 0; start < n; bi++) {
            const int cnt = n / nb + (bi < n % nb ? 1 : 0), W = P * cnt;
            const double t0 = now();
            for (int l = 0; l < 4; l++)
                em_qconv2d_u8_tiles(l & 1 ? b : a, C, P, W, 7, pk[l], M, 3, 3, 1, 1, P, mult, 100, 1, l & 1 ? a : b);
            t += now() - t0;
            start += cnt;
        }
        ts[r] = t;
    }
    qsort(ts, reps, sizeof(double), cmp);
    const double mac = 4.0 * M * K * P * P * n;
    printf("isa %s, %d threads, %d RoIs in %d batches of <= %d: four layers best %.2f ms (%.1f%% of %.1f GMAC/s), "
           "median %.2f ms (%.1f%%)\n", em_isa_name(isa), threads, n, nb, most, ts[0] * 1e3, 100 * mac / ts[0] / peak,
           peak * 1e-9, ts[reps / 2] * 1e3, 100 * mac / ts[reps / 2] / peak);
    free(a), free(b), free(w), free(mult), free(ts);
    for (int l = 0; l < 4; l++) free(pk[l]);
    return 0;
}
