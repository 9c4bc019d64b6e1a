/* `cnflow scan`: per-shower likelihood scans of a dataset over a trained ensemble
 * (include/cnflow/infer.h), embarrassingly parallel over the ranks, into scan.h5. */
#include "cli.h"
#include "cnflow/infer.h"
#include "cnflow/train.h"

#include <mpi.h>
#include <string.h>

int cmd_scan(int argc, char **argv) {
  (void)argc;
  (void)argv;
  cnf_scan_job j;
  cnf_scan_job_default(&j);
  cli_help_header("cnflow scan -data FILE -target DSET -cond DSET -ensemble DIR/ensemble.txt "
                  "[options]",
                  "Calibrate every shower of a split by maximum likelihood over a trained flow\n"
                  "ensemble: log L(E) = log mean_k p_k(x | E) on a log-spaced grid over the whole\n"
                  "prior range, refined with the exact dlogL/dE (all showers of a block iterating\n"
                  "together in batched flow evaluations, or per shower by TAO + Brent with\n"
                  "-scan_method tao), and the 68% interval where -2 delta log L = 1.  Each rank scans contiguous blocks; scan.h5 rows\n"
                  "follow the input order, written to <o>.tmp block by block and renamed when\n"
                  "complete; SIGTERM/SIGUSR1 stop after the current block (exit status 75) and\n"
                  "-resume continues.  A job array scans -part i of -parts n (whole blocks) into\n"
                  "its own file; cnflow scan -merge p0.h5,p1.h5,... -o scan.h5 joins them into\n"
                  "the file a single job writes.");
  CNF_CALL(cli_get_string("data", "", "dataset file with the showers [required]", j.data,
                          sizeof j.data));
  CNF_CALL(cli_get_string("split", "test", "split to scan: train|val|test|all", j.split,
                          sizeof j.split));
  CNF_CALL(cli_get_string("target", "layers", "target dataset (what the flows model)", j.target,
                          sizeof j.target));
  CNF_CALL(cli_get_string("target_columns", "", "comma list of target columns (default all)",
                          j.target_columns, sizeof j.target_columns));
  CNF_CALL(cli_get_string("cond", "incident_energies", "condition dataset", j.cond,
                          sizeof j.cond));
  CNF_CALL(cli_get_string("cond_columns", "", "comma list of condition columns (default all)",
                          j.cond_columns, sizeof j.cond_columns));
  CNF_CALL(cli_get_string("scan_column", "", "the condition column scanned (default: the only "
                          "one)", j.scan_column, sizeof j.scan_column));
  CNF_CALL(cli_get_string("ensemble", "", "ensemble manifest (DIR/ensemble.txt) or one model "
                          "file [required]", j.ensemble, sizeof j.ensemble));
  CNF_CALL(cli_get_string("o", "scan.h5", "output file", j.out, sizeof j.out));
  CNF_CALL(cli_get_string("prior", "", "label of the training prior stored in scan.h5 (e.g. "
                          "uniform, loguniform)", j.prior, sizeof j.prior));
  CNF_CALL(cli_get_real("e_min", 1.0, "lower end of the prior range searched, GeV", &j.e_min_gev));
  CNF_CALL(cli_get_real("e_max", 100.0, "upper end of the prior range searched, GeV",
                        &j.e_max_gev));
  CNF_CALL(cli_get_int("scan_grid", 48, "log-spaced grid points over the prior range (they only find the basin)",
                       &j.n_grid));
  CNF_CALL(cli_get_bool("scan_refine", 1, "refinement and 68% interval (false: the grid "
                        "maximum only, intervals NaN)", &j.refine));
  char method[16];
  CNF_CALL(cli_get_string("scan_method", "lockstep", "refinement: lockstep (batched Newton-secant "
                          "+ Illinois, all showers of a block together) | tao (one TAO BLMVM "
                          "solve + GSL Brent roots per shower, point by point)", method,
                          sizeof method));
  if (strcmp(method, "lockstep") == 0)
    j.method = CNF_SCAN_LOCKSTEP;
  else if (strcmp(method, "tao") == 0)
    j.method = CNF_SCAN_TAO;
  else
    return cnf_error_set(CNF_ERR_ARG, "-scan_method %s: expected lockstep or tao", method);
  CNF_CALL(cli_get_int("scan_block", 32, "showers per batched flow evaluation (x grid points)",
                       &j.block));
  CNF_CALL(cli_get_int64("max_showers", 0, "scan the first N showers of the split (0 = all)",
                         &j.max_showers));
  CNF_CALL(cli_get_real("progress", 10, "seconds between progress lines (0: none)",
                        &j.progress_s));
  CNF_CALL(cli_get_bool("resume", 0, "continue <o>.tmp left by an interrupted scan, skipping "
                        "its finished blocks", &j.resume));
  CNF_CALL(cli_get_int64("scan_interrupt_after_blocks", 0, "testing: stop as on SIGTERM after "
                         "N rounds of blocks (0 off)", &j.interrupt_after_blocks));
  CNF_CALL(cli_get_int("part", 0, "with -parts n: scan only part i (0-based) of n runs of "
                       "whole blocks (e.g. $SLURM_ARRAY_TASK_ID)", &j.part));
  CNF_CALL(cli_get_int("parts", 0, "split the showers into n parts for a job array (0: scan "
                       "everything)", &j.parts));
  static char merge[16384];
  CNF_CALL(cli_get_string("merge", "", "comma list of the part files of one scan: merge them "
                          "into -o (no scanning)", merge, sizeof merge));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  if (merge[0]) {
    const char *files[4096];
    int n = 0;
    for (char *t = strtok(merge, ","); t; t = strtok(NULL, ","))
      if (*t) {
        if (n == 4096)
          return cnf_error_set(CNF_ERR_ARG, "scan: -merge lists more than 4096 files");
        files[n++] = t;
      }
    CNF_CALL(cnf_scan_merge(files, n, j.out, MPI_COMM_WORLD));
    cnf_log_info("scan: merged %d part file(s) into %s", n, j.out);
    return 0;
  }
  if (j.parts < 0)
    return cnf_error_set(CNF_ERR_ARG, "scan: -parts must be >= 0");
  if (!j.data[0] || !j.ensemble[0])
    return cnf_error_set(CNF_ERR_ARG, "scan: -data and -ensemble are required (-help lists "
                         "the options)");
  if (j.block < 1 || j.max_showers < 0)
    return cnf_error_set(CNF_ERR_ARG, "scan: -scan_block must be >= 1 and -max_showers >= 0");
  cnf_train_install_signal_handlers(); /* SIGTERM / SIGUSR1: stop after the current block */
  cnf_scan_summary s;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CNF_CALL(cnf_scan_file(&j, MPI_COMM_WORLD, &s));
  cnf_log_info("scan: %llu showers (%llu scanned now) in %.1f s on %d rank(s), %.1f showers/s; flagged: %llu at "
               "the prior boundary, %llu open intervals, %llu with several maxima, %llu failed; "
               "wrote %s", (unsigned long long)s.showers, (unsigned long long)s.scanned, s.seconds, size, s.showers_per_s,
               (unsigned long long)s.flagged[0], (unsigned long long)s.flagged[1],
               (unsigned long long)s.flagged[2], (unsigned long long)s.flagged[3], j.out);
  if (s.scanned > 0)
    cnf_log_info("scan: flow evaluations per shower and member: %.1f log p + %.1f with the "
                 "condition gradient", s.logp_per_shower, s.grad_per_shower);
  return 0;
}
