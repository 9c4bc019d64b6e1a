/* testgen: a cheap deterministic generator that exercises everything the writer supports
 * (several datasets, a group path, f32/f64/i32 storage, a rejection loop over attempts, failure
 * injection) without the physics generators.  Row i depends only on (seed, i). */
#include "cnflow/data.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define TESTGEN_MAX_ATTEMPTS 1000

static const cnf_option testgen_options[] = {
    {"seed", CNF_OPT_INT64, offsetof(cnf_testgen_opts, seed), "random seed (default 1)"},
    {"n", CNF_OPT_INT64, offsetof(cnf_testgen_opts, n), "number of events (default 1000)"},
    {"testgen_sigma", CNF_OPT_REAL, offsetof(cnf_testgen_opts, sigma),
     "width of the truncated normal x (default 1)"},
    {"testgen_cut", CNF_OPT_REAL, offsetof(cnf_testgen_opts, cut),
     "accept x only when |x| < cut (default 1.5)"},
    {"testgen_fail_event", CNF_OPT_INT64, offsetof(cnf_testgen_opts, fail_event),
     "test hook: event() fails at this index (default -1: never)"},
    {"testgen_fail_setup", CNF_OPT_INT64, offsetof(cnf_testgen_opts, fail_setup),
     "test hook: setup fails on the rank holding this index (default -1: never)"},
};

static void testgen_opts_default(void *opts) {
  cnf_testgen_opts *o = opts;
  *o = (cnf_testgen_opts){.seed = 1, .n = 1000, .sigma = 1.0, .cut = 1.5, .fail_event = -1,
                          .fail_setup = -1};
}

static const char *const truth_cols[] = {"event_id", "x", "u"};
static const char *const truth_units[] = {"", "", ""};
static const char *const cond_cols[] = {"energy"};
static const char *const cond_units[] = {"GeV"};
static const char *const meta_cols[] = {"attempts", "fold"};

static int testgen_setup(const void *opts, uint64_t first, uint64_t count, cnf_sim_desc *desc,
                         void **state) {
  const cnf_testgen_opts *o = opts;
  *state = NULL;
  if (o->n < 0)
    return cnf_error_set(CNF_ERR_ARG, "testgen: -n must be >= 0, got %lld", (long long)o->n);
  if (!(o->sigma > 0) || !(o->cut > 0))
    return cnf_error_set(CNF_ERR_ARG, "testgen: -testgen_sigma and -testgen_cut must be > 0");
  if (o->fail_setup >= 0 && (uint64_t)o->fail_setup >= first &&
      (uint64_t)o->fail_setup < first + count)
    return cnf_error_set(CNF_ERR_STATE, "testgen: injected setup failure for block [%llu, %llu)",
                         (unsigned long long)first, (unsigned long long)(first + count));
  *desc = (cnf_sim_desc){.n_datasets = 3, .n_events = (uint64_t)o->n};
  desc->datasets[0] = (cnf_dataset_schema){"truth", 3, CNF_DTYPE_F64, truth_cols, truth_units,
                                           "event id, truncated normal x, uniform u"};
  desc->datasets[1] = (cnf_dataset_schema){"cond", 1, CNF_DTYPE_F32, cond_cols, cond_units,
                                           "condition: energy = 1 + 99 u"};
  desc->datasets[2] = (cnf_dataset_schema){"aux/meta", 2, CNF_DTYPE_I32, meta_cols, NULL,
                                           "rejection attempts and fold = event_id % 10"};
  return 0;
}

static int testgen_event(const void *opts, void *state, uint64_t index, double *const *rows) {
  const cnf_testgen_opts *o = opts;
  if (o->fail_event >= 0 && index == (uint64_t)o->fail_event)
    return cnf_error_set(CNF_ERR_NUMERIC, "testgen: injected failure at event %llu",
                         (unsigned long long)index);
  cnf_rng r;
  for (uint32_t attempt = 0; attempt < TESTGEN_MAX_ATTEMPTS; attempt++) {
    cnf_rng_init(&r, (uint64_t)o->seed, index, attempt);
    double x = o->sigma * cnf_rng_normal(&r);
    if (fabs(x) >= o->cut)
      continue;
    double u = cnf_rng_uniform(&r);
    rows[0][0] = (double)index;
    rows[0][1] = x;
    rows[0][2] = u;
    rows[1][0] = 1.0 + 99.0 * u;
    rows[2][0] = (double)(attempt + 1);
    rows[2][1] = (double)(index % 10);
    return 0;
  }
  return cnf_error_set(CNF_ERR_NUMERIC, "testgen: event %llu: no x accepted in %d attempts",
                       (unsigned long long)index, TESTGEN_MAX_ATTEMPTS);
}

static void testgen_teardown(void *state) { free(state); }

const cnf_generator cnf_gen_testgen = {
    .name = "testgen",
    .help = "cheap deterministic test generator: truncated normal by rejection, f64/f32/i32 "
            "datasets (tests of the data layer)",
    .opts_size = sizeof(cnf_testgen_opts),
    .n_options = (int)(sizeof testgen_options / sizeof testgen_options[0]),
    .options = testgen_options,
    .opts_default = testgen_opts_default,
    .setup = testgen_setup,
    .event = testgen_event,
    .finalize = NULL,
    .teardown = testgen_teardown,
};
