/* Model files: save and load a cnf_flow (architecture, parameters, condition transform,
 * provenance) as HDF5.
 *
 * ---- Model file layout (format "cnflow-model", format_version 1) ---------------------------
 * Strings are variable-length UTF-8 attributes (h5py reads them as str).
 * /                          attrs: format = "cnflow-model", format_version (int32) = 1,
 *                                   cnflow_version, git_rev (strings)
 * /model                     attrs: dim, cond_dim, n_bijectors (int32), n_params (int64),
 *                                   real_type = "float32" | "float64"
 * /model/params              (n_params) float32 or float64 (the writer's cnf_real, so a
 *                            save -> load round trip is bit-identical).  Parameter order and
 *                            the per-kind layout inside each slice: include/cnflow/flow.h.
 * /model/bijectors/000, 001, ...  one group per bijector, in the DENSITY direction
 *                            (x -> z: group 000 is applied to the data first)
 *                            attrs: kind ("maf_affine", "maf_rqs", "coupling_rqs", "actnorm",
 *                                   "permute", "tanh", "logit", "affine_fixed", "log",
 *                                   "cond_scale"),
 *                                   param_offset, n_params (int64),
 *                                   hidden, n_hidden, bins (int32),
 *                                   tail_bound, min_bin_width, min_bin_height, min_derivative,
 *                                   alpha, eps, cond_a, cond_b (float64), cond_index (int32)
 *                                   (eps: log z = log(x + eps); cond_scale:
 *                                   z = x exp(-(cond_a c'[cond_index] + cond_b)); absent in
 *                                   older files = 0),
 *                                   scale_kind ("exp" | "exp_tanh" | "shift"), tails ("event" | "element")
 *                                   (every attribute is written for every kind; those that do
 *                                   not apply to a kind hold 0 or the enum's first value)
 *                            datasets: perm (int32, dim) for permute: density z = x[:, perm];
 *                                      shift, scale (float64, dim) for affine_fixed:
 *                                      density z = (x - shift) / scale
 * /model/condition           datasets map (int32, cond_dim: 0 identity, 1 log10, 2 ln),
 *                            shift, scale (float64, cond_dim): the bijectors see
 *                            c' = (map(c) - shift) * scale of the raw conditions c
 * /provenance                attrs: options (string), dataset (string: the data binding,
 *                            "key=value" lines of `cnflow train`), seed (uint64), epoch (int32),
 *                            val_score (float64), git_rev, created (ISO 8601 UTC string)
 * log p(x|c) = log N(z; 0, I_dim) + sum of the bijectors' log|det dz/dx| (flow.h).
 *
 * Writing goes to "<path>.tmp", renamed over <path> only when complete.  The library is the
 * parallel HDF5 build; these calls use the default (POSIX) file driver and are serial: call
 * them on one rank.
 */
#include "bijector_impl.h"
#include "../data/h5util.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>


#define MODEL_FORMAT "cnflow-model"

#if CNF_REAL_IS_DOUBLE
#define H5_REAL_MEM H5T_NATIVE_DOUBLE
#define H5_REAL_FILE H5T_IEEE_F64LE
#define REAL_TYPE_NAME "float64"
#else
#define H5_REAL_MEM H5T_NATIVE_FLOAT
#define H5_REAL_FILE H5T_IEEE_F32LE
#define REAL_TYPE_NAME "float32"
#endif

/* ---- attribute and dataset helpers (path is only for messages) ------------------------------ */
/* The attributes go through the shared HDF5 helpers (data/h5util.h); this file only puts the
 * model file's path in front of their messages. */
static int at_path(int rc, const char *path) {
  if (rc >= 0)
    return rc;
  char msg[900];
  snprintf(msg, sizeof msg, "%s", cnf_error_message());
  return cnf_error_set(rc, "%s: %s", path, msg);
}

static int attr_write_str(hid_t obj, const char *name, const char *val, const char *path) {
  return at_path(h5u_attr_write_string(obj, name, val), path);
}
static int attr_write_i32(hid_t obj, const char *name, int32_t v, const char *path) {
  return at_path(h5u_attr_write_scalar(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v), path);
}
static int attr_write_i64(hid_t obj, const char *name, int64_t v, const char *path) {
  return at_path(h5u_attr_write_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v), path);
}
static int attr_write_u64(hid_t obj, const char *name, uint64_t v, const char *path) {
  return at_path(h5u_attr_write_scalar(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v), path);
}
static int attr_write_f64(hid_t obj, const char *name, double v, const char *path) {
  return at_path(h5u_attr_write_scalar(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v), path);
}

