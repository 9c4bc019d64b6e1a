/* Fuzz harness: option handling (src/cli/options.c over PETSc's options database).  The first
 * input byte picks the form the rest takes:
 *   even: an options file (-options_file FILE), inserted with PetscOptionsInsertFile;
 *   odd:  a command line, split at NUL bytes and newlines into argv, inserted with
 *         PetscOptionsInsert as PetscInitialize does for main's argv.
 * Then every typed getter reads a set of names (the values the fuzzer puts there are parsed by
 * cli_get_*) and cli_check_unused_options lists the rest, as every command does.  The database
 * is cleared between inputs. */
#include "fuzz_common.h"
#include "../../src/cli/cli.h"

#include <petscsys.h>

static int petsc_ok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_mpi_init(argc, argv);
  /* no arguments: libFuzzer's own -flags must not reach PETSc's database */
  if (PetscInitializeNoArguments()) {
    fprintf(stderr, "fuzz: PetscInitialize failed\n");
    abort();
  }
  /* PETSc errors come back as codes without a printed trace (the CLI turns them into
   * one-line messages, as it does here) */
  PetscPushErrorHandler(PetscReturnErrorHandler, NULL);
  petsc_ok = 1;
  return 0;
}

static void read_options(void) {
  int i;
  int64_t i64;
  double r;
  char s[64];
  static const char *const names[] = {"n", "seed", "o", "lr", "resume", "epochs", "a", "x"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    fuzz_check_error(cli_get_int(names[k], 3, "", &i), "cli_get_int");
    fuzz_check_error(cli_get_int64(names[k], -4, "", &i64), "cli_get_int64");
    int rc = cli_get_real(names[k], 0.5, "", &r);
    fuzz_check_error(rc, "cli_get_real");
    FUZZ_ASSERT(rc < 0 || r == r); /* NaN is refused */
    fuzz_check_error(cli_get_bool(names[k], 1, "", &i), "cli_get_bool");
    rc = cli_get_string(names[k], "def", "", s, sizeof s);
    fuzz_check_error(rc, "cli_get_string");
    FUZZ_ASSERT(rc < 0 || strlen(s) < sizeof s);
  }
  fuzz_check_error(cli_check_unused_options(), "cli_check_unused_options");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FUZZ_ASSERT(petsc_ok);
  if (size == 0)
    return 0;
  int as_file = (data[0] & 1) == 0;
  const char *path = NULL;
  if (as_file) {
    path = fuzz_write_temp("options", data + 1, size - 1);
    if (PetscOptionsInsertFile(PETSC_COMM_WORLD, NULL, path, PETSC_TRUE) == 0)
      read_options();
    unlink(path);
  } else {
    /* argv: "cnflow" then the pieces; a copy with a terminating NUL per piece */
    char *buf = malloc(size + 1);
    char **argv = malloc((size + 2) * sizeof *argv);
    FUZZ_ASSERT(buf && argv);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    int argc = 0;
    argv[argc++] = "cnflow";
    for (size_t k = 0; k < size - 1;) {
      argv[argc++] = buf + k;
      while (k < size - 1 && buf[k] && buf[k] != '\n')
        k++;
      buf[k++] = '\0';
    }
    argv[argc] = NULL;
    char **av = argv;
    if (PetscOptionsInsert(NULL, &argc, &av, NULL) == 0)
      read_options();
    free(argv);
    free(buf);
  }
  cnf_error_clear();
  PetscOptionsClear(NULL);
  return 0;
}
