/* Error recording and aborting.  One message per thread: the CLI prints it as the single line
 * a user sees ("cnflow: error: <message>"). */
#include "cnflow/core.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char error_message[1024];

int cnf_error_set(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
  return code;
}

const char *cnf_error_message(void) { return error_message; }

void cnf_error_clear(void) { error_message[0] = '\0'; }

const char *cnf_status_string(int code) {
  switch (code) {
  case CNF_OK: return "ok";
  case CNF_ERR_ARG: return "bad argument";
  case CNF_ERR_NOMEM: return "out of memory";
  case CNF_ERR_IO: return "I/O error";
  case CNF_ERR_FORMAT: return "bad file format";
  case CNF_ERR_NUMERIC: return "non-finite value";
  case CNF_ERR_MPI: return "MPI error";
  case CNF_ERR_PETSC: return "PETSc error";
  case CNF_ERR_STATE: return "invalid call sequence";
  case CNF_ERR_INTERRUPTED: return "interrupted (checkpoint written)";
  default: return "unknown error";
  }
}

_Noreturn void cnf_abort_(const char *file, int line, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "cnflow: fatal (rank %d) %s:%d: %s\n", cnf_log_rank(), file, line, msg);
  fflush(stderr);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized)
    MPI_Abort(MPI_COMM_WORLD, 2);
  abort();
}

void *cnf_malloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p)
    cnf_error_set(CNF_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
  return p;
}

void *cnf_calloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p)
    cnf_error_set(CNF_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
  return p;
}

void *cnf_aligned_alloc(size_t bytes) {
  void *p = NULL;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
    cnf_error_set(CNF_ERR_NOMEM, "out of memory allocating %zu aligned bytes", bytes);
    return NULL;
  }
  memset(p, 0, rounded ? rounded : 64);
  return p;
}