/* Every attribute is read into room for one value: H5Aread writes ALL elements, so an array
 * attribute (a foreign or hand-edited file, e.g. h5py given a list) must be refused first. */
static int attr_check_single(hid_t attr, const char *name, const char *path) {
  hid_t space = H5Aget_space(attr);
  hssize_t npoints = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  if (space >= 0)
    H5Sclose(space);
  if (npoints != 1)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: attribute '%s' must hold a single value, has %lld",
                         path, name, (long long)npoints);
  return 0;
}

/* Numeric scalar attribute, converted by HDF5 to the memory type. */
static int attr_read(hid_t obj, const char *name, hid_t mtype, void *val, const char *path) {
  int rc = h5u_attr_read_scalar(obj, name, mtype, val);
  if (rc == 1)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: attribute '%s' is missing", path, name);
  return at_path(rc, path);
}

static int attr_read_i64(hid_t obj, const char *name, int64_t *v, const char *path) {
  return attr_read(obj, name, H5T_NATIVE_INT64, v, path);
}
static int attr_read_f64(hid_t obj, const char *name, double *v, const char *path) {
  return attr_read(obj, name, H5T_NATIVE_DOUBLE, v, path);
}

/* String attribute (variable- or fixed-length) into buf[len]. */
static int attr_read_str(hid_t obj, const char *name, char *buf, size_t len, const char *path) {
  hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  if (attr < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: attribute '%s' is missing", path, name);
  int rc = attr_check_single(attr, name, path);
  if (rc < 0) {
    H5Aclose(attr);
    return rc;
  }
  hid_t ftype = H5Aget_type(attr);
  if (ftype < 0 || H5Tget_class(ftype) != H5T_STRING) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: attribute '%s' is not a string", path, name);
  } else if (H5Tis_variable_str(ftype) > 0) {
    hid_t mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    char *s = NULL;
    if (H5Aread(attr, mtype, &s) < 0 || !s)
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: cannot read string attribute '%s'", path, name);
    else
      snprintf(buf, len, "%s", s);
    if (s)
      H5free_memory(s);
    H5Tclose(mtype);
  } else {
    size_t sz = H5Tget_size(ftype);
    char *tmp = cnf_calloc(sz + 1, 1);
    hid_t mtype = H5Tcopy(ftype);
    if (!tmp)
      rc = CNF_ERR_NOMEM;
    else if (H5Aread(attr, mtype, tmp) < 0)
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: cannot read string attribute '%s'", path, name);
    else
      snprintf(buf, len, "%s", tmp);
    free(tmp);
    H5Tclose(mtype);
  }
  if (ftype >= 0)
    H5Tclose(ftype);
  H5Aclose(attr);
  return rc;
}

static int dset_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, size_t n,
                      const void *data, const char *path) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t d = space < 0 ? -1
                      : H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = d < 0 ? -1 : (n > 0 ? H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0);
  if (d >= 0)
    H5Dclose(d);
  if (space >= 0)
    H5Sclose(space);
  if (st < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot write dataset '%s'", path, name);
  return 0;
}

/* 1-D dataset of exactly n elements into data (converted to mtype). */
static int dset_read(hid_t loc, const char *name, hid_t mtype, size_t n, void *data,
                     const char *path) {
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: dataset '%s' is missing", path, name);
  int rc = 0;
  hid_t space = H5Dget_space(d);
  hssize_t got = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  if (got < 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot read the shape of '%s'", path, name);
  else if ((size_t)got != n)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: dataset '%s' has %lld values, the architecture "
                       "needs %zu", path, name, (long long)got, n);
  else if (n > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot read dataset '%s' (truncated or corrupt file?)",
                       path, name);
  if (space >= 0)
    H5Sclose(space);
  H5Dclose(d);
  return rc;
}

static const char *scale_kind_name(cnf_affine_scale s) {
  return s == CNF_AFFINE_SCALE_EXP_TANH ? "exp_tanh" : s == CNF_AFFINE_SCALE_SHIFT ? "shift" : "exp";
}
static const char *tails_name(cnf_coupling_tails t) {
  return t == CNF_TAILS_ELEMENT ? "element" : "event";
}

