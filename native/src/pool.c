/*
 * The kernel thread pool. A job of nth shares is published in one atomic word; every thread, the
 * caller included, claims shares from that word until none are left, so a worker the OS has not
 * scheduled yet (a busy or shared machine) never holds a job up: the caller runs its share
 * instead. Idle workers poll the word for a short while (the next kernel call of a forward pass
 * usually follows within microseconds), then sleep on a condition variable, so an idle process
 * costs no CPU.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#define MAX_THREADS 256
/* How long an idle worker keeps polling before it sleeps. */
#define SPIN_NS 100000LL

/*
 * The job word: sequence number (40 bits, bumped per job and on shutdown), share count (12 bits)
 * and the next unclaimed share (12 bits). Claiming is a compare-and-swap on the whole word, so a
 * late worker can never claim a share of a newer job by mistake, nor read that job's fields
 * before it owns a share of it.
 */
#define WORD(seq, nth, next) (((uint64_t)(seq) << 24) | ((uint64_t)(nth) << 12) | (uint64_t)(next))
#define WORD_SEQ(w) ((w) >> 24)
#define WORD_NTH(w) ((int)(((w) >> 12) & 0xfff))
#define WORD_NEXT(w) ((int)((w) & 0xfff))

static _Atomic uint64_t g_job;
static atomic_int g_done;      /* shares of the current job finished */
static atomic_int g_sleeping;  /* workers inside the condvar wait */
static atomic_int g_quit;      /* tells workers to exit */
static atomic_int g_rest;      /* bumped by cairn_pool_rest: polling workers go to sleep at once */
static atomic_flag g_busy = ATOMIC_FLAG_INIT;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;

/* Written before the job word is published; read only by threads that claimed a share. */
static cairn_job_fn g_fn;
static void *g_ctx;

static atomic_int g_threads; /* 0 until first use */
static pthread_t g_workers[MAX_THREADS];

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Runs unclaimed shares of job `seq` until none are left. */
static void claim_shares(uint64_t seq) {
  uint64_t w = atomic_load_explicit(&g_job, memory_order_acquire);
  for (;;) {
    if (WORD_SEQ(w) != seq || WORD_NEXT(w) >= WORD_NTH(w)) return;
    if (!atomic_compare_exchange_weak_explicit(&g_job, &w, w + 1, memory_order_acq_rel, memory_order_acquire)) {
      continue; /* w now holds the current word */
    }
    g_fn(g_ctx, WORD_NEXT(w), WORD_NTH(w));
    atomic_fetch_add_explicit(&g_done, 1, memory_order_release);
    w = atomic_load_explicit(&g_job, memory_order_acquire);
  }
}

/* Waits until the job sequence moves past `seen`: poll first, then sleep. Returns the new word. */
static uint64_t wait_for_job(uint64_t seen) {
  long long deadline = 0;
  const int rest = atomic_load_explicit(&g_rest, memory_order_relaxed);
  for (unsigned i = 0;; i++) {
    const uint64_t w = atomic_load_explicit(&g_job, memory_order_acquire);
    if (WORD_SEQ(w) != seen) return w;
    cpu_relax();
    if ((i & 255) != 255) continue;
    if (atomic_load_explicit(&g_rest, memory_order_relaxed) != rest) break;
    const long long t = now_ns();
    if (deadline == 0) {
      deadline = t + SPIN_NS;
    } else if (t > deadline) {
      break;
    }
  }
  pthread_mutex_lock(&g_lock);
  /* Announcing the sleep before re-reading the word pairs with the publisher's store-then-check. */
  atomic_fetch_add(&g_sleeping, 1);
  uint64_t w;
  while (WORD_SEQ(w = atomic_load(&g_job)) == seen) pthread_cond_wait(&g_wake, &g_lock);
  atomic_fetch_sub(&g_sleeping, 1);
  pthread_mutex_unlock(&g_lock);
  return w;
}

static void *worker_main(void *arg) {
  /* The sequence current when this worker was started (see start_workers). */
  uint64_t seen = (uint64_t)(uintptr_t)arg;
#if defined(__linux__)
  /* Named so tools (and tests) can tell the pool's threads from Node's own. */
  pthread_setname_np(pthread_self(), "cairn-worker");
#endif
  for (;;) {
    seen = WORD_SEQ(wait_for_job(seen));
    if (atomic_load_explicit(&g_quit, memory_order_acquire)) break;
    claim_shares(seen);
  }
  return NULL;
}

void cairn_pool_rest(void) { atomic_fetch_add_explicit(&g_rest, 1, memory_order_relaxed); }

