/* `cnflow evaluate`: the studies' metrics of generated vs reference events (samples.h5 of
 * `cnflow sample`) into metrics.h5, with a printed summary (include/cnflow/infer.h). */
#include "cli.h"
#include "cnflow/infer.h"

#include <math.h>
#include <mpi.h>

int cmd_evaluate(int argc, char **argv) {
  (void)argc;
  (void)argv;
  static cnf_eval_job j;
  cnf_eval_job_default(&j);
  cli_help_header("cnflow evaluate -samples samples.h5 [-o metrics.h5] [options]",
                  "Compare generated with reference events the way the studies did: per-variable\n"
                  "1-D Wasserstein distances and separation powers (binned, with errors), and by\n"
                  "kind: hgg -- resolution (iterative +-k sigma core width) in bins of truth ET,\n"
                  "|eta| and mu, m_gg and pT_gg, the response correlation matrix, the low tail;\n"
                  "images -- average images, brightest crystals, width, R9, DBSCAN clusters\n"
                  "inclusive and in four d and four b bins, (d, b) grid means.  A classifier (MLP)\n"
                  "trained to separate generated from reference events gives the held-out AUC.\n"
                  "Every histogram is also stored per ensemble member (the band in analysis/).");
  CNF_CALL(cli_get_string("samples", "", "samples.h5 written by cnflow sample [required]",
                          j.samples, sizeof j.samples));
  CNF_CALL(cli_get_string("o", "metrics.h5", "output file", j.out, sizeof j.out));
  CNF_CALL(cli_get_int("bins", 50, "histogram bins", &j.n_bins));
  CNF_CALL(cli_get_real("core_k", 2.0, "core-width window: +- k sigma", &j.core_k));
  CNF_CALL(cli_get_int("image_rows", 16, "rows of an image target (ParaFlow: 16 along y)",
                       &j.image_rows));
  CNF_CALL(cli_get_int("image_cols", 8, "columns of an image target (ParaFlow: 8 along x)",
                       &j.image_cols));
  CNF_CALL(cli_get_int64("max_events", 0, "evaluate the first N events (0 = all)",
                         &j.max_events));
  CNF_CALL(cli_get_bool("classifier", 1, "run the classifier test", &j.classifier));
  CNF_CALL(cli_get_int("clf_epochs", 20, "classifier training epochs", &j.clf.epochs));
  CNF_CALL(cli_get_int("clf_hidden", 64, "classifier hidden units per layer", &j.clf.hidden));
  CNF_CALL(cli_get_int("clf_layers", 2, "classifier hidden layers", &j.clf.n_hidden));
  CNF_CALL(cli_get_int64("clf_max_train", 100000, "classifier training events per kind (0 = "
                         "all even events)", &j.clf.max_train));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  if (!j.samples[0])
    return cnf_error_set(CNF_ERR_ARG, "evaluate: -samples is required (-help lists the options)");
  if (j.n_bins < 2 || !(j.core_k > 0) || j.image_rows < 1 || j.image_cols < 1 ||
      j.max_events < 0 || j.clf.epochs < 1 || j.clf.hidden < 1 || j.clf.n_hidden < 0)
    return cnf_error_set(CNF_ERR_ARG, "evaluate: -bins >= 2, -core_k > 0, image sizes >= 1, "
                         "-max_events >= 0 and classifier sizes >= 1 are required");
  cnf_eval_summary s;
  CNF_CALL(cnf_eval_file(&j, MPI_COMM_WORLD, &s));
  cnf_log_info("evaluate: %llu events (%s, %d dims, %d member(s)) in %.1f s, %.0f events/s",
               (unsigned long long)s.events, s.kind, s.dims, s.members, s.seconds,
               s.events_per_s);
  cnf_log_info("evaluate: mean 1-D W1 %.4g, mean separation power %.4g, classifier AUC "
               "%.4f +- %.4f; wrote %s", s.w1_mean, s.sep_mean, s.auc, s.auc_err, j.out);
  return 0;
}
