// The int8 layers of ResNet-50-FPN Mask R-CNN at 800x1066 (bench/r50fpn_layers.txt), each run
// as many times as the network runs it, on the kernel ISA in use: time per layer (best of
// EM_REPS repetitions), GMAC/s and % of the peak em_int8_peak_macs_per_s measures in the same
// run. Finds where the int8 GEMM driver loses against the roofline without building the Swift
// side. Not a test.
//   clang -O3 -ICShim/include bench/qnet_bench.c CShim/*.c CShim/ref/*.c CShim/io/*.c \
//         CShim/x86/*.c CShim/arm/*.c -lm -lpthread -ljpeg -o /tmp/qnet
//   /tmp/qnet [bench/r50fpn_layers.txt]   (EM_THREADS=n, default 2; EM_REPS=n, default 3)
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
static double cpu_now(void) { // CPU time of the whole process (every thread)
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 20);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "bench/r50fpn_layers.txt";
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    const char *th = getenv("EM_THREADS"), *rp = getenv("EM_REPS");
    int threads = th ? atoi(th) : 2, reps = rp ? atoi(rp) : 3;
    em_set_num_threads(threads);
    int isa = em_isa_current();
    // Layers: best of EM_REPS; peak: the undisturbed rate (fastest batches), the fair pair on a
    // shared machine.
    double peak;
    em_int8_peak_macs_per_s(isa, threads, 0.3, &peak);
    printf("isa %s, %d threads, peak %.1f GMAC/s (%s)\n", em_isa_name(isa), threads, peak * 1e-9,
           em_int8_peak_instruction(isa));
    // cpu%: the MACs over the CPU time of all threads against the per-thread peak: what the kernels
    // reach while they run (robust to other load; load imbalance does not count).
    printf("%-8s %-34s %5s %8s %9s %8s %7s %9s %6s\n", "kind", "shape", "count", "GMAC", "ms", "GMAC/s",
           "%peak", "cpu ms", "cpu%");
    char line[256];
    double tot_mac = 0, tot_t = 0, tot_c = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[16];
        int a, b, c, d, e, g, h, count;
        if (line[0] == '#' || sscanf(line, "%15s %d %d %d %d %d %d %d %d", kind, &a, &b, &c, &d, &e, &g, &h, &count) != 9)
            continue;
        int M, K;
        size_t nin, nout;
        double mac;
        if (!strcmp(kind, "conv")) {
            int oh = (b + 2 * h - e) / g + 1, ow = (c + 2 * h - e) / g + 1;
            M = d, K = a * e * e, nin = (size_t)a * b * c, nout = (size_t)d * oh * ow;
            mac = (double)M * K * oh * ow;
        } else if (!strcmp(kind, "linear")) {
            M = c, K = b, nin = (size_t)a * b, nout = (size_t)a * c;
            mac = (double)a * b * c;
        } else { // deconv Cin H W Cout
            M = 4 * d, K = a, nin = (size_t)a * b * c, nout = (size_t)4 * d * b * c;
            mac = 4.0 * a * b * c * d;
        }
        uint8_t *in = malloc(nin), *out = malloc(nout);
        int8_t *w = malloc((size_t)M * K);
        fill(in, nin, 3);
        fill((uint8_t *)w, (size_t)M * K, 5);
        for (size_t i = 0; i < (size_t)M * K; i++)
            if (w[i] == -128) w[i] = -127;
        void *pk = malloc(em_qpack_weights_bytes(M, K));
        float *mult = malloc(4 * (size_t)M);
        for (int m = 0; m < M; m++) mult[m] = 0.0005f;
        if (!strcmp(kind, "deconv")) em_qpack_deconv2x2_weights(w, a, d, 7, NULL, pk);
        else em_qpack_weights(w, M, K, 7, NULL, pk);
        double best = 1e30, bestc = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now(), c0 = cpu_now();
            for (int i = 0; i < count; i++) {
                if (!strcmp(kind, "conv"))
                    em_qconv2d_u8(in, a, b, c, 7, pk, d, e, e, g, h, mult, 100, NULL, 0, 0.0f, 1, out, NULL);
                else if (!strcmp(kind, "linear"))
                    em_qlinear_u8(in, a, b, 7, pk, c, mult, 100, 1, out);
                else
                    em_qdeconv2x2s2_u8(in, a, b, c, 7, pk, d, mult, 100, 1, out, NULL);
            }
            double dt = now() - t0, dc = cpu_now() - c0;
            if (dt < best) best = dt;
            if (dc < bestc) bestc = dc;
        }
        char shape[64];
        snprintf(shape, sizeof shape, "%d %d %d %d %d %d %d", a, b, c, d, e, g, h);
        printf("%-8s %-34s %5d %8.3f %9.2f %8.1f %6.1f%% %9.2f %5.1f%%\n", kind, shape, count,
               mac * count * 1e-9, best * 1e3, mac * count / best * 1e-9, 100 * mac * count / best / peak,
               bestc * 1e3, 100 * mac * count / bestc / (peak / threads));
        fflush(stdout);
        tot_mac += mac * count;
        tot_t += best;
        tot_c += bestc;
        free(in), free(out), free(w), free(pk), free(mult);
    }
    double peak2;
    em_int8_peak_macs_per_s(isa, threads, 0.3, &peak2);
    if (peak2 > peak) peak = peak2;
    printf("total %.1f GMAC in %.1f ms: %.1f GMAC/s, %.1f%% of peak %.1f GMAC/s; cpu %.1f ms, %.1f%%\n",
           tot_mac * 1e-9, tot_t * 1e3, tot_mac / tot_t * 1e-9, 100 * tot_mac / tot_t / peak, peak * 1e-9,
           tot_c * 1e3, 100 * tot_mac / tot_c / (peak / threads));
    return 0;
}