/* Publishes a new job word with `nth` shares (0 for shutdown) and wakes sleeping workers. */
static uint64_t publish(int nth) {
  const uint64_t seq = WORD_SEQ(atomic_load(&g_job)) + 1;
  atomic_store(&g_job, WORD(seq, nth, 0));
  if (atomic_load(&g_sleeping) > 0) {
    pthread_mutex_lock(&g_lock);
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_lock);
  }
  return seq;
}

static void stop_workers(void) {
  const int n = atomic_load(&g_threads);
  if (n <= 1) return;
  atomic_store(&g_quit, 1);
  publish(0);
  for (int i = 1; i < n; i++) pthread_join(g_workers[i], NULL);
  atomic_store(&g_quit, 0);
}

/* Starts workers 1..n-1; returns how many threads (the caller included) are really available. */
static int start_workers(int n) {
  /*
   * A new worker waits for jobs after the current one. Reading the word here rather than in the
   * worker matters: a job published before the OS first runs the worker must not be missed.
   */
  const uint64_t seq = WORD_SEQ(atomic_load(&g_job));
  /* Workers must not take signals meant for the JS thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int started = 1;
  for (int i = 1; i < n; i++) {
    if (pthread_create(&g_workers[i], NULL, worker_main, (void *)(uintptr_t)seq) != 0) break;
    started++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return started;
}

#if defined(__APPLE__)
/* macOS has no affinity masks; the kernel reports physical cores directly. */
int cairn_physical_cores(void) {
  int n = 0;
  size_t len = sizeof n;
  if (sysctlbyname("hw.physicalcpu", &n, &len, NULL, 0) == 0 && n > 0) return n;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? (int)online : 1;
}
#else
/* Distinct (package, core) pairs among the CPUs this process may run on. */
int cairn_physical_cores(void) {
  cpu_set_t set;
  int allowed = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) allowed = CPU_COUNT(&set);
  if (allowed <= 0) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
  }
  long keys[CPU_SETSIZE];
  int n_keys = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    char path[128];
    long core = -1, pkg = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
    FILE *f = fopen(path, "r");
    if (!f) return allowed; /* no topology information: count logical CPUs */
    if (fscanf(f, "%ld", &core) != 1) core = cpu;
    fclose(f);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
    f = fopen(path, "r");
    if (f) {
      if (fscanf(f, "%ld", &pkg) != 1) pkg = 0;
      fclose(f);
    }
    const long key = pkg * 1000000L + core;
    int seen = 0;
    for (int k = 0; k < n_keys && !seen; k++) seen = keys[k] == key;
    if (!seen) keys[n_keys++] = key;
  }
  return n_keys > 0 ? n_keys : allowed;
}
#endif

static void ensure_started(void) {
  if (atomic_load(&g_threads) == 0) cairn_pool_set_threads(cairn_physical_cores());
}

void cairn_pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  /* A job running on another JS thread must finish before the workers change. */
  while (atomic_flag_test_and_set_explicit(&g_busy, memory_order_acquire)) sched_yield();
  if (n != atomic_load(&g_threads)) {
    stop_workers();
    atomic_store(&g_threads, start_workers(n));
  }
  atomic_flag_clear_explicit(&g_busy, memory_order_release);
}

int cairn_pool_threads(void) {
  ensure_started();
  return atomic_load(&g_threads);
}

void cairn_pool_run(cairn_job_fn fn, void *ctx) { cairn_pool_run_n(fn, ctx, MAX_THREADS); }

void cairn_pool_run_n(cairn_job_fn fn, void *ctx, int max_threads) {
  ensure_started();
  const int threads = atomic_load(&g_threads);
  const int nth = max_threads < threads ? max_threads : threads;
  if (nth <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  /* Another thread (a second JS environment) holds the pool: run alone rather than wait. */
  if (atomic_flag_test_and_set_explicit(&g_busy, memory_order_acquire)) {
    fn(ctx, 0, 1);
    return;
  }
  g_fn = fn;
  g_ctx = ctx;
  atomic_store_explicit(&g_done, 0, memory_order_relaxed);
  const uint64_t seq = publish(nth);
  claim_shares(seq);
  /* Every share is claimed; wait for those still running on workers. */
  for (unsigned i = 0; atomic_load_explicit(&g_done, memory_order_acquire) < nth; i++) {
    if (i < (1u << 14)) {
      cpu_relax();
    } else {
      sched_yield(); /* a worker was descheduled mid-share: let it run */
    }
  }
  atomic_flag_clear_explicit(&g_busy, memory_order_release);
}
