/* Training checkpoints: everything the loop needs to continue bit-identically, in one HDF5
 * file written by the member's group root under a temporary name and renamed, so a crash or a
 * full disk never leaves a half-written checkpoint under the real name.
 *   /params, /best_params, /adam_m, /adam_v   (n_params) in the build's float type
 *   /history                                  (epochs, 5) f64: epoch train_nll val lr seconds
 *   / attrs: format "cnflow-checkpoint", fingerprint (the configuration it belongs to),
 *            n_params, adam_t, epoch, step_in_epoch, global_step, loss_sum, seconds, complete,
 *            best_epoch, best_score, and the schedule state (sched_*)
 * The shuffles, noise and W1 samples come from counter-based streams keyed by (seed, epoch,
 * event), so (epoch, step_in_epoch) is the whole RNG position. */
#include "train_impl.h"

#include "../data/h5util.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "cnflow-checkpoint"

static hid_t real_type(void) { return CNF_REAL_IS_DOUBLE ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT; }
static hid_t real_file_type(void) { return CNF_REAL_IS_DOUBLE ? H5T_IEEE_F64LE : H5T_IEEE_F32LE; }

/* Attributes go through the shared HDF5 helpers (data/h5util.h): one writer, and a string
 * reader that takes the stored character set (HDF5 has no ASCII <-> UTF-8 conversion). */
