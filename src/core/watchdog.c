/* Hang watchdog (include/cnflow/core.h, -watchdog SECONDS).
 *
 * A rank that fails returns an error every rank agrees on, and a rank that dies is reaped by
 * mpiexec/srun; a rank that HANGS (a stuck file system, a deadlocked collective after a bug, a
 * node that stops scheduling the process) leaves the whole job waiting until the batch system's
 * time limit, hours of an allocation for nothing.  The watchdog is a thread per rank that
 * wakes a few times per timeout and ends the process with one line when the work loops have
 * not said "progress" (cnf_watchdog_beat) for longer than the timeout.  Its peers then fail in
 * their next collective or are killed by the launcher, so the job ends within about one
 * timeout instead of at the time limit.
 *
 * Waits that are legitimately long (an ensemble group that finished waiting for the others,
 * rank 0 writing a file the others wait for) are bracketed by suspend/resume.  A process that
 * is stopped and continued (SIGSTOP/SIGCONT, `scontrol suspend`) is not hung: the thread
 * notices that it slept far longer than it asked to and restarts the count.
 *
 * The thread never calls MPI (cnflow initialises MPI_THREAD_FUNNELED) nor cnflow's error
 * state; it writes its line with write(2) and leaves with _exit, since a hung main thread may
 * hold any lock (stdio, HDF5, MPI) an orderly exit would need. */
#include "cnflow/core.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int running, stop;
  double timeout_s;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Written by the main thread, read by the watchdog thread: lock-free so a beat costs one
 * clock read and two relaxed stores. */
static _Atomic int64_t last_beat_ns;
static _Atomic(const char *) last_where;
static atomic_int suspended;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cnf_watchdog_beat_(const char *where) {
  atomic_store_explicit(&last_beat_ns, now_ns(), memory_order_relaxed);
  atomic_store_explicit(&last_where, where, memory_order_relaxed);
}

void cnf_watchdog_suspend(const char *where) {
  cnf_watchdog_beat_(where);
  atomic_fetch_add_explicit(&suspended, 1, memory_order_relaxed);
}

void cnf_watchdog_resume(void) {
  /* the wait is over: the count starts again from here, not from before the wait */
  atomic_store_explicit(&last_beat_ns, now_ns(), memory_order_relaxed);
  atomic_fetch_sub_explicit(&suspended, 1, memory_order_relaxed);
}

int cnf_watchdog_armed_ = 0;

static _Noreturn void fire(double idle_s, const char *where) {
  char line[512];
  int n = snprintf(line, sizeof line,
                   "cnflow: error: rank %d: no progress for %.0f s (-watchdog %g; last seen at "
                   "%s): this rank or one it waits for is hung; stopping the job\n",
                   cnf_log_rank(), idle_s, wd.timeout_s, where ? where : "start");
  if (n > 0) {
    ssize_t w = write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    (void)w;
  }
  _exit(CNF_WATCHDOG_EXIT);
}

static void *watch(void *arg) {
  (void)arg;
  /* a few looks per timeout bound the reaction to 1.25 timeouts; at most 1 s apart */
  const double tick_s = fmin(wd.timeout_s / 4, 1.0);
  const int64_t tick_ns = (int64_t)(tick_s * 1e9), timeout_ns = (int64_t)(wd.timeout_s * 1e9);
  int64_t prev = now_ns();
  pthread_mutex_lock(&wd.lock);
  while (!wd.stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t t = (int64_t)until.tv_sec * 1000000000 + until.tv_nsec + tick_ns;
    until.tv_sec = (time_t)(t / 1000000000);
    until.tv_nsec = (long)(t % 1000000000);
    int e;
    do
      e = pthread_cond_timedwait(&wd.wake, &wd.lock, &until);
    while (e == 0 && !wd.stop); /* spurious wake-ups */
    if (wd.stop)
      break;
    const int64_t now = now_ns();
    /* slept much longer than asked: the process was stopped (or starved) and continued; the
     * main thread was frozen with us, which is not a hang */
    if (now - prev > 2 * tick_ns + 500000000)
      atomic_store_explicit(&last_beat_ns, now, memory_order_relaxed);
    prev = now;
    if (atomic_load_explicit(&suspended, memory_order_relaxed) > 0)
      continue;
    const int64_t idle = now - atomic_load_explicit(&last_beat_ns, memory_order_relaxed);
    if (idle > timeout_ns)
      fire((double)idle * 1e-9, atomic_load_explicit(&last_where, memory_order_relaxed));
  }
  pthread_mutex_unlock(&wd.lock);
  return NULL;
}

int cnf_watchdog_start(double timeout_s) {
  if (!(timeout_s >= 0) || isinf(timeout_s))
    return cnf_error_set(CNF_ERR_ARG, "-watchdog must be 0 (off) or a number of seconds, got %g",
                         timeout_s);
  if (timeout_s == 0 || wd.running)
    return 0;
  wd.timeout_s = timeout_s;
  wd.stop = 0;
  cnf_watchdog_beat_("start");
  atomic_store(&suspended, 0);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int e = pthread_cond_init(&wd.wake, &ca);
  pthread_condattr_destroy(&ca);
  if (e)
    return cnf_error_set(CNF_ERR_STATE, "watchdog: cannot create its condition variable: %s",
                         strerror(e));
  if ((e = pthread_create(&wd.thread, NULL, watch, NULL)) != 0) {
    pthread_cond_destroy(&wd.wake);
    return cnf_error_set(CNF_ERR_STATE, "watchdog: cannot start its thread: %s", strerror(e));
  }
  wd.running = 1;
  cnf_watchdog_armed_ = 1;
  return 0;
}

void cnf_watchdog_stop(void) {
  if (!wd.running)
    return;
  pthread_mutex_lock(&wd.lock);
  wd.stop = 1;
  pthread_cond_signal(&wd.wake);
  pthread_mutex_unlock(&wd.lock);
  pthread_join(wd.thread, NULL);
  pthread_cond_destroy(&wd.wake);
  wd.running = 0;
  cnf_watchdog_armed_ = 0;
}

int cnf_watchdog_running(void) { return wd.running; }
