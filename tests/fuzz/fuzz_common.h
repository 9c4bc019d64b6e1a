/* Shared pieces of the fuzz harnesses (tests/fuzz/fuzz_*.c).  Each harness defines
 * LLVMFuzzerInitialize + LLVMFuzzerTestOneInput; with -DCNFLOW_FUZZ=ON they are linked with
 * libFuzzer, otherwise with driver.c, which replays files (the seed corpus and the saved crash
 * inputs) through them so that the normal build's ctest keeps every found bug fixed. */
#ifndef CNFLOW_FUZZ_COMMON_H
#define CNFLOW_FUZZ_COMMON_H

#include "cnflow/core.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The readers take paths, not buffers: the input goes to a per-process file (libFuzzer's
 * -jobs run several processes in one directory).  Aborts if it cannot: a harness that silently
 * tested nothing would look like a clean run. */
static inline const char *fuzz_write_temp(const char *tag, const uint8_t *data, size_t size) {
  static char path[256];
  const char *dir = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/cnflow_fuzz_%s_%ld", dir && *dir ? dir : "/tmp", tag,
           (long)getpid());
  FILE *fp = fopen(path, "wb");
  if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) {
    fprintf(stderr, "fuzz: cannot write %s\n", path);
    abort();
  }
  return path;
}

/* Single-rank MPI, once per process; MPI_Finalize is never called (libFuzzer exits itself). */
static inline void fuzz_mpi_init(int *argc, char ***argv) {
  int done = 0;
  MPI_Initialized(&done);
  if (!done) {
    setenv("OMPI_MCA_sharedfp", "^lockedfile", 0); /* as main(): no probe files beside inputs */
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      fprintf(stderr, "fuzz: MPI_Init failed\n");
      abort();
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
}

/* What every reader owes the user on bad input: a negative status with a one-line, non-empty
 * message (the CLI prints it as "cnflow: error: <message>").  Anything else is a harness
 * failure, reported as a crash. */
static inline void fuzz_check_error(int rc, const char *what) {
  if (getenv("CNFLOW_FUZZ_VERBOSE")) /* to see what a corpus reaches */
    fprintf(stderr, "fuzz: %s -> %d %s\n", what, rc, rc < 0 ? cnf_error_message() : "");
  if (rc >= 0)
    return;
  const char *m = cnf_error_message();
  if (!m || !m[0] || strchr(m, '\n')) {
    fprintf(stderr, "fuzz: %s failed (rc %d) without a one-line message: '%s'\n", what, rc,
            m ? m : "(null)");
    abort();
  }
  cnf_error_clear();
}

#define FUZZ_ASSERT(cond)                                                                     \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      fprintf(stderr, "fuzz: %s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);     \
      abort();                                                                                \
    }                                                                                         \
  } while (0)

#endif
