/* Thin typed wrappers over PETSc's options database (the only place the CLI reads options).
 * With -help they list each option with its default and help text instead of doing work. */
#include "cli.h"

#include <cblas.h>
#include <string.h>

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

int cli_get_int(const char *name, int def, const char *help, int *out) {
  char key[128], d[32];
  PetscInt v = def;
  PetscBool set = PETSC_FALSE;
  CNF_CALL(option_key(name, key, sizeof key));
  snprintf(d, sizeof d, "<%d>", def);
  help_line(name, d, help);
  if (PetscOptionsGetInt(NULL, NULL, key, &v, &set))
    return cnf_error_set(CNF_ERR_ARG, "option %s expects an integer", key);
  *out = (int)v;
  return 0;
}

int cli_get_int64(const char *name, int64_t def, const char *help, int64_t *out) {
  char key[128], d[32], buf[64];
  PetscBool set = PETSC_FALSE;
  CNF_CALL(option_key(name, key, sizeof key));
  snprintf(d, sizeof d, "<%lld>", (long long)def);
  help_line(name, d, help);
  *out = def;
  if (PetscOptionsGetString(NULL, NULL, key, buf, sizeof buf, &set))
    return cnf_error_set(CNF_ERR_ARG, "option %s: bad value", key);
  if (set) {
    char *end;
    double v = strtod(buf, &end); /* accepts 7e6 as well as 7000000 */
    if (end == buf || *end || v < -9.2e18 || v > 9.2e18 || v != (double)(int64_t)v)
      return cnf_error_set(CNF_ERR_ARG, "option %s expects an integer, got '%s'", key, buf);
    *out = (int64_t)v;
  }
  return 0;
}

int cli_get_real(const char *name, double def, const char *help, double *out) {
  char key[128], d[32];
  PetscReal v = def;
  PetscBool set = PETSC_FALSE;
  CNF_CALL(option_key(name, key, sizeof key));
  snprintf(d, sizeof d, "<%g>", def);
  help_line(name, d, help);
  if (PetscOptionsGetReal(NULL, NULL, key, &v, &set))
    return cnf_error_set(CNF_ERR_ARG, "option %s expects a real number", key);
  if (set && !(v == v))
    return cnf_error_set(CNF_ERR_ARG, "option %s is NaN", key);
  *out = (double)v;
  return 0;
}

int cli_get_bool(const char *name, int def, const char *help, int *out) {
  char key[128];
  PetscBool v = def ? PETSC_TRUE : PETSC_FALSE, set = PETSC_FALSE;
  CNF_CALL(option_key(name, key, sizeof key));
  help_line(name, def ? "<true>" : "<false>", help);
  if (PetscOptionsGetBool(NULL, NULL, key, &v, &set))
    return cnf_error_set(CNF_ERR_ARG, "option %s expects true/false", key);
  *out = v ? 1 : 0;
  return 0;
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
  return 0;
}
