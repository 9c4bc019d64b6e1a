/* `cnflow sample`: events drawn from a trained ensemble at the conditions of a dataset split,
 * into samples.h5 (include/cnflow/infer.h), parallel over the ranks and independent of their
 * number. */
#include "cli.h"
#include "cnflow/data.h"
#include "cnflow/infer.h"

#include <mpi.h>
#include <string.h>

int cmd_sample(int argc, char **argv) {
  (void)argc;
  (void)argv;
  static cnf_sample_job j; /* large: not on the stack */
  cnf_sample_job_default(&j);
  cli_help_header("cnflow sample -data FILE -ensemble DIR/ensemble.txt [-o samples.h5] [options]",
                  "Draw one event per row of a dataset split from a trained ensemble (member\n"
                  "i mod K draws row i, from the latent stream (seed, i)), at that row's\n"
                  "conditions, into samples.h5 in raw units with the row's reference targets\n"
                  "beside it (and reco = truth + response for the hgg layout).  The target and\n"
                  "condition datasets default to the model's own data binding.  The file does\n"
                  "not depend on the number of ranks; `cnflow evaluate` reads it.");
  CNF_CALL(cli_get_string("data", "", "dataset file whose conditions are sampled [required]",
                          j.data, sizeof j.data));
  CNF_CALL(cli_get_string("split", "test", "split: train|val|test|all", j.split, sizeof j.split));
  CNF_CALL(cli_get_string("ensemble", "", "ensemble manifest (DIR/ensemble.txt) or one model "
                          "file [required]", j.ensemble, sizeof j.ensemble));
  CNF_CALL(cli_get_string("target", "", "reference target dataset (default: the model's; "
                          "'none': conditions only)", j.target, sizeof j.target));
  CNF_CALL(cli_get_string("target_columns", "", "comma list of target columns (default: the "
                          "model's)", j.target_columns, sizeof j.target_columns));
  CNF_CALL(cli_get_string("cond", "", "condition dataset (default: the model's)", j.cond,
                          sizeof j.cond));
  CNF_CALL(cli_get_string("cond_columns", "", "comma list of condition columns (default: the "
                          "model's)", j.cond_columns, sizeof j.cond_columns));
  CNF_CALL(cli_get_string("truth", "truth", "truth dataset for reco = truth + response (used "
                          "when the targets are d_<name> columns)", j.truth, sizeof j.truth));
  CNF_CALL(cli_get_string("o", "samples.h5", "output file", j.out, sizeof j.out));
  int64_t seed = 1;
  CNF_CALL(cli_get_int64("seed", 1, "latent stream seed", &seed));
  CNF_CALL(cli_get_int64("max_events", 0, "sample the first N rows of the split (0 = all)",
                         &j.max_events));
  CNF_CALL(cli_get_real("progress", 10, "seconds between progress lines (0: none)",
                        &j.progress_s));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  if (!j.data[0] || !j.ensemble[0])
    return cnf_error_set(CNF_ERR_ARG, "sample: -data and -ensemble are required (-help lists "
                         "the options)");
  if (j.max_events < 0 || seed < 0)
    return cnf_error_set(CNF_ERR_ARG, "sample: -max_events and -seed must be >= 0");
  j.seed = (uint64_t)seed;
  if (strcmp(j.target, "none") == 0) {
    j.target[0] = '\0';
    j.no_reference_default = 1;
  }
  /* every rank reads the (small) model files itself: the same bindings everywhere */
  int rc = cnf_sample_job_from_model(&j);
  CNF_CALL(cnf_sync_status(MPI_COMM_WORLD, rc));
  cnf_sample_summary s;
  CNF_CALL(cnf_sample_file(&j, MPI_COMM_WORLD, &s));
  cnf_log_info("sample: %llu events in %.1f s on %d rank(s), %.0f events/s; wrote %s",
               (unsigned long long)s.events, s.seconds, s.ranks, s.events_per_s, j.out);
  return 0;
}
