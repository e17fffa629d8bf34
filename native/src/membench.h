/* Memory bandwidth measurement. */
#ifndef CAIRN_MEMBENCH_H
#define CAIRN_MEMBENCH_H
#include <stddef.h>
/* Best read rate in bytes/s over `runs` passes of a `bytes` buffer on the pool's threads; -1 if no memory. */
double cairn_read_bandwidth(size_t bytes, int runs);
#endif
