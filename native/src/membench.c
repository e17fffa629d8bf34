/*
 * Memory read bandwidth of this machine: every pool thread sums its share of a buffer larger than
 * any cache. Decode speed is judged against this figure (tokens/s <= bandwidth / bytes per token).
 * The buffer is advised onto huge pages, as the engine's weights and KV cache are: on 4 KiB pages
 * the reads walk the page tables every 4 KiB, and on a Zen 5 virtual machine the same loop read
 * 53-60 GB/s there against 57-65 on huge pages (a vector loop 56-61 against 65-69), so the limit
 * came out below what the engine's own streams could draw.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "membench.h"
#include "mmap.h"
#include "pool.h"

typedef struct {
  const uint64_t *data;
  size_t words;
  uint64_t sums[256];
} read_job;

static void read_share(void *ctx, int ith, int nth) {
  read_job *j = ctx;
  const size_t per = (j->words / (size_t)nth) & ~(size_t)7;
  const size_t start = per * (size_t)ith;
  const size_t end = ith == nth - 1 ? j->words : start + per;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = start; i + 4 <= end; i += 4) {
    a += j->data[i];
    b += j->data[i + 1];
    c += j->data[i + 2];
    d += j->data[i + 3];
  }
  j->sums[ith & 255] = a + b + c + d;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double cairn_read_bandwidth(size_t bytes, int runs) {
  read_job j;
  j.words = bytes / 8;
  void *mem = NULL;
  if (posix_memalign(&mem, (size_t)2 << 20, j.words * 8) != 0) return -1;
  uint64_t *buf = mem;
  cairn_advise_huge(buf, j.words * 8); /* before the first touch; where it is refused, small pages */
  memset(buf, 1, j.words * 8); /* touch every page before timing */
  j.data = buf;
  cairn_pool_run(read_share, &j); /* warm-up */
  double best = 0;
  for (int r = 0; r < runs; r++) {
    const double t = now_s();
    cairn_pool_run(read_share, &j);
    const double rate = (double)(j.words * 8) / (now_s() - t);
    if (rate > best) best = rate;
  }
  free(buf);
  return best;
}
