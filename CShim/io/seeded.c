// See em_seeded.h. No contraction into fused multiply-adds: every platform rounds each
// operation as Swift and numpy do.
#pragma STDC FP_CONTRACT OFF
#include "em_seeded.h"

static inline uint64_t splitmix_next(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline double symmetric(uint64_t *state) {
    double u = (double)(splitmix_next(state) >> 11) * (1.0 / 9007199254740992.0);
    return 2.0 * u - 1.0;
}

/// SyntheticModel.log: x = m * 2^e, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(t), t = (m-1)/(m+1).
static double plain_log(double x) {
    union { double d; uint64_t u; } b = { x };
    int e = (int)((b.u >> 52) & 0x7FF) - 1023;          // x is a positive normal number here
    b.u = (b.u & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double m = b.d;                                      // [1, 2)
    if (m > 1.4142135623730951) { m *= 0.5; e += 1; }
    double t = (m - 1) / (m + 1), t2 = t * t;
    double term = t, sum = 0.0, k = 1.0;
    for (int i = 0; i < 21; i++) { sum += term / k; term *= t2; k += 2; }
    return 2 * sum + (double)e * 0.6931471805599453;
}

void em_seeded_fill(uint64_t seed, int normal, double offset, double scale, float *out, size_t n) {
    uint64_t state = seed;
    if (!normal) {
        for (size_t i = 0; i < n; i++) out[i] = (float)(offset + scale * symmetric(&state));
        return;
    }
    size_t i = 0;
    while (i < n) {
        double u = symmetric(&state), v = symmetric(&state);
        double s = u * u + v * v;
        if (s >= 1 || s == 0) continue;
        double f = __builtin_sqrt(-2 * plain_log(s) / s);
        out[i++] = (float)(offset + scale * (u * f));
        if (i < n) out[i++] = (float)(offset + scale * (v * f));
    }
}
