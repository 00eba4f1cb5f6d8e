// The machine's multiply-accumulate peak for a kernel ISA, measured: the roofline `bench`
// compares each stage with. A short in-register loop of the ISA's micro-kernel instruction
// (int8: vpdpbusd zmm for avx512vnni, vpmaddwd + vpaddd ymm for avx2 and avx512, pmaddwd + paddd
// for sse41, sdot for neondot, smull/smlal2 + sadalp for neon, 32-bit multiply-add for scalar;
// float: the FMA of the float kernels) runs on `threads` threads at once for about `seconds`.
#ifndef EM_PEAK_H
#define EM_PEAK_H

#ifdef __cplusplus
extern "C" {
#endif

// Multiply-accumulates per second summed over the threads (total MACs / wall time of the run),
// or -1 if this CPU or build cannot run the ISA. threads is capped at em_num_threads() (the
// pool the kernels use); seconds is clamped to [0.001, 10]. On a machine shared with other
// work this is what the threads got in that time; *burst (if not NULL) receives the sum over
// the threads of each one's fastest batch of ~10-100 us, the rate of the cores when they run
// undisturbed (-1 if the ISA cannot run).
double em_int8_peak_macs_per_s(int isa, int threads, double seconds, double *burst);
double em_f32_peak_macs_per_s(int isa, int threads, double seconds, double *burst);
// The instruction the peak of em_int8_peak_macs_per_s / em_f32_peak_macs_per_s runs for an ISA
// (e.g. "vpdpbusd zmm"), for reports.
const char *em_int8_peak_instruction(int isa);
const char *em_f32_peak_instruction(int isa);

#ifdef __cplusplus
}
#endif
#endif
