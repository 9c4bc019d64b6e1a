/* hgg truth from the user's own generator output: Les Houches Event files (two final-state
 * photons, or a Higgs decayed here) and HDF5 tables with named columns.
 *
 * Input events failing the truth selection are skipped: output row i is the i-th SELECTED input
 * event.  Every rank streams through the whole file (the selection count decides which rows are
 * whose) and stores only the rows of its own block. */
#include "hgg.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hgg_input_free(hgg_input *in) {
  free(in->g);
  free(in->mu);
  free(in->source);
  memset(in, 0, sizeof *in);
}

/* Apply the selection to input event `source`; store it when its selected index falls in the
 * kept block. */
static int input_add(hgg_input *in, const hgg_opts *o, hgg_photon a, hgg_photon b, double mu,
                     int64_t source) {
  in->n_read++;
  if (!hgg_select_order(&a, &b, o->et_min, o->eta_max))
    return 0;
  uint64_t idx = in->n_selected++;
  if (idx < in->keep_first || idx - in->keep_first >= in->keep_count)
    return 0;
  if ((in->n_kept & (in->n_kept - 1)) == 0) { /* grow at powers of two */
    size_t cap = in->n_kept ? 2 * in->n_kept : 1;
    hgg_photon *g = realloc(in->g, cap * 2 * sizeof *g);
    if (g)
      in->g = g;
    double *m = realloc(in->mu, cap * sizeof *m);
    if (m)
      in->mu = m;
    int64_t *s = realloc(in->source, cap * sizeof *s);
    if (s)
      in->source = s;
    if (!g || !m || !s)
      return cnf_error_set(CNF_ERR_NOMEM, "hgg: out of memory storing input truth events");
  }
  in->g[2 * in->n_kept] = a;
  in->g[2 * in->n_kept + 1] = b;
  in->mu[in->n_kept] = mu;
  in->source[in->n_kept] = source;
  in->n_kept++;
  return 0;
}

/* ---- LHEF ------------------------------------------------------------------------------- */

