/*
 * Which tile configuration the calling thread has loaded. Loading one (LDTILECFG) costs about as
 * much as scoring a few dozen cache rows, and the attention scores call for it once per KV head
 * and chunk: so they keep theirs loaded between calls and load it again only after the batch
 * products (quant_amx_avx512.c), which load their own per call and release the tiles after it,
 * have run on the thread.
 */
#ifndef CAIRN_AMX_TILES_H
#define CAIRN_AMX_TILES_H

enum { AMX_TILES_NONE, AMX_TILES_PRODUCTS, AMX_TILES_SCORES };

/* Defined in ops_avx512.c. */
extern __thread int cairn_amx_tiles;

#endif