static int w_i64(hid_t o, const char *n, int64_t v) {
  return h5u_attr_write_scalar(o, n, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}
static int w_f64(hid_t o, const char *n, double v) { return h5u_attr_write_double(o, n, v); }
static int w_str(hid_t o, const char *n, const char *v) { return h5u_attr_write_string(o, n, v); }
static int r_i64(hid_t o, const char *n, int64_t *v) {
  return h5u_attr_read_scalar(o, n, H5T_NATIVE_INT64, v) == 0 ? 0 : -1;
}
static int r_f64(hid_t o, const char *n, double *v) {
  return h5u_attr_read_scalar(o, n, H5T_NATIVE_DOUBLE, v) == 0 ? 0 : -1;
}
static int r_str(hid_t o, const char *n, char *buf, size_t len) {
  return h5u_attr_read_string(o, n, buf, len) == 0 ? 0 : -1;
}

static int w_array(hid_t file, const char *name, hid_t ftype, hid_t mtype, int rank,
                   const hsize_t *dims, const void *data) {
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t d = sp < 0 ? -1 : H5Dcreate2(file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = d < 0 ? -1 : (dims[0] == 0 ? 0 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  if (d >= 0 && H5Dclose(d) < 0)
    st = -1;
  if (sp >= 0)
    H5Sclose(sp);
  return st < 0 ? -1 : 0;
}

/* Read dataset `name` of exactly `count` elements into data. */
static int r_array(hid_t file, const char *name, hid_t mtype, hsize_t count, void *data) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
    return -1;
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t sp = d < 0 ? -1 : H5Dget_space(d);
  hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
  herr_t st = (n < 0 || (hsize_t)n != count) ? -1
              : count == 0                   ? 0
                                             : H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  if (sp >= 0)
    H5Sclose(sp);
  if (d >= 0)
    H5Dclose(d);
  return st < 0 ? -1 : 0;
}

int train_checkpoint_write(const char *path, const char *fingerprint, const cnf_flow *f,
                           const cnf_adam *adam, const cnf_real *best, const train_state *st) {
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  /* Checked before the temporary file exists, so a full disk leaves the previous checkpoint and
   * nothing else: the four parameter-sized arrays (params, best, Adam m and v) and the history,
   * plus a margin for the attributes (the fingerprint takes up to TRAIN_FINGERPRINT_MAX) and HDF5's metadata. */
  const uint64_t np_bytes = (uint64_t)cnf_flow_num_params(f) * sizeof(cnf_real);
  uint64_t need = 4 * np_bytes + (uint64_t)st->n_hist * TRAIN_HIST_COLS * sizeof(double);
  need += need / 100 + (256u << 10);
  int rc = cnf_check_free_space(path, need);
  if (rc < 0) {
    char msg[1400];
    snprintf(msg, sizeof msg, "%s", cnf_error_message());
    return cnf_error_set(rc, "%s; the previous checkpoint, if any, is kept", msg);
  }
  H5E_auto2_t efunc;
  void *edata;
  H5Eget_auto2(H5E_DEFAULT, &efunc, &edata);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  int bad = file < 0;
  const hsize_t np = cnf_flow_num_params(f);
  cnf_flow *fm = (cnf_flow *)f; /* the accessors are not const */
  const cnf_schedule *s = &st->sched;
  if (!bad)
    bad = w_str(file, "format", CKPT_FORMAT) || w_str(file, "fingerprint", fingerprint) ||
          w_i64(file, "n_params", (int64_t)np) || w_i64(file, "adam_t", adam->t) ||
          w_i64(file, "epoch", st->epoch) || w_i64(file, "step_in_epoch", st->step_in_epoch) ||
          w_i64(file, "global_step", st->global_step) || w_f64(file, "loss_sum", st->loss_sum) ||
          w_f64(file, "seconds", st->seconds) || w_i64(file, "complete", st->complete) ||
          w_i64(file, "best_epoch", st->best_epoch) || w_f64(file, "best_score", st->best_score) ||
          w_f64(file, "sched_plateau_scale", s->plateau_scale) ||
          w_f64(file, "sched_plateau_best", s->plateau_best) ||
          w_i64(file, "sched_plateau_bad_epochs", s->plateau_bad_epochs) ||
          w_f64(file, "sched_best_loss", s->best_loss) ||
          w_i64(file, "sched_best_epoch", s->best_epoch) ||
          w_i64(file, "sched_epochs_since_best", s->epochs_since_best) ||
          w_i64(file, "sched_epoch", s->epoch) || w_i64(file, "sched_improved", s->improved);
  if (!bad)
    bad = w_array(file, "params", real_file_type(), real_type(), 1, &np, cnf_flow_params(fm)) ||
          w_array(file, "best_params", real_file_type(), real_type(), 1, &np, best) ||
          w_array(file, "adam_m", real_file_type(), real_type(), 1, &np, adam->m) ||
          w_array(file, "adam_v", real_file_type(), real_type(), 1, &np, adam->v);
  if (!bad) {
    hsize_t hd[2] = {(hsize_t)st->n_hist, TRAIN_HIST_COLS};
    bad = w_array(file, "history", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, hd, st->hist);
  }
  if (file >= 0 && H5Fclose(file) < 0)
    bad = 1;
  H5Eset_auto2(H5E_DEFAULT, efunc, edata);
  if (bad || rename(tmp, path) != 0) {
    remove(tmp);
    return cnf_error_set(CNF_ERR_IO, "%s: cannot write the checkpoint (disk full or no "
                         "permission?); the previous checkpoint is kept", path);
  }
  return 0;
}

int train_checkpoint_read(const char *path, const char *fingerprint, cnf_flow *f,
                          cnf_adam *adam, cnf_real *best, train_state *st, int max_hist) {
  FILE *probe = fopen(path, "rb");
  if (!probe)
    return 1;
  fclose(probe);
  H5E_auto2_t efunc;
  void *edata;
  H5Eget_auto2(H5E_DEFAULT, &efunc, &edata);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  int rc = 0;
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  char fmt[64] = "", *fp = cnf_malloc(TRAIN_FINGERPRINT_MAX + 1);
  int64_t np = -1, v[9];
  double dv[6];
  if (!fp) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  if (file < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "%s: not a readable HDF5 checkpoint (truncated or corrupt?)",
                       path);
    goto done;
  }
  if (r_str(file, "format", fmt, sizeof fmt) || strcmp(fmt, CKPT_FORMAT) != 0) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: not a cnflow checkpoint", path);
    goto done;
  }
  if (r_str(file, "fingerprint", fp, TRAIN_FINGERPRINT_MAX + 1) || strcmp(fp, fingerprint) != 0 ||
      r_i64(file, "n_params", &np) || np != (int64_t)cnf_flow_num_params(f)) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: the checkpoint belongs to another configuration "
                       "(data, preprocessing, architecture, batch or seed differ): remove it or "
                       "train without -resume", path);
    goto done;
  }
  if (r_i64(file, "adam_t", &v[0]) || r_i64(file, "epoch", &v[1]) ||
      r_i64(file, "step_in_epoch", &v[2]) || r_i64(file, "global_step", &v[3]) ||
      r_i64(file, "complete", &v[4]) || r_i64(file, "best_epoch", &v[5]) ||
      r_i64(file, "sched_plateau_bad_epochs", &v[6]) || r_i64(file, "sched_best_epoch", &v[7]) ||
      r_i64(file, "sched_epochs_since_best", &v[8]) || r_f64(file, "loss_sum", &dv[0]) ||
      r_f64(file, "seconds", &dv[1]) || r_f64(file, "best_score", &dv[2]) ||
      r_f64(file, "sched_plateau_scale", &dv[3]) || r_f64(file, "sched_plateau_best", &dv[4]) ||
      r_f64(file, "sched_best_loss", &dv[5])) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: checkpoint attribute missing or damaged", path);
    goto done;
  }
  int64_t sepoch, simproved;
  if (r_i64(file, "sched_epoch", &sepoch) || r_i64(file, "sched_improved", &simproved)) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: checkpoint attribute missing or damaged", path);
    goto done;
  }
  /* history: its length is the number of completed epochs */
  hid_t hd = H5Lexists(file, "history", H5P_DEFAULT) > 0 ? H5Dopen2(file, "history", H5P_DEFAULT) : -1;
  hsize_t dims[2] = {0, 0};
  if (hd >= 0) {
    hid_t sp = H5Dget_space(hd);
    if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
      dims[1] = 0;
    if (sp >= 0)
      H5Sclose(sp);
    H5Dclose(hd);
  }
  if (hd < 0 || dims[1] != TRAIN_HIST_COLS || dims[0] > (hsize_t)max_hist) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: checkpoint history missing or longer than the run",
                       path);
    goto done;
  }
  if (r_array(file, "params", real_type(), (hsize_t)np, cnf_flow_params(f)) ||
      r_array(file, "best_params", real_type(), (hsize_t)np, best) ||
      r_array(file, "adam_m", real_type(), (hsize_t)np, adam->m) ||
      r_array(file, "adam_v", real_type(), (hsize_t)np, adam->v) ||
      r_array(file, "history", H5T_NATIVE_DOUBLE, dims[0] * TRAIN_HIST_COLS, st->hist)) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: checkpoint arrays missing or damaged", path);
    goto done;
  }
  adam->t = v[0];
  st->epoch = (int)v[1];
  st->step_in_epoch = v[2];
  st->global_step = v[3];
  st->complete = (int)v[4];
  st->best_epoch = (int)v[5];
  st->loss_sum = dv[0];
  st->seconds = dv[1];
  st->best_score = dv[2];
  st->n_hist = (int)dims[0];
  cnf_schedule *s = &st->sched;
  s->plateau_bad_epochs = (int)v[6];
  s->best_epoch = (int)v[7];
  s->epochs_since_best = (int)v[8];
  s->plateau_scale = dv[3];
  s->plateau_best = dv[4];
  s->best_loss = dv[5];
  s->epoch = (int)sepoch;
  s->improved = (int)simproved;
  rc = cnf_flow_params_changed(f);
done:
  if (file >= 0)
    H5Fclose(file);
  H5Eset_auto2(H5E_DEFAULT, efunc, edata);
  free(fp);
  return rc;
}
