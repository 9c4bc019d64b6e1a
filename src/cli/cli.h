/* Private to src/cli: the subcommand table and helpers shared by the commands. */
#pragma once

#include "cnflow/core.h"

#include <petscsys.h>

/* A subcommand: argv[0] is the subcommand name; PETSc is initialised and options are in the
 * database.  Returns 0 or a negative cnf_status with the message set (cnf_error_set). */
typedef struct cnf_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
  /* 1 if the command returns the same error on every rank (it syncs its status before
   * collectives): main then prints the message once, on rank 0, and exits 1 without
   * MPI_Abort.  0: a failing rank prints its message and aborts the job. */
  int collective_errors;
} cnf_command;

/* Option helpers: read from the PETSc options database with a default; when -help is given
 * they print "  -name <default>: help" instead of failing.  Return <0 on malformed values. */
int cli_get_int(const char *name, int def, const char *help, int *out);
int cli_get_int64(const char *name, int64_t def, const char *help, int64_t *out);
int cli_get_real(const char *name, double def, const char *help, double *out);
int cli_get_bool(const char *name, int def, const char *help, int *out);
int cli_get_string(const char *name, const char *def, const char *help, char *out, size_t len);
/* 1 if -help / -h was given: commands print their option list and return 0 without work. */
int cli_help_requested(void);
/* Print a help header for a command (rank 0). */
void cli_help_header(const char *usage, const char *description);
/* Fail (one collective error) on options that nothing has read: typos must not run a long
 * job with defaults.  Commands call it after reading all their options. */
int cli_check_unused_options(void);
/* Apply -blas_threads (default 1) and -log_level. Called by main before any command. */
int cli_common_setup(void);

/* Commands (one file each: cmd_<name>.c) */
int cmd_demo(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_bias(int argc, char **argv);
int cmd_regress(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_fit(int argc, char **argv);
