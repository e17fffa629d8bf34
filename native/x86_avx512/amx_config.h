/*
 * The 64-byte tile configuration LDTILECFG reads (palette 1), shared by the AMX products
 * (quant_amx_avx512.c, f16_amx_avx512.c). Configuration is per thread: each call loads its own and
 * releases the tiles when done.
 */
#ifndef CAIRN_AMX_CONFIG_H
#define CAIRN_AMX_CONFIG_H

#include <immintrin.h>
#include <stdint.h>

typedef struct __attribute__((aligned(64))) {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_config;

/* Loads c. GCC 12 does not count LDTILECFG's read of the struct as a use and drops the stores that
   filled it (the tiles then stay unconfigured and the first tile load faults): the empty asm reads
   them. */
static inline void amx_load_config(amx_config *c) {
  __asm__ volatile("" : : "m"(*c) : "memory");
  _tile_loadconfig(c);
}

#endif
