/* Rank-aware logging, timers and progress lines. */
#include "cnflow/core.h"

#include <stdarg.h>
#include <time.h>

static int log_rank = 0, log_size = 1;
static cnf_log_level log_level = CNF_LOG_INFO;

void cnf_log_set_rank(int rank, int size) {
  log_rank = rank;
  log_size = size;
}
void cnf_log_set_level(cnf_log_level level) { log_level = level; }
cnf_log_level cnf_log_get_level(void) { return log_level; }
int cnf_log_rank(void) { return log_rank; }

void cnf_log_info(const char *fmt, ...) {
  if (log_rank != 0 || log_level < CNF_LOG_INFO)
    return;
  va_list ap;
  va_start(ap, fmt);
  fputs("[cnflow] ", stdout);
  vfprintf(stdout, fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
}

void cnf_log_debug(const char *fmt, ...) {
  if (log_level < CNF_LOG_DEBUG)
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stdout, "[cnflow rank %d/%d] ", log_rank, log_size);
  vfprintf(stdout, fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
}

void cnf_log_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("cnflow: warning: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  fflush(stderr);
  va_end(ap);
}

double cnf_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cnf_progress_init(cnf_progress *p, const char *what, uint64_t total, double interval_s) {
  p->what = what;
  p->total = total;
  p->t_start = p->t_last = cnf_time_now();
  p->interval_s = interval_s;
}

static void progress_print(const cnf_progress *p, uint64_t done, double now, const char *tag) {
  double elapsed = now - p->t_start;
  double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
  double eta = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0.0;
  cnf_log_info("%s: %llu/%llu (%.1f%%), %.3g/s, elapsed %.1f s, %s %.1f s", p->what,
               (unsigned long long)done, (unsigned long long)p->total,
               p->total ? 100.0 * (double)done / (double)p->total : 100.0, rate, elapsed, tag, eta);
}

void cnf_progress_update(cnf_progress *p, uint64_t done) {
  double now = cnf_time_now();
  if (now - p->t_last < p->interval_s)
    return;
  p->t_last = now;
  progress_print(p, done, now, "ETA");
}

void cnf_progress_finish(cnf_progress *p, uint64_t done) {
  progress_print(p, done, cnf_time_now(), "remaining");
}
