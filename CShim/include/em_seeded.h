// Seeded values for test checkpoints (Model/SeededCheckpoint.swift; tools/make_arch_fixtures.py
// draws the same bits in numpy): the generator of Model/SyntheticModel.swift — splitmix64, the
// polar (Marsaglia) normal method with a log in plain double arithmetic (no libm) — in C so that
// a debug build fills a 40 M-parameter state dict in about a second.
#ifndef EM_SEEDED_H
#define EM_SEEDED_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/// out[i] = (float)(offset + scale * x_i), x_i standard normal (normal != 0) or uniform in (-1, 1)
/// (2 * unit - 1, unit with 53 bits), drawn from splitmix64 seeded with `seed`.
void em_seeded_fill(uint64_t seed, int normal, double offset, double scale, float *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
