/* Thin typed wrappers over PETSc's options database (the only place the CLI reads options).
 * With -help they list each option with its default and help text instead of doing work. */
#include "cli.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cli_help_requested(void) {
  PetscBool help = PETSC_FALSE; /* main() renames -help/-h to -cnflow_help (PETSc eats -help) */
  PetscOptionsHasName(NULL, NULL, "-cnflow_help", &help);
  return help == PETSC_TRUE;
}

void cli_help_header(const char *usage, const char *description) {
  if (!cli_help_requested() || cnf_log_rank() != 0)
    return;
  printf("usage: %s\n%s\noptions (PETSc style; also from -options_file FILE or PETSC_OPTIONS):\n",
         usage, description);
}

static void help_line(const char *name, const char *def, const char *help) {
  if (cli_help_requested() && cnf_log_rank() == 0)
    printf("  -%-28s %-14s %s\n", name, def, help);
}

static int option_key(const char *name, char *key, size_t len) {
  if (snprintf(key, len, "-%s", name) >= (int)len)
    return cnf_error_set(CNF_ERR_ARG, "option name too long: %s", name);
  return 0;
}

/* The option's raw value if it was given: 1 and buf filled, 0 if absent.  Values are parsed
 * here rather than by PetscOptionsGetInt/Real/Bool, which report a malformed value with a
 * multi-line PETSc trace instead of returning an error we can print as one line. */
static int option_value(const char *key, char *buf, size_t len) {
  PetscBool set = PETSC_FALSE;
  buf[0] = '\0';
  if (PetscOptionsGetString(NULL, NULL, key, buf, len, &set))
    return cnf_error_set(CNF_ERR_ARG, "option %s: bad value", key);
  return set == PETSC_TRUE;
}

int cli_get_int(const char *name, int def, const char *help, int *out) {
  char key[128], d[32], buf[256];
  CNF_CALL(option_key(name, key, sizeof key));
  snprintf(d, sizeof d, "<%d>", def);
  help_line(name, d, help);
  *out = def;
  int set = option_value(key, buf, sizeof buf);
  CNF_CALL(set);
  if (set) {
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (end == buf || *end || errno || v < INT_MIN || v > INT_MAX)
      return cnf_error_set(CNF_ERR_ARG, "option %s expects an integer, got '%s'", key, buf);
    *out = (int)v;
  }
  return 0;
}

int cli_get_int64(const char *name, int64_t def, const char *help, int64_t *out) {
  char key[128], d[32], buf[256];
  CNF_CALL(option_key(name, key, sizeof key));
  snprintf(d, sizeof d, "<%lld>", (long long)def);
  help_line(name, d, help);
  *out = def;
  int set = option_value(key, buf, sizeof buf);
  CNF_CALL(set);
  if (set) {
    char *end;
    errno = 0;
    long long iv = strtoll(buf, &end, 10); /* exact for every int64 */
    if (end != buf && !*end && !errno) {
      *out = (int64_t)iv;
      return 0;
    }
    double v = strtod(buf, &end); /* also accept 7e6 */
    /* written so that NaN fails the range test before the integer conversion */
    if (end == buf || *end || !(v >= -9.2e18 && v <= 9.2e18) || v != (double)(int64_t)v)
      return cnf_error_set(CNF_ERR_ARG, "option %s expects an integer, got '%s'", key, buf);
    *out = (int64_t)v;
  }
  return 0;
}

int cli_get_real(const char *name, double def, const char *help, double *out) {
  char key[128], d[32], buf[256];
  CNF_CALL(option_key(name, key, sizeof key));
  snprintf(d, sizeof d, "<%g>", def);
  help_line(name, d, help);
  *out = def;
  int set = option_value(key, buf, sizeof buf);
  CNF_CALL(set);
  if (set) {
    char *end;
    double v = strtod(buf, &end);
    if (end == buf || *end)
      return cnf_error_set(CNF_ERR_ARG, "option %s expects a real number, got '%s'", key, buf);
    if (isnan(v))
      return cnf_error_set(CNF_ERR_ARG, "option %s is NaN", key);
    *out = v;
  }
  return 0;
}