/* ---- save ----------------------------------------------------------------------------------- */
static int save_bijector(hid_t bgroup, const cnf_bijector *b, int k, const char *path) {
  char gname[16], where[600];
  snprintf(gname, sizeof gname, "%03d", k);
  snprintf(where, sizeof where, "%s:/model/bijectors/%s", path, gname);
  hid_t g = H5Gcreate2(bgroup, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create group", where);
  const cnf_bijector_spec *s = &b->spec;
  int rc;
  CNF_CALL_GOTO(rc, done, attr_write_str(g, "kind", cnf_bijector_kind_name(s->kind), where));
  CNF_CALL_GOTO(rc, done, attr_write_i64(g, "param_offset", (int64_t)b->param_offset, where));
  CNF_CALL_GOTO(rc, done, attr_write_i64(g, "n_params", (int64_t)b->n_params, where));
  CNF_CALL_GOTO(rc, done, attr_write_i32(g, "hidden", s->hidden, where));
  CNF_CALL_GOTO(rc, done, attr_write_i32(g, "n_hidden", s->n_hidden, where));
  CNF_CALL_GOTO(rc, done, attr_write_i32(g, "bins", s->bins, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "tail_bound", s->tail_bound, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "min_bin_width", s->min_bin_width, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "min_bin_height", s->min_bin_height, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "min_derivative", s->min_derivative, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "alpha", s->alpha, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "eps", s->eps, where));
  CNF_CALL_GOTO(rc, done, attr_write_i32(g, "cond_index", s->cond_index, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "cond_a", s->cond_a, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "cond_b", s->cond_b, where));
  CNF_CALL_GOTO(rc, done, attr_write_str(g, "scale_kind", scale_kind_name(s->scale_kind), where));
  CNF_CALL_GOTO(rc, done, attr_write_str(g, "tails", tails_name(s->tails), where));
  if (s->kind == CNF_BIJ_PERMUTE) {
    int32_t *perm = cnf_malloc(sizeof(int32_t) * (size_t)b->dim);
    if (!perm) {
      rc = CNF_ERR_NOMEM;
      goto done;
    }
    for (int j = 0; j < b->dim; j++)
      perm[j] = s->perm[j];
    rc = dset_write(g, "perm", H5T_STD_I32LE, H5T_NATIVE_INT32, (size_t)b->dim, perm, where);
    free(perm);
    if (rc < 0)
      goto done;
  }
  if (s->kind == CNF_BIJ_AFFINE_FIXED) {
    CNF_CALL_GOTO(rc, done, dset_write(g, "shift", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                       (size_t)b->dim, s->shift, where));
    CNF_CALL_GOTO(rc, done, dset_write(g, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                       (size_t)b->dim, s->scale, where));
  }
done:
  H5Gclose(g);
  return rc;
}

static int save_condition(hid_t model, const cnf_flow *f, const char *path) {
  const int C = cnf_flow_cond_dim(f);
  char where[600];
  snprintf(where, sizeof where, "%s:/model/condition", path);
  int32_t *map = cnf_malloc(sizeof(int32_t) * (size_t)(C > 0 ? C : 1));
  double *shift = cnf_malloc(sizeof(double) * (size_t)(C > 0 ? C : 1));
  double *scale = cnf_malloc(sizeof(double) * (size_t)(C > 0 ? C : 1));
  hid_t g = -1;
  int rc = 0;
  if (!map || !shift || !scale) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  for (int j = 0; j < C; j++) {
    cnf_cond_map m;
    CNF_CALL_GOTO(rc, done, cnf_flow_get_cond_transform(f, j, &m, &shift[j], &scale[j]));
    map[j] = (int32_t)m;
  }
  g = H5Gcreate2(model, "condition", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot create group", where);
    goto done;
  }
  CNF_CALL_GOTO(rc, done,
                dset_write(g, "map", H5T_STD_I32LE, H5T_NATIVE_INT32, (size_t)C, map, where));
  CNF_CALL_GOTO(rc, done, dset_write(g, "shift", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (size_t)C,
                                     shift, where));
  CNF_CALL_GOTO(rc, done, dset_write(g, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (size_t)C,
                                     scale, where));
done:
  if (g >= 0)
    H5Gclose(g);
  free(map);
  free(shift);
  free(scale);
  return rc;
}

static int save_provenance(hid_t file, const cnf_model_provenance *prov, const char *path) {
  char where[600], created[32];
  snprintf(where, sizeof where, "%s:/provenance", path);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  cnf_model_provenance empty;
  memset(&empty, 0, sizeof empty);
  if (!prov)
    prov = &empty;
  hid_t g = H5Gcreate2(file, "provenance", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create group", where);
  int rc;
  CNF_CALL_GOTO(rc, done, attr_write_str(g, "options", prov->options, where));
  CNF_CALL_GOTO(rc, done, attr_write_str(g, "dataset", prov->dataset, where));
  CNF_CALL_GOTO(rc, done, attr_write_u64(g, "seed", prov->seed, where));
  CNF_CALL_GOTO(rc, done, attr_write_i32(g, "epoch", prov->epoch, where));
  CNF_CALL_GOTO(rc, done, attr_write_f64(g, "val_score", prov->val_score, where));
  CNF_CALL_GOTO(rc, done, attr_write_str(g, "git_rev",
                                         prov->git_rev[0] ? prov->git_rev : cnf_git_rev(),
                                         where));
  CNF_CALL_GOTO(rc, done, attr_write_str(g, "created", created, where));
done:
  H5Gclose(g);
  return rc;
}

static int save_file(const cnf_flow *f, const char *tmp, const char *path,
                     const cnf_model_provenance *prov) {
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0)
    return cnf_error_set(CNF_ERR_IO, "cannot create model file '%s'", tmp);
  hid_t model = -1, bgroup = -1;
  int rc;
  CNF_CALL_GOTO(rc, done, attr_write_str(file, "format", MODEL_FORMAT, path));
  CNF_CALL_GOTO(rc, done, attr_write_i32(file, "format_version", CNF_FLOW_FORMAT_VERSION, path));
  CNF_CALL_GOTO(rc, done, attr_write_str(file, "cnflow_version", CNFLOW_VERSION, path));
  CNF_CALL_GOTO(rc, done, attr_write_str(file, "git_rev", cnf_git_rev(), path));
  model = H5Gcreate2(file, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (model < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot create group /model", path);
    goto done;
  }
  const int nb = cnf_flow_num_bijectors(f);
  CNF_CALL_GOTO(rc, done, attr_write_i32(model, "dim", cnf_flow_dim(f), path));
  CNF_CALL_GOTO(rc, done, attr_write_i32(model, "cond_dim", cnf_flow_cond_dim(f), path));
  CNF_CALL_GOTO(rc, done, attr_write_i32(model, "n_bijectors", nb, path));
  CNF_CALL_GOTO(rc, done, attr_write_i64(model, "n_params", (int64_t)cnf_flow_num_params(f),
                                         path));
  CNF_CALL_GOTO(rc, done, attr_write_str(model, "real_type", REAL_TYPE_NAME, path));
  /* the flow's buffer is not modified; the accessor is non-const only for writers */
  CNF_CALL_GOTO(rc, done, dset_write(model, "params", H5_REAL_FILE, H5_REAL_MEM,
                                     cnf_flow_num_params(f),
                                     cnf_flow_params((cnf_flow *)f), path));
  bgroup = H5Gcreate2(model, "bijectors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (bgroup < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot create group /model/bijectors", path);
    goto done;
  }
  for (int k = 0; k < nb; k++)
    CNF_CALL_GOTO(rc, done, save_bijector(bgroup, cnf_flow_bijector(f, k), k, path));
  CNF_CALL_GOTO(rc, done, save_condition(model, f, path));
  CNF_CALL_GOTO(rc, done, save_provenance(file, prov, path));
done:
  if (bgroup >= 0)
    H5Gclose(bgroup);
  if (model >= 0)
    H5Gclose(model);
  if (H5Fclose(file) < 0 && rc == 0)
    rc = cnf_error_set(CNF_ERR_IO, "cannot close model file '%s' (disk full?)", tmp);
  return rc;
}

/* The model file's size: the parameters, the permutations and fixed affine maps, the
 * condition transform and the provenance strings, plus a margin for HDF5's metadata (a group
 * with 17 attributes per bijector). */
static uint64_t model_file_bytes(const cnf_flow *f, const cnf_model_provenance *prov) {
  uint64_t need = (uint64_t)cnf_flow_num_params(f) * sizeof(cnf_real);
  const int nb = cnf_flow_num_bijectors(f);
  for (int k = 0; k < nb; k++) {
    const cnf_bijector *b = cnf_flow_bijector(f, k);
    if (b->spec.kind == CNF_BIJ_PERMUTE)
      need += (uint64_t)b->dim * sizeof(int32_t);
    if (b->spec.kind == CNF_BIJ_AFFINE_FIXED)
      need += 2 * (uint64_t)b->dim * sizeof(double);
  }
  need += (uint64_t)cnf_flow_cond_dim(f) * (sizeof(int32_t) + 2 * sizeof(double));
  if (prov)
    need += strlen(prov->options) + strlen(prov->dataset);
  return need + need / 100 + (256u << 10) + (uint64_t)nb * (4u << 10);
}

int cnf_flow_save(const cnf_flow *f, const char *path, const cnf_model_provenance *prov) {
  /* before the temporary file exists: a full disk leaves the previous model and nothing else */
  CNF_CALL(cnf_check_free_space(path, model_file_bytes(f, prov)));
  size_t len = strlen(path);
  char *tmp = cnf_malloc(len + 5);
  if (!tmp)
    return CNF_ERR_NOMEM;
  snprintf(tmp, len + 5, "%s.tmp", path);
  h5u_quiet q;
  h5u_quiet_begin(&q);
  int rc = save_file(f, tmp, path, prov);
  h5u_quiet_end(&q);
  if (rc == 0 && rename(tmp, path) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
  if (rc < 0)
    remove(tmp);
  free(tmp);
  return rc;
}

/* ---- load ----------------------------------------------------------------------------------- */
static int parse_enum(const char *s, const char *a, const char *b, int *out) {
  if (strcmp(s, a) == 0)
    *out = 0;
  else if (strcmp(s, b) == 0)
    *out = 1;
  else
    return -1;
  return 0;
}

/* Optional numeric attributes default to 0 (a hand-written file may omit unused ones). */
static int attr_read_opt_f64(hid_t g, const char *name, double *v, const char *where) {
  *v = 0;
  return H5Aexists(g, name) > 0 ? attr_read_f64(g, name, v, where) : 0;
}
static int attr_read_opt_int(hid_t g, const char *name, int *v, const char *where) {
  int64_t t = 0;
  *v = 0;
  if (H5Aexists(g, name) > 0)
    CNF_CALL(attr_read_i64(g, name, &t, where));
  if (t < INT32_MIN || t > INT32_MAX)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: attribute '%s' = %lld is out of range", where,
                         name, (long long)t);
  *v = (int)t;
  return 0;
}

/* Bijector group k -> spec (arrays allocated into perm / shift / scale, caller frees). */
static int load_bijector(hid_t bgroup, int k, int D, cnf_bijector_spec *s, int **perm,
                         double **shift, double **scale, const char *path) {
  char gname[16], where[600], buf[64];
  snprintf(gname, sizeof gname, "%03d", k);
  snprintf(where, sizeof where, "%s:/model/bijectors/%s", path, gname);
  hid_t g = H5Gopen2(bgroup, gname, H5P_DEFAULT);
  if (g < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: group is missing", where);
  memset(s, 0, sizeof *s);
  int rc, v;
  CNF_CALL_GOTO(rc, done, attr_read_str(g, "kind", buf, sizeof buf, where));
  int kind = cnf_bijector_kind_from_name(buf);
  if (kind < 0) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: unknown bijector kind '%s'", where, buf);
    goto done;
  }
  s->kind = (cnf_bijector_kind)kind;
  CNF_CALL_GOTO(rc, done, attr_read_opt_int(g, "hidden", &s->hidden, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_int(g, "n_hidden", &s->n_hidden, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_int(g, "bins", &s->bins, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "tail_bound", &s->tail_bound, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "min_bin_width", &s->min_bin_width, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "min_bin_height", &s->min_bin_height, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "min_derivative", &s->min_derivative, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "alpha", &s->alpha, where));
  /* absent in files older than the log / cond_scale kinds: 0 */
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "eps", &s->eps, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_int(g, "cond_index", &s->cond_index, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "cond_a", &s->cond_a, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "cond_b", &s->cond_b, where));
  if (H5Aexists(g, "scale_kind") > 0) {
    CNF_CALL_GOTO(rc, done, attr_read_str(g, "scale_kind", buf, sizeof buf, where));
    if (strcmp(buf, "shift") == 0) /* shift-only maf_affine (P = 1, the regression MLP) */
      v = CNF_AFFINE_SCALE_SHIFT;
    else if (parse_enum(buf, "exp", "exp_tanh", &v) < 0) {
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: unknown scale_kind '%s'", where, buf);
      goto done;
    }
    s->scale_kind = (cnf_affine_scale)v;
  }
  if (H5Aexists(g, "tails") > 0) {
    CNF_CALL_GOTO(rc, done, attr_read_str(g, "tails", buf, sizeof buf, where));
    if (parse_enum(buf, "event", "element", &v) < 0) {
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: unknown tails '%s'", where, buf);
      goto done;
    }
    s->tails = (cnf_coupling_tails)v;
  }
  if (s->kind == CNF_BIJ_PERMUTE) {
    *perm = cnf_malloc(sizeof(int) * (size_t)D);
    if (!*perm) {
      rc = CNF_ERR_NOMEM;
      goto done;
    }
    CNF_CALL_GOTO(rc, done, dset_read(g, "perm", H5T_NATIVE_INT, (size_t)D, *perm, where));
    s->perm = *perm;
  }
  if (s->kind == CNF_BIJ_AFFINE_FIXED) {
    *shift = cnf_malloc(sizeof(double) * (size_t)D);
    *scale = cnf_malloc(sizeof(double) * (size_t)D);
    if (!*shift || !*scale) {
      rc = CNF_ERR_NOMEM;
      goto done;
    }
    CNF_CALL_GOTO(rc, done, dset_read(g, "shift", H5T_NATIVE_DOUBLE, (size_t)D, *shift, where));
    CNF_CALL_GOTO(rc, done, dset_read(g, "scale", H5T_NATIVE_DOUBLE, (size_t)D, *scale, where));
    s->shift = *shift;
    s->scale = *scale;
  }
done:
  H5Gclose(g);
  return rc;
}

/* The stored offsets and sizes must agree with the architecture this build derives. */
static int check_bijector_sizes(hid_t bgroup, const cnf_flow *f, const char *path) {
  for (int k = 0; k < cnf_flow_num_bijectors(f); k++) {
    char gname[16], where[600];
    snprintf(gname, sizeof gname, "%03d", k);
    snprintf(where, sizeof where, "%s:/model/bijectors/%s", path, gname);
    hid_t g = H5Gopen2(bgroup, gname, H5P_DEFAULT);
    if (g < 0)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: group is missing", where);
    const cnf_bijector *b = cnf_flow_bijector(f, k);
    int64_t off = (int64_t)b->param_offset, np = (int64_t)b->n_params;
    int rc = 0;
    if (H5Aexists(g, "param_offset") > 0)
      rc = attr_read_i64(g, "param_offset", &off, where);
    if (rc == 0 && H5Aexists(g, "n_params") > 0)
      rc = attr_read_i64(g, "n_params", &np, where);
    H5Gclose(g);
    if (rc < 0)
      return rc;
    if (off != (int64_t)b->param_offset || np != (int64_t)b->n_params)
      return cnf_error_set(CNF_ERR_FORMAT,
                           "%s: stored %lld parameters at offset %lld, but this build's %s has "
                           "%zu at offset %zu",
                           where, (long long)np, (long long)off,
                           cnf_bijector_kind_name(b->spec.kind), b->n_params, b->param_offset);
  }
  return 0;
}

static int load_condition(hid_t model, cnf_flow *f, const char *path) {
  const int C = cnf_flow_cond_dim(f);
  if (C == 0)
    return 0;
  char where[600];
  snprintf(where, sizeof where, "%s:/model/condition", path);
  hid_t g = H5Gopen2(model, "condition", H5P_DEFAULT);
  if (g < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: group is missing", where);
  int32_t *map32 = cnf_malloc(sizeof(int32_t) * (size_t)C);
  cnf_cond_map *map = cnf_malloc(sizeof(cnf_cond_map) * (size_t)C);
  double *shift = cnf_malloc(sizeof(double) * (size_t)C);
  double *scale = cnf_malloc(sizeof(double) * (size_t)C);
  int rc = 0;
  if (!map32 || !map || !shift || !scale) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  CNF_CALL_GOTO(rc, done, dset_read(g, "map", H5T_NATIVE_INT32, (size_t)C, map32, where));
  CNF_CALL_GOTO(rc, done, dset_read(g, "shift", H5T_NATIVE_DOUBLE, (size_t)C, shift, where));
  CNF_CALL_GOTO(rc, done, dset_read(g, "scale", H5T_NATIVE_DOUBLE, (size_t)C, scale, where));
  for (int j = 0; j < C; j++)
    map[j] = (cnf_cond_map)map32[j];
  rc = cnf_flow_set_cond_transform(f, map, shift, scale);
  if (rc < 0) {
    char msg[800];
    snprintf(msg, sizeof msg, "%s", cnf_error_message());
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: %s", where, msg);
  }
done:
  H5Gclose(g);
  free(map32);
  free(map);
  free(shift);
  free(scale);
  return rc;
}

static int load_provenance(hid_t file, cnf_model_provenance *prov, const char *path) {
  memset(prov, 0, sizeof *prov);
  if (H5Lexists(file, "provenance", H5P_DEFAULT) <= 0)
    return 0;
  char where[600];
  snprintf(where, sizeof where, "%s:/provenance", path);
  hid_t g = H5Gopen2(file, "provenance", H5P_DEFAULT);
  if (g < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: cannot open group", where);
  int rc = 0;
  if (H5Aexists(g, "options") > 0)
    CNF_CALL_GOTO(rc, done, attr_read_str(g, "options", prov->options, sizeof prov->options,
                                          where));
  if (H5Aexists(g, "dataset") > 0)
    CNF_CALL_GOTO(rc, done, attr_read_str(g, "dataset", prov->dataset, sizeof prov->dataset,
                                          where));
  if (H5Aexists(g, "git_rev") > 0)
    CNF_CALL_GOTO(rc, done, attr_read_str(g, "git_rev", prov->git_rev, sizeof prov->git_rev,
                                          where));
  if (H5Aexists(g, "seed") > 0)
    CNF_CALL_GOTO(rc, done, attr_read(g, "seed", H5T_NATIVE_UINT64, &prov->seed, where));
  if (H5Aexists(g, "epoch") > 0)
    CNF_CALL_GOTO(rc, done, attr_read_opt_int(g, "epoch", &prov->epoch, where));
  CNF_CALL_GOTO(rc, done, attr_read_opt_f64(g, "val_score", &prov->val_score, where));
done:
  H5Gclose(g);
  return rc;
}

static int load_file(hid_t file, const char *path, cnf_flow **out, cnf_model_provenance *prov) {
  char buf[64];
  int64_t version = 0, D64 = 0, C64 = 0, nb64 = 0, np64 = 0;
  if (H5Aexists(file, "format") <= 0)
    return cnf_error_set(CNF_ERR_FORMAT, "'%s' is not a cnflow model file (no 'format' attribute)",
                         path);
  CNF_CALL(attr_read_str(file, "format", buf, sizeof buf, path));
  if (strcmp(buf, MODEL_FORMAT) != 0)
    return cnf_error_set(CNF_ERR_FORMAT, "'%s' has format '%s', expected '%s'", path, buf,
                         MODEL_FORMAT);
  CNF_CALL(attr_read_i64(file, "format_version", &version, path));
  if (version != CNF_FLOW_FORMAT_VERSION)
    return cnf_error_set(CNF_ERR_FORMAT, "'%s' has format_version %lld, this build reads %d",
                         path, (long long)version, CNF_FLOW_FORMAT_VERSION);
  hid_t model = H5Gopen2(file, "model", H5P_DEFAULT);
  if (model < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "'%s' has no /model group", path);
  hid_t bgroup = -1;
  cnf_bijector_spec *specs = NULL;
  int **perms = NULL;
  double **shifts = NULL, **scales = NULL;
  cnf_flow *f = NULL;
  char where[600];
  snprintf(where, sizeof where, "%s:/model", path);
  int rc, nb = 0;
  CNF_CALL_GOTO(rc, done, attr_read_i64(model, "dim", &D64, where));
  CNF_CALL_GOTO(rc, done, attr_read_i64(model, "cond_dim", &C64, where));
  CNF_CALL_GOTO(rc, done, attr_read_i64(model, "n_bijectors", &nb64, where));
  CNF_CALL_GOTO(rc, done, attr_read_i64(model, "n_params", &np64, where));
  if (D64 < 1 || D64 > 1000000 || C64 < 0 || C64 > 1000000 || nb64 < 1 || nb64 > 100000) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: implausible dim %lld, cond_dim %lld, n_bijectors %lld",
                       where, (long long)D64, (long long)C64, (long long)nb64);
    goto done;
  }
  nb = (int)nb64;
  const int D = (int)D64, C = (int)C64;
  specs = cnf_calloc((size_t)nb, sizeof *specs);
  perms = cnf_calloc((size_t)nb, sizeof *perms);
  shifts = cnf_calloc((size_t)nb, sizeof *shifts);
  scales = cnf_calloc((size_t)nb, sizeof *scales);
  if (!specs || !perms || !shifts || !scales) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  bgroup = H5Gopen2(model, "bijectors", H5P_DEFAULT);
  if (bgroup < 0) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: group 'bijectors' is missing", where);
    goto done;
  }
  for (int k = 0; k < nb; k++)
    CNF_CALL_GOTO(rc, done, load_bijector(bgroup, k, D, &specs[k], &perms[k], &shifts[k],
                                          &scales[k], path));
  rc = cnf_flow_create(D, C, nb, specs, &f);
  if (rc < 0) {
    char msg[800];
    snprintf(msg, sizeof msg, "%s", cnf_error_message());
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: architecture rejected: %s", path, msg);
    goto done;
  }
  if ((size_t)np64 != cnf_flow_num_params(f)) {
    rc = cnf_error_set(CNF_ERR_FORMAT,
                       "%s: n_params = %lld but the stored architecture has %zu parameters in "
                       "this build",
                       where, (long long)np64, cnf_flow_num_params(f));
    goto done;
  }
  CNF_CALL_GOTO(rc, done, check_bijector_sizes(bgroup, f, path));
  CNF_CALL_GOTO(rc, done, dset_read(model, "params", H5_REAL_MEM, cnf_flow_num_params(f),
                                    cnf_flow_params(f), where));
  if (!cnf_all_finite(cnf_flow_num_params(f), cnf_flow_params(f))) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: parameters contain NaN/Inf", where);
    goto done;
  }
  CNF_CALL_GOTO(rc, done, load_condition(model, f, path));
  CNF_CALL_GOTO(rc, done, cnf_flow_params_changed(f));
  if (prov)
    CNF_CALL_GOTO(rc, done, load_provenance(file, prov, path));
  *out = f;
  f = NULL;
done:
  cnf_flow_free(&f);
  for (int k = 0; k < nb && perms; k++) {
    free(perms[k]);
    free(shifts[k]);
    free(scales[k]);
  }
  free(perms);
  free(shifts);
  free(scales);
  free(specs);
  if (bgroup >= 0)
    H5Gclose(bgroup);
  H5Gclose(model);
  return rc;
}

