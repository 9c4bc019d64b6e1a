/* `cnflow regress`: the direct-regression baseline's prediction stage (include/cnflow/infer.h):
 * every shower of a split predicted by a regression ensemble trained with
 * `cnflow train -prep regress`, written in the scan.h5 layout so `cnflow bias` treats the
 * regression and the likelihood scans alike. */
#include "cli.h"
#include "cnflow/infer.h"

#include <mpi.h>

int cmd_regress(int argc, char **argv) {
  (void)argc;
  (void)argv;
  cnf_regress_job j;
  cnf_regress_job_default(&j);
  cli_help_header("cnflow regress -data FILE -ensemble DIR/ensemble.txt [-prior LABEL] [-o scan.h5]",
                  "Predict the incident energy of every shower of a split with a regression\n"
                  "ensemble (cnflow train -prep regress, e.g. jobs/regress_uniform.opts): member k\n"
                  "predicts E_k = 10 GeV * 10^m_k(layer energies) (its flow's inverse at z = 0),\n"
                  "the ensemble the mean of the E_k.  Written in the scan.h5 layout (method\n"
                  "\"regression\", intervals NaN) for cnflow bias; each rank predicts contiguous\n"
                  "blocks and writes its rows collectively into <o>.tmp, renamed when complete.");
  CNF_CALL(cli_get_string("data", "", "dataset file with the showers [required]", j.data,
                          sizeof j.data));
  CNF_CALL(cli_get_string("split", "test", "split to predict: train|val|test|all", j.split,
                          sizeof j.split));
  CNF_CALL(cli_get_string("target", "", "true-energy dataset copied to e_true (default: the "
                          "model's training binding, incident_energies)", j.target,
                          sizeof j.target));
  CNF_CALL(cli_get_string("target_columns", "", "its column (default: the model's / the only "
                          "one)", j.target_columns, sizeof j.target_columns));
  CNF_CALL(cli_get_string("cond", "", "input dataset of the regressor (default: the model's, "
                          "layers)", j.cond, sizeof j.cond));
  CNF_CALL(cli_get_string("cond_columns", "", "comma list of input columns (default: the "
                          "model's / all)", j.cond_columns, sizeof j.cond_columns));
  CNF_CALL(cli_get_string("ensemble", "", "regression ensemble manifest (DIR/ensemble.txt) or "
                          "one model file [required]", j.ensemble, sizeof j.ensemble));
  CNF_CALL(cli_get_string("o", "scan.h5", "output file (scan.h5 layout)", j.out, sizeof j.out));
  CNF_CALL(cli_get_string("prior", "", "label of the training prior stored in the output (e.g. "
                          "uniform, loguniform)", j.prior, sizeof j.prior));
  CNF_CALL(cli_get_int("block", 4096, "showers per flow call and per collective write", &j.block));
  CNF_CALL(cli_get_int64("max_showers", 0, "predict the first N showers of the split (0 = all)",
                         &j.max_showers));
  CNF_CALL(cli_get_real("progress", 10, "seconds between progress lines (0: none)",
                        &j.progress_s));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  if (!j.data[0] || !j.ensemble[0])
    return cnf_error_set(CNF_ERR_ARG, "regress: -data and -ensemble are required (-help lists "
                         "the options)");
  if (j.block < 1 || j.max_showers < 0)
    return cnf_error_set(CNF_ERR_ARG, "regress: -block must be >= 1 and -max_showers >= 0");
  cnf_regress_summary s;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CNF_CALL(cnf_regress_file(&j, MPI_COMM_WORLD, &s));
  cnf_log_info("regress: %llu showers with %d member(s) in %.2f s on %d rank(s), %.0f showers/s; "
               "mean E_pred/E_true %.4f; %llu failed (non-finite prediction); wrote %s",
               (unsigned long long)s.showers, s.members, s.seconds, size, s.showers_per_s,
               s.mean_ratio, (unsigned long long)s.failed, j.out);
  return 0;
}