static int is_tag(const char *line, const char *tag) {
  const char *p = strstr(line, tag);
  if (!p)
    return 0;
  char c = p[strlen(tag)];
  return c == '>' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int blank(const char *line) {
  for (; *line; line++)
    if (*line != ' ' && *line != '\t' && *line != '\n' && *line != '\r')
      return 0;
  return 1;
}

typedef struct lhef_reader {
  FILE *f;
  const char *path;
  char *line;
  size_t cap;
  long lineno;
} lhef_reader;

static int lhef_next_line(lhef_reader *rd) {
  if (getline(&rd->line, &rd->cap, rd->f) < 0)
    return 0;
  rd->lineno++;
  return 1;
}

/* One <event> block (the "<event" line was just read).  Photons: IDUP 22 with ISTUP 1, the two
 * with the largest pT; otherwise the first Higgs (IDUP 25), decayed isotropically with the
 * stream (seed, event index, HGG_SUB_DECAY). */
static int lhef_event(lhef_reader *rd, const hgg_opts *o, int64_t index, hgg_input *in) {
  int nup = -1;
  while (lhef_next_line(rd)) {
    if (blank(rd->line))
      continue;
    if (sscanf(rd->line, "%d", &nup) != 1 || nup < 0 || nup > 100000)
      return cnf_error_set(CNF_ERR_FORMAT, "hgg: LHEF '%s' line %ld: bad event header (NUP ...)",
                           rd->path, rd->lineno);
    break;
  }
  if (nup < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "hgg: LHEF '%s': truncated inside event %lld", rd->path,
                         (long long)index);
  hgg_p4 photon[2], higgs = {0};
  double photon_pt[2] = {-1.0, -1.0}, higgs_m = 0.0;
  int n_photons = 0, have_higgs = 0;
  for (int k = 0; k < nup; k++) {
    if (!lhef_next_line(rd))
      return cnf_error_set(CNF_ERR_FORMAT, "hgg: LHEF '%s': truncated inside event %lld", rd->path,
                           (long long)index);
    int id, status, m1, m2, c1, c2;
    double p[5];
    if (sscanf(rd->line, "%d %d %d %d %d %d %lf %lf %lf %lf %lf", &id, &status, &m1, &m2, &c1, &c2,
               &p[0], &p[1], &p[2], &p[3], &p[4]) != 11 ||
        !cnf_all_finite_d(5, p))
      return cnf_error_set(CNF_ERR_FORMAT, "hgg: LHEF '%s' line %ld: malformed particle line",
                           rd->path, rd->lineno);
    hgg_p4 v = {p[0], p[1], p[2], p[3]};
    if (id == 22 && status == 1) {
      double pt = sqrt(p[0] * p[0] + p[1] * p[1]);
      n_photons++;
      int slot = pt > photon_pt[0] ? 0 : (pt > photon_pt[1] ? 1 : -1);
      if (slot == 0) {
        photon[1] = photon[0];
        photon_pt[1] = photon_pt[0];
      }
      if (slot >= 0) {
        photon[slot] = v;
        photon_pt[slot] = pt;
      }
    } else if (id == 25 && !have_higgs) {
      have_higgs = 1;
      higgs = v;
      higgs_m = p[4] > 0.0 ? p[4] : sqrt(fmax(0.0, v.e * v.e - v.px * v.px - v.py * v.py - v.pz * v.pz));
    }
  }
  int closed = 0;
  while (!closed && lhef_next_line(rd))
    closed = strstr(rd->line, "</event>") != NULL;
  if (!closed)
    return cnf_error_set(CNF_ERR_FORMAT, "hgg: LHEF '%s': event %lld has no </event>", rd->path,
                         (long long)index);
  if (n_photons < 2) {
    if (!have_higgs || !(higgs_m > 0.0) || !(higgs.e > 0.0))
      return cnf_error_set(CNF_ERR_FORMAT, "hgg: LHEF '%s' event %lld (ending line %ld): neither two final-state photons nor a Higgs with positive mass",
                           rd->path, (long long)index, rd->lineno);
    cnf_rng r;
    cnf_rng_init(&r, (uint64_t)o->seed, (uint64_t)index, HGG_SUB_DECAY);
    double u1 = cnf_rng_uniform(&r), u2 = cnf_rng_uniform(&r);
    hgg_decay(&higgs, higgs_m, u1, u2, &photon[0], &photon[1]);
  }
  return input_add(in, o, hgg_photon_from_p4(&photon[0]), hgg_photon_from_p4(&photon[1]), NAN,
                   index);
}

int hgg_input_read_lhef(const hgg_opts *o, uint64_t keep_first, uint64_t keep_count,
                        hgg_input *in) {
  memset(in, 0, sizeof *in);
  in->keep_first = keep_first;
  in->keep_count = keep_count;
  lhef_reader rd = {.path = o->truth_lhef};
  rd.f = fopen(o->truth_lhef, "r");
  if (!rd.f)
    return cnf_error_set(CNF_ERR_IO, "hgg: cannot open LHEF truth file '%s': %s", o->truth_lhef,
                         strerror(errno));
  int rc = 0;
  int64_t index = 0;
  while (rc == 0 && lhef_next_line(&rd))
    if (is_tag(rd.line, "<event"))
      rc = lhef_event(&rd, o, index++, in);
  if (rc == 0 && ferror(rd.f))
    rc = cnf_error_set(CNF_ERR_IO, "hgg: read error in LHEF truth file '%s'", o->truth_lhef);
  if (rc == 0 && index == 0)
    rc = cnf_error_set(CNF_ERR_FORMAT, "hgg: '%s' holds no <event> block (not a Les Houches Event file?)",
                       o->truth_lhef);
  free(rd.line);
  fclose(rd.f);
  if (rc < 0)
    hgg_input_free(in);
  return rc;
}

/* ---- HDF5 tables ------------------------------------------------------------------------ */

/* Required columns (first name, alternative name) and the optional mu. */
enum { COL_ET1, COL_ETA1, COL_PHI1, COL_ET2, COL_ETA2, COL_PHI2, COL_MU, N_COL };
static const char *const col_names[N_COL][2] = {
    {"pt1", "et1"}, {"eta1", NULL}, {"phi1", NULL}, {"pt2", "et2"},
    {"eta2", NULL}, {"phi2", NULL}, {"mu", NULL}};

static int col_match(const char *name, int c) {
  return strcmp(name, col_names[c][0]) == 0 || (col_names[c][1] && strcmp(name, col_names[c][1]) == 0);
}

/* Column names of a 2-D dataset from its "columns" string attribute (variable or fixed length).
 * Fills idx[c] (-1 when absent); returns 1 if all required columns are present, 0 if not. */
static int h5_columns_lookup(hid_t dset, int ncols, int idx[N_COL]) {
  for (int c = 0; c < N_COL; c++)
    idx[c] = -1;
  if (H5Aexists(dset, "columns") <= 0)
    return 0;
  hid_t attr = H5Aopen(dset, "columns", H5P_DEFAULT);
  hid_t ftype = attr < 0 ? -1 : H5Aget_type(attr);
  hid_t space = attr < 0 ? -1 : H5Aget_space(attr);
  hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  int found = 0;
  if (ftype >= 0 && H5Tget_class(ftype) == H5T_STRING && n == ncols) {
    char **names = calloc((size_t)n, sizeof *names);
    hid_t mtype = H5Tcopy(H5T_C_S1);
    int ok = 0;
    if (names && H5Tis_variable_str(ftype) > 0) {
      H5Tset_size(mtype, H5T_VARIABLE);
      H5Tset_cset(mtype, H5Tget_cset(ftype));
      if (H5Aread(attr, mtype, names) >= 0) {
        for (int j = 0; j < n; j++)
          for (int c = 0; c < N_COL; c++)
            if (names[j] && idx[c] < 0 && col_match(names[j], c))
              idx[c] = j;
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, names);
        ok = 1;
      }
    } else if (names) {
      size_t len = H5Tget_size(ftype);
      char *buf = calloc((size_t)n, len + 1);
      H5Tset_size(mtype, len + 1);
      if (buf && H5Aread(attr, mtype, buf) >= 0) {
        for (int j = 0; j < n; j++)
          for (int c = 0; c < N_COL; c++)
            if (idx[c] < 0 && col_match(buf + (size_t)j * (len + 1), c))
              idx[c] = j;
        ok = 1;
      }
      free(buf);
    }
    H5Tclose(mtype);
    free(names);
    found = ok;
    for (int c = 0; c < COL_MU; c++)
      found = found && idx[c] >= 0;
  }
  if (space >= 0)
    H5Sclose(space);
  if (ftype >= 0)
    H5Tclose(ftype);
  if (attr >= 0)
    H5Aclose(attr);
  return found;
}

