/*
 * The kernel thread pool. A job is published by bumping a sequence number; workers spin on it for
 * a short while after each job (the next kernel call of a forward pass usually follows within
 * microseconds) and then sleep on a condition variable, so an idle process costs no CPU. The
 * caller runs share 0 itself and spins until the workers' countdown reaches zero.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
/* How long an idle worker keeps polling before it sleeps. */
#define SPIN_NS 100000LL

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;

/*
 * The job ticket: a sequence number (bumped per job and on shutdown) with the job's thread count
 * in the low 16 bits, so a worker that sits out a job never reads fields the next job rewrites.
 */
static atomic_ullong g_ticket;
static atomic_int g_sleeping;   /* workers inside the condvar wait */
static atomic_int g_remaining;  /* workers still running the current job */
static atomic_int g_quit;       /* tells workers to exit */
static atomic_flag g_busy = ATOMIC_FLAG_INIT;

/* Written before the ticket is bumped; read only by the workers that take part in the job. */
static cairn_job_fn g_fn;
static void *g_ctx;

static atomic_int g_threads;  /* 0 until first use */
static pthread_t g_workers[MAX_THREADS];
/*
 * The ticket when workers were started: a new worker waits for the ticket to move past this
 * value, not past whatever it reads when it first runs, or it would miss a job published
 * before the OS got round to scheduling it.
 */
static unsigned long long g_spawn_ticket;

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

/* Waits until the ticket moves past `seen`: spin first, then sleep. */
static unsigned long long wait_for_job(unsigned long long seen) {
  long long deadline = 0;
  for (unsigned i = 0;; i++) {
    const unsigned long long s = atomic_load_explicit(&g_ticket, memory_order_acquire);
    if (s != seen) return s;
    cpu_relax();
    if ((i & 255) != 255) continue;
    const long long t = now_ns();
    if (deadline == 0) {
      deadline = t + SPIN_NS;
    } else if (t > deadline) {
      break;
    }
  }
  pthread_mutex_lock(&g_lock);
  /* Announcing the sleep before re-reading the ticket pairs with the publisher's bump-then-check. */
  atomic_fetch_add(&g_sleeping, 1);
  unsigned long long s;
  while ((s = atomic_load(&g_ticket)) == seen) pthread_cond_wait(&g_wake, &g_lock);
  atomic_fetch_sub(&g_sleeping, 1);
  pthread_mutex_unlock(&g_lock);
  return s;
}

static void *worker_main(void *arg) {
  const int ith = (int)(intptr_t)arg;
#if defined(__linux__)
  /* Named so tools (and tests) can tell the pool's threads from Node's own. */
  pthread_setname_np(pthread_self(), "cairn-worker");
#endif
  unsigned long long seen = g_spawn_ticket;
  for (;;) {
    seen = wait_for_job(seen);
    if (atomic_load_explicit(&g_quit, memory_order_acquire)) break;
    const int nth = (int)(seen & 0xffff);
    if (ith < nth) {
      g_fn(g_ctx, ith, nth);
      atomic_fetch_sub_explicit(&g_remaining, 1, memory_order_release);
    }
  }
  return NULL;
}

/* Bumps the ticket's sequence number, with `nth` threads taking part (0 for shutdown). */
static void publish(int nth) {
  const unsigned long long t = atomic_load(&g_ticket);
  atomic_store(&g_ticket, (((t >> 16) + 1) << 16) | (unsigned)nth);
  if (atomic_load(&g_sleeping) > 0) {
    pthread_mutex_lock(&g_lock);
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_lock);
  }
}

static void stop_workers(void) {
  if (g_threads <= 1) return;
  atomic_store(&g_quit, 1);
  publish(0);
  for (int i = 1; i < g_threads; i++) pthread_join(g_workers[i], NULL);
  atomic_store(&g_quit, 0);
}

/* Starts workers 1..n-1; returns how many threads (the caller included) are really available. */
static int start_workers(int n) {
  /* Workers must not take signals meant for the JS thread. */
  g_spawn_ticket = atomic_load(&g_ticket);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int started = 1;
  for (int i = 1; i < n; i++) {
    if (pthread_create(&g_workers[i], NULL, worker_main, (void *)(intptr_t)i) != 0) break;
    started++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return started;
}

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

static void ensure_started(void) {
  if (atomic_load(&g_threads) == 0) {
    cairn_pool_set_threads(cairn_physical_cores());
  }
}

void cairn_pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  /* A job running on another JS thread must finish before the workers change. */
  while (atomic_flag_test_and_set_explicit(&g_busy, memory_order_acquire)) sched_yield();
  if (n != g_threads) {
    stop_workers();
    g_threads = start_workers(n);
  }
  atomic_flag_clear_explicit(&g_busy, memory_order_release);
}

int cairn_pool_threads(void) {
  ensure_started();
  return g_threads;
}

void cairn_pool_run(cairn_job_fn fn, void *ctx) { cairn_pool_run_n(fn, ctx, MAX_THREADS); }

void cairn_pool_run_n(cairn_job_fn fn, void *ctx, int max_threads) {
  ensure_started();
  int nth = max_threads < g_threads ? max_threads : g_threads;
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
  atomic_store_explicit(&g_remaining, nth - 1, memory_order_relaxed);
  publish(nth);
  fn(ctx, 0, nth);
  for (unsigned i = 0; atomic_load_explicit(&g_remaining, memory_order_acquire) > 0; i++) {
    if (i < (1u << 16)) {
      cpu_relax();
    } else {
      sched_yield(); /* a worker was descheduled: let it run */
    }
  }
  atomic_flag_clear_explicit(&g_busy, memory_order_release);
}
