/* Fuzz harness: the LHEF truth reader (src/sim/hgg_input.c, hgg_input_read_lhef), as
 * `cnflow generate hgg -hgg_truth_lhef FILE` calls it, with a keep window that the first input
 * byte varies (the window bookkeeping is part of the reader). */
#include "fuzz_common.h"
#include "../../src/sim/hgg.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_mpi_init(argc, argv);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hgg_opts o;
  hgg_opts_default(&o);
  uint64_t keep_first = size ? data[0] % 4 : 0, keep_count = size ? 1 + data[0] / 4 % 8 : 8;
  if (size && data[0] >= 0xf0)
    keep_count = UINT64_MAX - keep_first; /* "all", as the generator passes for one rank */
  const char *path = fuzz_write_temp("lhef", data, size);
  snprintf(o.truth_lhef, sizeof o.truth_lhef, "%s", path);
  hgg_input in;
  int rc = hgg_input_read_lhef(&o, keep_first, keep_count, &in);
  fuzz_check_error(rc, "hgg_input_read_lhef");
  if (rc == 0) {
    FUZZ_ASSERT(in.n_selected <= in.n_read);
    FUZZ_ASSERT(in.n_kept <= keep_count && in.n_kept <= in.n_selected);
    /* touch every stored value: ASan flags a short allocation */
    double sum = 0;
    for (uint64_t i = 0; i < in.n_kept; i++) {
      sum += in.g[2 * i].et + in.g[2 * i + 1].et + (isnan(in.mu[i]) ? 0 : in.mu[i]);
      FUZZ_ASSERT(in.source[i] >= 0 && (uint64_t)in.source[i] < in.n_read);
    }
    (void)sum;
    hgg_input_free(&in);
  }
  unlink(path);
  return 0;
}