/* Names of the datasets directly under a group, for auto-detection. */
typedef struct h5_names {
  int n;
  char name[64][256];
} h5_names;

static herr_t h5_collect(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  h5_names *l = data;
  if (l->n < 64 && strlen(name) < 256)
    strcpy(l->name[l->n++], name);
  return 0;
}

typedef struct h5_source {
  hid_t dset2d;              /* 2-D table, or -1 */
  int idx[N_COL];            /* its column indices */
  int ncols;
  hid_t cols[N_COL];         /* 1-D datasets, or -1 */
  uint64_t n;
} h5_source;

static int dset_shape(hid_t d, hsize_t dims[2]) {
  hid_t s = H5Dget_space(d);
  int nd = s < 0 ? -1 : H5Sget_simple_extent_ndims(s);
  if (nd >= 1 && nd <= 2)
    H5Sget_simple_extent_dims(s, dims, NULL);
  if (s >= 0)
    H5Sclose(s);
  return nd;
}

static int h5_try_table(hid_t loc, const char *name, h5_source *src) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
    return 0;
  H5O_info_t info;
  if (H5Oget_info_by_name(loc, name, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET)
    return 0;
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  hsize_t dims[2] = {0, 0};
  if (d >= 0 && dset_shape(d, dims) == 2 && h5_columns_lookup(d, (int)dims[1], src->idx)) {
    src->dset2d = d;
    src->ncols = (int)dims[1];
    src->n = dims[0];
    return 1;
  }
  if (d >= 0)
    H5Dclose(d);
  return 0;
}

