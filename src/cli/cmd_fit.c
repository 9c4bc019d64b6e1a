/* `cnflow fit`: joint maximum-likelihood fit of condition columns shared by every shower of a
 * split (ParaFlow's upstream material d, b) over a trained ensemble (include/cnflow/infer.h). */
#include "cli.h"
#include "cnflow/infer.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

/* "0.5,50" -> v[0..*n); at most max values, every one finite */
static int parse_reals(const char *name, const char *s, int max, double *v, int *n) {
  *n = 0;
  const char *p = s;
  while (*p) {
    char *end = NULL;
    double x = strtod(p, &end);
    if (end == p || !isfinite(x) || (*end && *end != ','))
      return cnf_error_set(CNF_ERR_ARG, "fit: -%s '%s' is not a comma list of numbers", name, s);
    if (*n == max)
      return cnf_error_set(CNF_ERR_ARG, "fit: -%s '%s' has more than %d values", name, s, max);
    v[(*n)++] = x;
    p = *end ? end + 1 : end;
  }
  return 0;
}

int cmd_fit(int argc, char **argv) {
  (void)argc;
  (void)argv;
  cnf_fit_job j;
  cnf_fit_job_default(&j);
  char lo[256], hi[256];
  cli_help_header("cnflow fit -data FILE -ensemble DIR/ensemble.txt [options]",
                  "Fit condition columns shared by every shower of a split (default: the upstream\n"
                  "material thickness,distance of a calo-photon file) by maximum likelihood over a\n"
                  "trained ensemble: log L = sum_i log mean_k p_k(x_i | c_i with the fitted columns\n"
                  "set), on a grid over the whole box, refined by TAO with the exact gradient; the\n"
                  "covariance is the inverse Hessian.  Showers are spread over the ranks; rank 0\n"
                  "writes fit.h5 (temporary name, renamed).");
  CNF_CALL(cli_get_string("data", "", "dataset file with the showers [required]", j.data,
                          sizeof j.data));
  CNF_CALL(cli_get_string("split", "test", "split to fit: train|val|test|all", j.split,
                          sizeof j.split));
  CNF_CALL(cli_get_string("target", "showers", "target dataset (what the flows model)", j.target,
                          sizeof j.target));
  CNF_CALL(cli_get_string("target_columns", "", "comma list of target columns (default all)",
                          j.target_columns, sizeof j.target_columns));
  CNF_CALL(cli_get_string("cond", "conditions", "condition dataset", j.cond, sizeof j.cond));
  CNF_CALL(cli_get_string("cond_columns", "", "comma list of condition columns (default all)",
                          j.cond_columns, sizeof j.cond_columns));
  CNF_CALL(cli_get_string("fit_columns", "thickness,distance", "condition columns fitted "
                          "jointly (shared by every shower)", j.fit_columns, sizeof j.fit_columns));
  CNF_CALL(cli_get_string("fit_lo", "0.5,50", "lower ends of the box, one per fitted column",
                          lo, sizeof lo));
  CNF_CALL(cli_get_string("fit_hi", "1.5,90", "upper ends of the box, one per fitted column",
                          hi, sizeof hi));
  CNF_CALL(cli_get_string("ensemble", "", "ensemble manifest (DIR/ensemble.txt) or one model "
                          "file [required]", j.ensemble, sizeof j.ensemble));
  CNF_CALL(cli_get_string("o", "fit.h5", "output file", j.out, sizeof j.out));
  CNF_CALL(cli_get_int("fit_grid", 21, "grid points per fitted column", &j.n_grid));
  CNF_CALL(cli_get_bool("fit_refine", 1, "TAO refinement of the grid maximum", &j.refine));
  CNF_CALL(cli_get_int("fit_block", 256, "showers per flow evaluation", &j.block));
  CNF_CALL(cli_get_int64("max_showers", 0, "fit the first N showers of the split (0 = all)",
                         &j.max_showers));
  CNF_CALL(cli_get_real("fit_noise", -1, "U[0, noise) added to the targets, target units (< 0: "
                        "the noise the model was trained with, from its provenance)", &j.noise));
  int64_t seed = 1;
  CNF_CALL(cli_get_int64("seed", 1, "stream of the noise draws (seed, shower index)", &seed));
  j.seed = (uint64_t)seed;
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  if (!j.data[0] || !j.ensemble[0])
    return cnf_error_set(CNF_ERR_ARG, "fit: -data and -ensemble are required (-help lists the "
                         "options)");
  if (j.n_grid < 3 || j.block < 1 || j.max_showers < 0)
    return cnf_error_set(CNF_ERR_ARG, "fit: -fit_grid must be >= 3, -fit_block >= 1, "
                         "-max_showers >= 0");
  CNF_CALL(parse_reals("fit_lo", lo, CNF_FIT_MAX_PAR, j.lo, &j.n_lo));
  CNF_CALL(parse_reals("fit_hi", hi, CNF_FIT_MAX_PAR, j.hi, &j.n_hi));
  cnf_fit_result r;
  CNF_CALL(cnf_fit_file(&j, MPI_COMM_WORLD, &r));
  /* one line per fitted column: estimate, error, and the file's own values */
  char cols[256];
  snprintf(cols, sizeof cols, "%s", j.fit_columns);
  char *save = NULL, *name = strtok_r(cols, ",", &save);
  for (int p = 0; name; p++, name = strtok_r(NULL, ",", &save))
    cnf_log_info("fit: %-12s = %.5g +- %.3g   (range [%g, %g])", name, r.best[p], r.sigma[p],
                 j.lo[p], j.hi[p]);
  if (j.n_lo == 2)
    cnf_log_info("fit: correlation %.3f", r.cov[1] / (r.sigma[0] * r.sigma[1]));
  cnf_log_info("fit: %lld showers, log L max %.6g, flags %d%s%s; wrote %s", r.n_showers,
               r.logl_max, r.flags, r.flags & CNF_FIT_AT_BOUNDARY ? " (maximum on the box edge)" : "",
               r.flags & CNF_FIT_NOT_CONVEX ? " (Hessian not positive definite)" : "", j.out);
  return 0;
}
