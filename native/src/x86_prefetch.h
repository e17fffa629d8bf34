/*
 * Prefetch hints that the compiler keeps. GCC 12 at -O3 deleted the _mm_prefetch calls of the
 * attention's weighted-sum loops (ops_avx512.c, ops_avx2.c: their objects held no prefetch
 * instruction at all, while the score loops beside them kept theirs), so a decode token at depth
 * waited on memory for every V row: an asm statement cannot be dropped.
 */
#ifndef CAIRN_X86_PREFETCH_H
#define CAIRN_X86_PREFETCH_H
#if defined(__x86_64__)

/* Asks for the line holding p into every cache level. */
static inline void cairn_prefetch_t0(const void *p) { __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p)); }

/* Asks for the line holding p into L2 (and the levels past it). */
static inline void cairn_prefetch_t1(const void *p) { __asm__ volatile("prefetcht1 %0" : : "m"(*(const char *)p)); }

#endif
#endif