/* 1-D datasets named after the columns, directly under `loc`. */
static int h5_try_columns(hid_t loc, h5_source *src) {
  int ok = 1;
  for (int c = 0; c < N_COL; c++) {
    src->cols[c] = -1;
    for (int a = 0; a < 2 && src->cols[c] < 0; a++) {
      const char *nm = col_names[c][a];
      if (nm && H5Lexists(loc, nm, H5P_DEFAULT) > 0)
        src->cols[c] = H5Dopen2(loc, nm, H5P_DEFAULT);
    }
    hsize_t dims[2] = {0, 0};
    if (src->cols[c] >= 0 && dset_shape(src->cols[c], dims) != 1) {
      H5Dclose(src->cols[c]);
      src->cols[c] = -1;
    }
    if (src->cols[c] >= 0) {
      if (c == 0)
        src->n = dims[0];
      else if (dims[0] != src->n)
        ok = 0;
    } else if (c < COL_MU) {
      ok = 0;
    }
  }
  return ok;
}

static void h5_source_close(h5_source *src) {
  if (src->dset2d >= 0)
    H5Dclose(src->dset2d);
  for (int c = 0; c < N_COL; c++)
    if (src->cols[c] >= 0)
      H5Dclose(src->cols[c]);
}

static int h5_read_rows(hid_t d, int ndims, hsize_t first, hsize_t rows, hsize_t ncols,
                        double *out) {
  hsize_t start[2] = {first, 0}, count[2] = {rows, ncols};
  hid_t fs = H5Dget_space(d);
  hid_t ms = H5Screate_simple(ndims, count, NULL);
  herr_t st = (fs < 0 || ms < 0) ? -1
                                 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
  if (st >= 0)
    st = H5Dread(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, out);
  if (ms >= 0)
    H5Sclose(ms);
  if (fs >= 0)
    H5Sclose(fs);
  return st < 0 ? -1 : 0;
}

