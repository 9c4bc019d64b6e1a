/* Fault injection for the reliability tests (include/cnflow/core.h, CNFLOW_FAULT).
 *
 * A failure that happens on ONE rank in the middle of a collective loop (an allocation, a write,
 * a NaN, a dead process) is the hard case for an MPI program and the one a test cannot provoke
 * from outside.  CNFLOW_FAULT="rank=R,at=SITE,n=N,kind=KIND" makes rank R fail at the N-th
 * time it passes SITE, the way a real failure would: alloc / io return CNF_ERR_NOMEM /
 * CNF_ERR_IO with a message through the caller's normal error path, nan tells the caller to
 * make its value NaN, and exit / abort / kill end the process without MPI_Finalize (as a crash
 * or the kernel's OOM killer would), leaving the other ranks to mpiexec; hang stops making
 * progress for ever (a stuck file system, a deadlock), which only the -watchdog ends.
 * The variable is read once, at the first site passed; unset, every site costs one load and a
 * compare (the cnf_fault macro) and nothing else. */
#include "cnflow/core.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 1 until the variable is parsed and found unset (or the fault has fired): see cnf_fault */
int cnf_fault_armed_ = 1;

enum { KIND_ALLOC, KIND_IO, KIND_NAN, KIND_EXIT, KIND_ABORT, KIND_KILL, KIND_HANG };
static const char *const site_names[CNF_FAULT_NSITES] = {"train_step", "checkpoint",
                                                         "scan_block"};
static const char *const kind_names[] = {"alloc", "io", "nan", "exit", "abort", "kill",
                                          "hang"};
#define N_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

static struct {
  int parsed, bad, rank, site, kind;
  long n, hits;
  char spec[256];
} fault;

/* Parse "key=value,..." into `fault`; 0 or CNF_ERR_ARG naming the variable and the problem. */
static int parse(const char *spec) {
  snprintf(fault.spec, sizeof fault.spec, "%s", spec);
  fault.rank = 0;
  fault.site = fault.kind = -1;
  fault.n = 1;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", spec);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq)
      return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': '%s' is not key=value", spec, tok);
    *eq = '\0';
    const char *key = tok, *val = eq + 1;
    char *end = NULL;
    if (strcmp(key, "rank") == 0) {
      long r = strtol(val, &end, 10);
      if (!*val || *end || r < 0 || r > 1 << 24)
        return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': rank=%s is not a rank number",
                             spec, val);
      fault.rank = (int)r;
    } else if (strcmp(key, "n") == 0) {
      long n = strtol(val, &end, 10);
      if (!*val || *end || n < 1)
        return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': n=%s is not a count >= 1", spec,
                             val);
      fault.n = n;
    } else if (strcmp(key, "at") == 0) {
      for (int s = 0; s < CNF_FAULT_NSITES; s++)
        if (strcmp(val, site_names[s]) == 0)
          fault.site = s;
      if (fault.site < 0)
        return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': at=%s: the sites are train_step, "
                             "checkpoint, scan_block", spec, val);
    } else if (strcmp(key, "kind") == 0) {
      for (int k = 0; k < N_KINDS; k++)
        if (strcmp(val, kind_names[k]) == 0)
          fault.kind = k;
      if (fault.kind < 0)
        return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': kind=%s: the kinds are alloc, io, "
                             "nan, exit, abort, kill, hang", spec, val);
    } else {
      return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': unknown key '%s' (rank, at, n, "
                           "kind)", spec, key);
    }
  }
  if (fault.site < 0 || fault.kind < 0)
    return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': at= and kind= are required", spec);
  /* only the training step has a value to poison */
  if (fault.kind == KIND_NAN && fault.site != CNF_FAULT_TRAIN_STEP)
    return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': kind=nan exists only at=train_step",
                         spec);
  return 0;
}

int cnf_fault_hit_(cnf_fault_site site, const char *what) {
  if (!fault.parsed) {
    fault.parsed = 1;
    const char *spec = getenv("CNFLOW_FAULT");
    if (!spec || !*spec) {
      cnf_fault_armed_ = 0;
      return 0;
    }
    const int prc = parse(spec);
    fault.bad = prc < 0;
    if (prc < 0)
      return prc; /* the parser's message names the problem */
  }
  /* a malformed variable fails every site on every rank: a test must not pass by its typo */
  if (fault.bad)
    return cnf_error_set(CNF_ERR_ARG, "CNFLOW_FAULT='%s': malformed (rank=R,at=SITE,n=N,kind="
                         "KIND)", fault.spec);
  if ((int)site != fault.site || cnf_log_rank() != fault.rank || ++fault.hits < fault.n)
    return 0;
  cnf_fault_armed_ = 0; /* fires once */
  const char *where = what && *what ? what : site_names[site];
  switch (fault.kind) {
  case KIND_ALLOC:
    return cnf_error_set(CNF_ERR_NOMEM, "%s: out of memory (injected: CNFLOW_FAULT=%s)", where,
                         fault.spec);
  case KIND_IO:
    return cnf_error_set(CNF_ERR_IO, "%s: I/O error (injected: CNFLOW_FAULT=%s)", where,
                         fault.spec);
  case KIND_NAN:
    return CNF_FAULT_NAN;
  default:
    break;
  }
  /* the process ends (or stops) here without MPI_Finalize; say so first, the test reads it */
  fprintf(stderr, "cnflow: fault injection: rank %d %s at %s (%s, CNFLOW_FAULT=%s)\n",
          fault.rank, fault.kind == KIND_HANG ? "hangs" : "ends", site_names[site],
          kind_names[fault.kind], fault.spec);
  fflush(stderr);
  if (fault.kind == KIND_HANG)
    for (;;)
      pause(); /* no beat, no MPI: as a rank stuck in the kernel */
  if (fault.kind == KIND_EXIT)
    _exit(3);
  if (fault.kind == KIND_ABORT)
    abort();
  raise(SIGKILL);
  _exit(137); /* not reached */
}
