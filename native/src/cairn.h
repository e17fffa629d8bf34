/*
 * Shared declarations of the cairn kernel library.
 *
 * Folders and instruction sets: native/src is plain C compiled for the baseline of the target;
 * native/x86_avx2 may use AVX2+FMA+F16C; native/x86_avx512 may use AVX-512 F/BW/VL/DQ/CD plus
 * VNNI and BF16 (and AMX tile instructions, in code that only the AMX level calls); native/arm_neon
 * may use ARMv8.2-A with dotprod and fp16. Only dispatch.c decides
 * which group runs, from what the CPU reports, so code in an ISA folder never runs on a CPU
 * without those instructions.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stddef.h>
#include <stdint.h>

/* Instruction-set levels, lowest first. A level implies every level below it on its architecture. */
typedef enum {
  CAIRN_ISA_SCALAR = 0,
  CAIRN_ISA_AVX2 = 1,   /* x86-64: AVX2, FMA, F16C */
  CAIRN_ISA_AVX512 = 2, /* x86-64: AVX-512 F/BW/VL/DQ/CD + VNNI + BF16 */
  CAIRN_ISA_NEON = 3,   /* arm64: NEON + dotprod + fp16 */
  /* x86-64: the AVX512 level plus AMX tiles with INT8 dot products (Sapphire Rapids on), which
     take the batch products (prefill, several streams); everything else runs the AVX512 kernels.
     Numbered after NEON, which is on another architecture: levels compare within one. */
  CAIRN_ISA_AMX = 4
} cairn_isa;

/* The best level this CPU supports (computed once). */
cairn_isa cairn_isa_detect(void);
/* The level kernels use now: the detected one unless a test forced a lower one. */
cairn_isa cairn_isa_active(void);
/* Forces a level (tests compare every path on one machine). Returns 0, or -1 if unsupported. */
int cairn_isa_force(cairn_isa isa);
/* Human-readable name of a level. */
const char *cairn_isa_name(cairn_isa isa);

/* GGML type ids used by the kernels (same numbers as in GGUF files). */
enum {
  CAIRN_F32 = 0, CAIRN_F16 = 1, CAIRN_Q4_0 = 2, CAIRN_Q4_1 = 3, CAIRN_Q5_0 = 6, CAIRN_Q5_1 = 7,
  CAIRN_Q8_0 = 8, CAIRN_Q8_1 = 9, CAIRN_Q2_K = 10, CAIRN_Q3_K = 11, CAIRN_Q4_K = 12, CAIRN_Q5_K = 13, CAIRN_Q6_K = 14,
  CAIRN_Q8_K = 15, CAIRN_IQ2_XXS = 16, CAIRN_IQ2_XS = 17, CAIRN_IQ3_XXS = 18, CAIRN_IQ1_S = 19,
  CAIRN_IQ4_NL = 20, CAIRN_IQ3_S = 21, CAIRN_IQ2_S = 22, CAIRN_IQ4_XS = 23, CAIRN_IQ1_M = 29, CAIRN_BF16 = 30, CAIRN_MXFP4 = 39
};

#endif
