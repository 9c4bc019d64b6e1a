/* Fuzz harness: the model loader (src/flow/flow_io.c cnf_flow_load, as sample, scan, regress
 * and evaluate call it, then cnf_model_binding on its provenance).  A file it accepts must give
 * a usable flow: log-densities of a few points are computed (a load that accepted inconsistent
 * sizes shows up there under ASan). */
#include "fuzz_common.h"
#include "cnflow/flow.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_mpi_init(argc, argv);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_temp("model", data, size);
  cnf_flow *f = NULL;
  static cnf_model_provenance prov; /* 6 kB: not on libFuzzer's stack */
  int rc = cnf_flow_load(path, &f, &prov);
  fuzz_check_error(rc, "cnf_flow_load");
  if (rc == 0) {
    FUZZ_ASSERT(f);
    int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f);
    FUZZ_ASSERT(D >= 1 && C >= 0);
    char v[256];
    int b = cnf_model_binding(&prov, "target", v, sizeof v);
    FUZZ_ASSERT(b == 0 || b == 1 || b == CNF_ERR_ARG);
    cnf_error_clear();
    if (D <= 4096 && C <= 4096) {
      enum { N = 3 };
      cnf_real *x = calloc((size_t)N * D, sizeof *x), *c = calloc((size_t)N * (C ? C : 1), sizeof *c);
      cnf_real logp[N];
      FUZZ_ASSERT(x && c);
      for (int i = 0; i < N * D; i++)
        x[i] = (cnf_real)(0.1 * (i % 7) - 0.3);
      for (int i = 0; i < N * C; i++)
        c[i] = (cnf_real)(0.2 * (i % 5));
      rc = cnf_flow_log_prob(f, N, x, C ? c : NULL, logp);
      fuzz_check_error(rc, "cnf_flow_log_prob");
      free(x);
      free(c);
    }
    cnf_flow_free(&f);
  } else {
    FUZZ_ASSERT(f == NULL);
  }
  unlink(path);
  return 0;
}
