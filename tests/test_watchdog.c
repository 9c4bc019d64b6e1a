/* The hang watchdog (src/core/watchdog.c).  It ends its process, so every case runs in a forked
 * child and the parent checks how the child ended, when, and what it printed. */
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Work that beats every 50 ms for `seconds` of its own running time (a stopped process does
 * not advance it). */
static void beating_work(double seconds) {
  for (int i = 0; i < (int)(seconds / 0.05); i++) {
    cnf_watchdog_beat("a test loop");
    sleep_s(0.05);
  }
}

typedef struct child_result {
  int exited, status, signaled;
  double seconds;
  char err[1024];
} child_result;

/* Fork; the child runs body() with stderr into a pipe and exits 0 if body returns.  If
 * stop_after >= 0 the parent SIGSTOPs the child at that time for stop_for seconds. */
static child_result run_child(void (*body)(void), double stop_after, double stop_for) {
  child_result r;
  memset(&r, 0, sizeof r);
  int fd[2];
  assert_int_equal(pipe(fd), 0);
  const double t0 = cnf_time_now();
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], STDERR_FILENO);
    body();
    cnf_watchdog_stop();
    _exit(0);
  }
  close(fd[1]);
  if (stop_after >= 0) {
    sleep_s(stop_after);
    kill(pid, SIGSTOP);
    sleep_s(stop_for);
    kill(pid, SIGCONT);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  r.seconds = cnf_time_now() - t0;
  ssize_t n = read(fd[0], r.err, sizeof r.err - 1);
  r.err[n > 0 ? n : 0] = '\0';
  close(fd[0]);
  r.exited = WIFEXITED(st);
  r.status = r.exited ? WEXITSTATUS(st) : -1;
  r.signaled = WIFSIGNALED(st);
  return r;
}

static void body_beats_then_hangs(void) {
  if (cnf_watchdog_start(1.0) != 0)
    _exit(10);
  beating_work(1.5); /* longer than the timeout in all, never a second without a beat */
  sleep_s(30);       /* the "hang": only the watchdog ends this */
  _exit(11);
}

static void test_watchdog_ends_a_hang(void **state) {
  (void)state;
  child_result r = run_child(body_beats_then_hangs, -1, 0);
  assert_true(r.exited);
  assert_int_equal(r.status, CNF_WATCHDOG_EXIT);
  /* 1.5 s of beats + 1 s timeout + at most a 0.25 s tick (slack for a loaded machine) */
  assert_true(r.seconds > 2.4);
  assert_true(r.seconds < 8.0);
  assert_non_null(strstr(r.err, "cnflow: error: rank 0: no progress for "));
  assert_non_null(strstr(r.err, "last seen at a test loop"));
  assert_null(strchr(strchr(r.err, '\n') + 1, '\n')); /* one line */
}

static void body_suspended_wait(void) {
  if (cnf_watchdog_start(1.0) != 0)
    _exit(10);
  beating_work(0.5);
  cnf_watchdog_suspend("a test wait");
  cnf_watchdog_suspend("a nested test wait"); /* suspensions nest */
  sleep_s(1.5);
  cnf_watchdog_resume();
  sleep_s(1.5); /* still inside the outer wait */
  cnf_watchdog_resume();
  beating_work(0.5); /* the count restarted at the resume: no fire right after it */
  cnf_watchdog_stop();
  cnf_watchdog_stop(); /* twice is harmless */
  /* restartable, and a stopped watchdog fires no more */
  if (cnf_watchdog_start(1.0) != 0 || !cnf_watchdog_running())
    _exit(12);
  cnf_watchdog_stop();
  if (cnf_watchdog_running())
    _exit(13);
  sleep_s(1.5);
}

static void test_watchdog_suspended_wait_is_not_a_hang(void **state) {
  (void)state;
  child_result r = run_child(body_suspended_wait, -1, 0);
  if (!r.exited || r.status != 0)
    fprintf(stderr, "child: %s\n", r.err);
  assert_true(r.exited);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.err, "");
}

static void body_beats(void) {
  if (cnf_watchdog_start(1.0) != 0)
    _exit(10);
  beating_work(2.0);
}

static void test_watchdog_stopped_process_is_not_a_hang(void **state) {
  (void)state;
  /* stopped for 3 s (3 timeouts) in the middle of its work, then continued */
  child_result r = run_child(body_beats, 0.6, 3.0);
  if (!r.exited || r.status != 0)
    fprintf(stderr, "child: %s\n", r.err);
  assert_true(r.exited);
  assert_int_equal(r.status, 0);
  assert_true(r.seconds > 4.5); /* it really was stopped */
}

static void test_watchdog_arguments(void **state) {
  (void)state;
  assert_int_equal(cnf_watchdog_start(-1), CNF_ERR_ARG);
  assert_int_equal(cnf_watchdog_start(NAN), CNF_ERR_ARG);
  assert_int_equal(cnf_watchdog_start(INFINITY), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "-watchdog"));
  assert_int_equal(cnf_watchdog_start(0), 0); /* off */
  assert_false(cnf_watchdog_running());
  cnf_watchdog_beat("not armed"); /* a beat without a watchdog does nothing */
  cnf_watchdog_stop();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_watchdog_arguments),
      cmocka_unit_test(test_watchdog_ends_a_hang),
      cmocka_unit_test(test_watchdog_suspended_wait_is_not_a_hang),
      cmocka_unit_test(test_watchdog_stopped_process_is_not_a_hang),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
