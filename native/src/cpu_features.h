/*
 * What the CPU reports, beyond the ISA level: the individual features dispatch.c found usable
 * (the CPU has them and the OS saves their register state), for diagnostics such as cpuInfo().
 */
#ifndef CAIRN_CPU_FEATURES_H
#define CAIRN_CPU_FEATURES_H

#include "cairn.h"

/* Maximum number of feature names cairn_cpu_features() can report. */
#define CAIRN_MAX_CPU_FEATURES 24

/* Fills `names` with up to `max` static feature names (e.g. "avx2", "avx512vnni"); returns the count. */
int cairn_cpu_features(const char **names, int max);

/* Parses a level name as cairn_isa_name() prints it; returns 0, or -1 for an unknown name. */
int cairn_isa_parse(const char *name, cairn_isa *out);

/* True when `isa` can run on this CPU (the baseline always can). */
int cairn_isa_usable(cairn_isa isa);

#endif