int cli_get_bool(const char *name, int def, const char *help, int *out) {
  static const char *const truthy[] = {"", "1", "true", "yes", "on"};
  static const char *const falsy[] = {"0", "false", "no", "off"};
  char key[128], buf[64];
  CNF_CALL(option_key(name, key, sizeof key));
  help_line(name, def ? "<true>" : "<false>", help);
  *out = def ? 1 : 0;
  int set = option_value(key, buf, sizeof buf);
  CNF_CALL(set);
  if (!set)
    return 0;
  /* PETSc's spellings; a bare flag ("-name" without a value) means true */
  for (size_t i = 0; i < sizeof truthy / sizeof truthy[0]; i++)
    if (strcasecmp(buf, truthy[i]) == 0)
      return *out = 1, 0;
  for (size_t i = 0; i < sizeof falsy / sizeof falsy[0]; i++)
    if (strcasecmp(buf, falsy[i]) == 0)
      return *out = 0, 0;
  return cnf_error_set(CNF_ERR_ARG, "option %s expects true/false, got '%s'", key, buf);
}

int cli_get_string(const char *name, const char *def, const char *help, char *out, size_t len) {
  char key[128], d[96];
  PetscBool set = PETSC_FALSE;
  CNF_CALL(option_key(name, key, sizeof key));
  snprintf(d, sizeof d, "<%s>", def ? def : "");
  help_line(name, d, help);
  if (strlen(def ? def : "") >= len)
    return cnf_error_set(CNF_ERR_ARG, "default of %s too long", key);
  strcpy(out, def ? def : "");
  if (PetscOptionsGetString(NULL, NULL, key, out, len, &set))
    return cnf_error_set(CNF_ERR_ARG, "option %s: bad value", key);
  return 0;
}

int cli_common_setup(void) {
  int threads = 1, level = 1;
  CNF_CALL(cli_get_int("blas_threads", 1, "OpenBLAS threads per rank", &threads));
  CNF_CALL(cli_get_int("log_level", 1, "0 quiet, 1 info, 2 debug (all ranks)", &level));
  if (threads < 1 || threads > 256)
    return cnf_error_set(CNF_ERR_ARG, "-blas_threads must be in [1, 256], got %d", threads);
  openblas_set_num_threads(threads);
  cnf_log_set_level((cnf_log_level)level);
  double watchdog = 0;
  CNF_CALL(cli_get_real("watchdog", 0, "seconds without progress after which a rank ends the "
                        "job as hung (0 off; the SLURM scripts set 1800)", &watchdog));
  if (watchdog < 0 || isinf(watchdog))
    return cnf_error_set(CNF_ERR_ARG, "-watchdog must be 0 (off) or a number of seconds, got %g",
                         watchdog);
  if (watchdog > 0 && watchdog < 1)
    return cnf_error_set(CNF_ERR_ARG, "-watchdog %g: below 1 s every pause of the machine would "
                         "end the job (0 turns it off)", watchdog);
  if (!cli_help_requested())
    CNF_CALL(cnf_watchdog_start(watchdog));
  return 0;
}

/* A mistyped option (-n_events for -n) would otherwise be ignored silently and a long job run
 * with the default.  PETSc records which options were queried; every command calls this after
 * reading its options and before doing work.  -ignore_unused_options lets a shared options
 * file carry options of other commands. */
int cli_check_unused_options(void) {
  int ignore = 0;
  CNF_CALL(cli_get_bool("ignore_unused_options", 0,
                        "do not fail on options no part of this command reads", &ignore));
  if (cli_help_requested())
    return 0;
  PetscInt n = 0;
  char **names = NULL, **values = NULL;
  if (PetscOptionsLeftGet(NULL, &n, &names, &values))
    return cnf_error_set(CNF_ERR_STATE, "cannot list the unused options");
  char list[512] = "";
  for (PetscInt i = 0; i < n; i++) {
    if (strcmp(names[i], "cnflow_help") == 0)
      continue;
    size_t used = strlen(list);
    snprintf(list + used, sizeof list - used, "%s-%s", used ? ", " : "", names[i]);
  }
  PetscOptionsLeftRestore(NULL, &n, &names, &values);
  if (!list[0])
    return 0;
  if (ignore) {
    if (cnf_log_rank() == 0)
      cnf_log_warn("ignoring unused option(s): %s", list);
    return 0;
  }
  return cnf_error_set(CNF_ERR_ARG,
                       "unknown option(s) for this command: %s (-help lists the options; "
                       "-ignore_unused_options to go on)", list);
}
