// Post-indexed pair loads for the aarch64 micro-kernels: `ldp q, q, [p], #inc` loads 32 bytes and
// advances the pointer by inc in the same instruction (clang does not form post-indexed ldp of q
// registers from these intrinsics, and the separate pointer adds cost an instruction per pointer
// per iteration in loops of 20-50 instructions).
#ifndef EM_NEON_LD_H
#define EM_NEON_LD_H
#include <arm_neon.h>

#define EM_LDP_POST(p, a, b, inc)                                                                  \
    __asm__("ldp %q0, %q1, [%2], #" #inc : "=w"(a), "=w"(b), "+r"(p) : : "memory")
#endif
