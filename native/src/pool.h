/*
 * The kernel library's own thread pool. One caller (the JS thread) runs a job on all threads:
 * the caller is thread 0 and takes part. Workers spin briefly after a job, then sleep on a
 * futex/condvar, so an idle process (a pipeline stage waiting on the network) burns no CPU.
 */
#ifndef CAIRN_POOL_H
#define CAIRN_POOL_H

/*
 * A job body: share `ith` of `nth` of the work described by `ctx`. Each share runs exactly once,
 * but shares may run one after another on the same thread (whichever thread claims them first),
 * so a body must never wait for another share of the same job.
 */
typedef void (*cairn_job_fn)(void *ctx, int ith, int nth);

/* Physical cores this process may run on (the default thread count). */
int cairn_physical_cores(void);
/* Sets the number of threads (>= 1), starting or stopping workers. */
void cairn_pool_set_threads(int n);
/* Current number of threads, the caller included. */
int cairn_pool_threads(void);
/* Runs fn on every thread and returns when all are done. Not re-entrant. */
void cairn_pool_run(cairn_job_fn fn, void *ctx);
/*
 * Tells workers that are polling for the next job to sleep now instead of after their spin: the
 * caller is about to wait on something else (a pipeline stage handing its step to another
 * process), and the CPU is better left to whoever computes next.
 */
void cairn_pool_rest(void);
/* Runs fn with at most `max_threads` threads (small jobs where waking everyone costs more). A call
   from inside a job (or while another JS thread's job runs) runs fn on the calling thread alone. */
void cairn_pool_run_n(cairn_job_fn fn, void *ctx, int max_threads);

#endif
