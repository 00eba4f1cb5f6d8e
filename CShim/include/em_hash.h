// SHA-256 (FIPS 180-4), used to recognise known checkpoints and to fingerprint calibration sets.
#ifndef EM_HASH_H
#define EM_HASH_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_sha256 {
    uint32_t h[8];
    uint64_t length;    // bytes hashed so far
    uint8_t block[64];
    size_t fill;        // bytes waiting in block
} em_sha256;

void em_sha256_init(em_sha256 *s);
void em_sha256_update(em_sha256 *s, const void *data, size_t n);
void em_sha256_final(em_sha256 *s, uint8_t digest[32]);

#ifdef __cplusplus
}
#endif
#endif
