/* cnf_train_basic on 2 ranks: every rank holds its own shard of the toy data; after training
 * the replicas must be bitwise identical (one allreduce of the gradient buffer, identical Adam
 * steps), the validation NLL must have dropped well below its initial value, and the
 * distributed mean NLL must equal the serial mean over the union of the shards. */
#include "testutil.h"

#include "cnflow/flow.h"
#include "cnflow/stats.h"
#include "cnflow/train.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

static void test_train_two_ranks(void **state) {
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  assert_int_equal(size, 2);
  const int n_train = 8000, n_val = 2000;
  uint64_t first, count, vfirst, vcount;
  cnf_partition(n_train, size, rank, &first, &count);
  cnf_partition(n_val, size, rank, &vfirst, &vcount);
  cnf_real *x = malloc(sizeof(cnf_real) * 2 * count), *c = malloc(sizeof(cnf_real) * count);
  cnf_real *xv_all = malloc(sizeof(cnf_real) * 2 * n_val), *cv_all = malloc(sizeof(cnf_real) * n_val);
  assert_non_null(x);
  assert_non_null(c);
  assert_non_null(xv_all);
  assert_non_null(cv_all);
  cnf_toy_sample(5, first, (int)count, x, c);
  cnf_toy_sample(5, n_train, n_val, xv_all, cv_all); /* every rank: the whole validation set */
  const cnf_real *xv = xv_all + 2 * vfirst, *cv = cv_all + vfirst;

  cnf_flow *f = NULL;
  if (cnf_flow_create_preset("toy", 0, 0, 5, &f) < 0 || cnf_flow_init_params(f, 5, 0) < 0)
    fail_msg("toy flow: %s", cnf_error_message());
  double nll0;
  assert_int_equal(cnf_train_mean_nll(f, MPI_COMM_WORLD, (int)vcount, xv, cv, &nll0), 0);

  cnf_train_conf conf = cnf_train_conf_default();
  conf.epochs = 3;
  conf.batch = 256;
  conf.schedule.lr = 3e-3;
  conf.log_epochs = 0;
  cnf_train_result res;
  if (cnf_train_basic(f, MPI_COMM_WORLD, (int)count, x, c, (int)vcount, xv, cv, &conf, &res) < 0)
    fail_msg("cnf_train_basic: %s", cnf_error_message());

  /* replicas bitwise identical: elementwise min and max over ranks agree */
  const size_t np = cnf_flow_num_params(f);
  const cnf_real *p = cnf_flow_params(f);
  cnf_real *lo = malloc(sizeof(cnf_real) * np), *hi = malloc(sizeof(cnf_real) * np);
  assert_non_null(lo);
  assert_non_null(hi);
  MPI_Datatype t = CNF_REAL_IS_DOUBLE ? MPI_DOUBLE : MPI_FLOAT;
  MPI_Allreduce(p, lo, (int)np, t, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(p, hi, (int)np, t, MPI_MAX, MPI_COMM_WORLD);
  assert_memory_equal(lo, hi, sizeof(cnf_real) * np);
  assert_memory_equal(lo, p, sizeof(cnf_real) * np);

  /* distributed mean NLL == serial mean over the whole validation set */
  double nll_dist, nll_serial;
  assert_int_equal(cnf_train_mean_nll(f, MPI_COMM_WORLD, (int)vcount, xv, cv, &nll_dist), 0);
  assert_int_equal(cnf_train_mean_nll(f, MPI_COMM_SELF, n_val, xv_all, cv_all, &nll_serial), 0);
  assert_close(nll_dist, nll_serial, 1e-6, 0);
  assert_close(nll_dist, res.best_val_nll, 1e-6, 0); /* the best epoch's parameters were kept */
  print_message("rank %d: val NLL %.4f -> %.4f after %d epochs\n", rank, nll0, nll_dist,
                res.epochs_run);
  /* a random-init toy flow starts far from the data (NLL ~ 2.5+); 3 short epochs reach ~1.9 */
  assert_true(nll_dist < nll0 - 0.2);
  assert_true(nll_dist < 2.1);

  free(lo);
  free(hi);
  cnf_flow_free(&f);
  free(x);
  free(c);
  free(xv_all);
  free(cv_all);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_train_two_ranks)};
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return failed;
}