int cnf_flow_load(const char *path, cnf_flow **out, cnf_model_provenance *prov) {
  *out = NULL;
  struct stat st;
  if (stat(path, &st) != 0)
    return cnf_error_set(CNF_ERR_IO, "cannot open model file '%s': %s", path, strerror(errno));
  h5u_quiet q;
  h5u_quiet_begin(&q);
  int rc;
  htri_t is_h5 = H5Fis_hdf5(path);
  hid_t file = -1;
  if (is_h5 < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "cannot read model file '%s'", path);
  } else if (is_h5 == 0) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "'%s' is not an HDF5 file", path);
  } else if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "cannot open HDF5 file '%s' (truncated or corrupt?)", path);
  } else {
    rc = load_file(file, path, out, prov);
    H5Fclose(file);
  }
  h5u_quiet_end(&q);
  return rc;
}

int cnf_model_binding(const cnf_model_provenance *prov, const char *key, char *out, size_t len) {
  const size_t kl = strlen(key);
  for (const char *p = prov->dataset; p && *p;) {
    const char *eol = strchr(p, '\n');
    const size_t ll = eol ? (size_t)(eol - p) : strlen(p);
    if (ll > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
      const size_t vl = ll - kl - 1;
      if (vl + 1 > len)
        return cnf_error_set(CNF_ERR_ARG, "model binding '%s' is too long", key);
      memcpy(out, p + kl + 1, vl);
      out[vl] = '\0';
      return 1;
    }
    p = eol ? eol + 1 : NULL;
  }
  return 0;
}
