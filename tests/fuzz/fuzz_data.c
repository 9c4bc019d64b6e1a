/* Fuzz harness: the dataset loaders (src/data/reader.c cnf_data_open / cnf_data_split /
 * cnf_data_dset_open / column lookup / cnf_data_read, as train, scan, sample and fit call them)
 * and the HDF5 truth table reader of `generate hgg -hgg_truth_h5` (src/sim/hgg_input.c).  The
 * input bytes are written to a file and opened as HDF5 on one rank.  Reads are bounded to a few
 * rows, so a file claiming 10^18 rows is handled without allocating them here. */
#include "fuzz_common.h"
#include "cnflow/data.h"
#include "../../src/sim/hgg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_mpi_init(argc, argv);
  return 0;
}

/* dataset paths of the hgg and testgen layouts (the seed files) */
static const char *const dset_names[] = {"truth", "cond", "aux/meta", "gauss/target", "sigma",
                                         "generated/target"};

static void exercise_dset(cnf_data_file *f, const char *name) {
  cnf_data_dset *d = NULL;
  int rc = cnf_data_dset_open(f, name, 0, &d);
  fuzz_check_error(rc, "cnf_data_dset_open");
  if (rc < 0)
    return;
  int nc = cnf_data_dset_cols(d);
  FUZZ_ASSERT(nc >= 1);
  for (int j = 0; j < nc; j++) {
    const char *c = cnf_data_dset_column(d, j), *u = cnf_data_dset_unit(d, j);
    FUZZ_ASSERT(c && u);
    int k = cnf_data_dset_find_column(d, c);
    fuzz_check_error(k, "cnf_data_dset_find_column");
    /* duplicate names are allowed to resolve to the first one */
    FUZZ_ASSERT(k < 0 || (k <= j && strcmp(cnf_data_dset_column(d, k), c) == 0));
  }
  int cols[64], n = 0;
  rc = cnf_data_dset_resolve_columns(d, "", 64, cols, &n);
  fuzz_check_error(rc, "cnf_data_dset_resolve_columns");
  if (rc == 0)
    for (int j = 0; j < n; j++)
      FUZZ_ASSERT(cols[j] == j);
  static const char *const splits[] = {"all", "train", "val", "test"};
  for (int s = 0; s < 4; s++) {
    uint64_t first = 0, count = 0;
    rc = cnf_data_shard(d, splits[s], &first, &count);
    fuzz_check_error(rc, "cnf_data_shard");
    if (rc < 0)
      continue;
    FUZZ_ASSERT(first <= cnf_data_dset_rows(d) && count <= cnf_data_dset_rows(d) - first);
    uint64_t take = count < 4 ? count : 4;
    double *out = malloc((take ? take : 1) * (size_t)nc * sizeof *out);
    FUZZ_ASSERT(out);
    rc = cnf_data_read(d, first, take, 0, NULL, CNF_DTYPE_F64, out);
    fuzz_check_error(rc, "cnf_data_read");
    if (nc >= 2) { /* a reordered selection of the last two columns, as float */
      int sel[2] = {nc - 1, nc - 2};
      rc = cnf_data_read(d, first, take, 2, sel, CNF_DTYPE_F32, out);
      fuzz_check_error(rc, "cnf_data_read (selection)");
    }
    free(out);
  }
  cnf_data_dset_close(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_temp("data", data, size);
  cnf_data_file *f = NULL;
  int rc = cnf_data_open(path, MPI_COMM_WORLD, &f);
  fuzz_check_error(rc, "cnf_data_open");
  if (rc == 0) {
    FUZZ_ASSERT(cnf_data_generator(f) != NULL);
    fuzz_check_error(cnf_data_expect_generator(f, "hgg"), "cnf_data_expect_generator");
    uint64_t first, count;
    fuzz_check_error(cnf_data_split(f, "train", &first, &count), "cnf_data_split");
    for (size_t i = 0; i < sizeof dset_names / sizeof dset_names[0]; i++)
      exercise_dset(f, dset_names[i]);
    cnf_data_close(f);
  }
  /* the same bytes as an hgg truth table (-hgg_truth_h5) */
  hgg_opts o;
  hgg_opts_default(&o);
  snprintf(o.truth_h5, sizeof o.truth_h5, "%s", path);
  hgg_input in;
  rc = hgg_input_read_h5(&o, 1, 3, &in);
  fuzz_check_error(rc, "hgg_input_read_h5");
  if (rc == 0) {
    FUZZ_ASSERT(in.n_kept <= 3 && in.n_selected <= in.n_read);
    hgg_input_free(&in);
  }
  unlink(path);
  return 0;
}