static int h5_read_all(const hgg_opts *o, hid_t file, hgg_input *in) {
  const char *path = o->truth_h5;
  h5_source src = {.dset2d = -1};
  for (int c = 0; c < N_COL; c++)
    src.cols[c] = -1;
  int found = 0;
  if (o->truth_h5_dataset[0]) {
    found = h5_try_table(file, o->truth_h5_dataset, &src);
    if (!found && H5Lexists(file, o->truth_h5_dataset, H5P_DEFAULT) > 0) {
      hid_t g = H5Gopen2(file, o->truth_h5_dataset, H5P_DEFAULT);
      if (g >= 0) {
        found = h5_try_columns(g, &src);
        H5Gclose(g);
      }
    }
  } else {
    found = h5_try_table(file, "truth", &src);
    if (!found) {
      h5_names *names = calloc(1, sizeof *names);
      if (!names)
        return cnf_error_set(CNF_ERR_NOMEM, "hgg: out of memory");
      H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, NULL, h5_collect, names);
      for (int k = 0; k < names->n && !found; k++)
        found = h5_try_table(file, names->name[k], &src);
      free(names);
    }
    if (!found)
      found = h5_try_columns(file, &src);
  }
  if (!found) {
    h5_source_close(&src);
    return cnf_error_set(CNF_ERR_FORMAT, "hgg: HDF5 truth file '%s' has no table with columns pt1|et1, eta1, phi1, pt2|et2, eta2, phi2 (a 2-D dataset with a 'columns' attribute, or equal-length 1-D datasets)",
                         path);
  }
  const hsize_t block = 65536;
  int width = src.dset2d >= 0 ? src.ncols : 1;
  double *buf = cnf_malloc((size_t)block * (size_t)width * sizeof(double));
  double *colbuf = cnf_malloc((size_t)block * N_COL * sizeof(double));
  int rc = (buf && colbuf) ? 0 : CNF_ERR_NOMEM;
  for (hsize_t first = 0; rc == 0 && first < src.n; first += block) {
    hsize_t rows = src.n - first < block ? src.n - first : block;
    for (int c = 0; c < N_COL; c++) { /* colbuf (N_COL, rows) */
      double *dst = colbuf + (size_t)c * block;
      if (src.dset2d >= 0) {
        if (c == 0 && h5_read_rows(src.dset2d, 2, first, rows, (hsize_t)src.ncols, buf) < 0)
          rc = cnf_error_set(CNF_ERR_IO, "hgg: cannot read rows %llu.. of HDF5 truth file '%s'",
                             (unsigned long long)first, path);
        for (hsize_t i = 0; rc == 0 && i < rows; i++)
          dst[i] = src.idx[c] >= 0 ? buf[i * (hsize_t)src.ncols + (hsize_t)src.idx[c]] : NAN;
      } else if (src.cols[c] >= 0) {
        if (h5_read_rows(src.cols[c], 1, first, rows, 1, dst) < 0)
          rc = cnf_error_set(CNF_ERR_IO, "hgg: cannot read column %s of HDF5 truth file '%s'",
                             col_names[c][0], path);
      } else {
        for (hsize_t i = 0; i < rows; i++)
          dst[i] = NAN;
      }
    }
    for (hsize_t i = 0; rc == 0 && i < rows; i++) {
      double v[N_COL];
      for (int c = 0; c < N_COL; c++)
        v[c] = colbuf[(size_t)c * block + i];
      if (!cnf_all_finite_d(COL_MU, v) || v[COL_ET1] < 0.0 || v[COL_ET2] < 0.0)
        rc = cnf_error_set(CNF_ERR_FORMAT, "hgg: HDF5 truth file '%s' row %llu: non-finite or negative pT",
                           path, (unsigned long long)(first + i));
      else
        rc = input_add(in, o, (hgg_photon){v[COL_ET1], v[COL_ETA1], v[COL_PHI1]},
                       (hgg_photon){v[COL_ET2], v[COL_ETA2], v[COL_PHI2]}, v[COL_MU],
                       (int64_t)(first + i));
    }
  }
  free(colbuf);
  free(buf);
  h5_source_close(&src);
  return rc;
}

int hgg_input_read_h5(const hgg_opts *o, uint64_t keep_first, uint64_t keep_count,
                      hgg_input *in) {
  memset(in, 0, sizeof *in);
  in->keep_first = keep_first;
  in->keep_count = keep_count;
  FILE *probe = fopen(o->truth_h5, "rb");
  if (!probe)
    return cnf_error_set(CNF_ERR_IO, "hgg: cannot open HDF5 truth file '%s': %s", o->truth_h5,
                         strerror(errno));
  fclose(probe);
  /* HDF5 would print its error stack: failures become one-line messages instead */
  H5E_auto2_t func;
  void *data;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  int rc = 0;
  hid_t file = H5Fis_hdf5(o->truth_h5) > 0 ? H5Fopen(o->truth_h5, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
  if (file < 0)
    rc = cnf_error_set(CNF_ERR_FORMAT, "hgg: '%s' is not a readable HDF5 file", o->truth_h5);
  else
    rc = h5_read_all(o, file, in);
  if (file >= 0)
    H5Fclose(file);
  H5Eset_auto2(H5E_DEFAULT, func, data);
  if (rc < 0)
    hgg_input_free(in);
  return rc;
}
