/* `cnflow scan -merge`: the part files of a job-array scan (`cnflow scan -part i -parts n`, one
 * array task each) joined into the scan.h5 a single job writes.  A part is a contiguous run of
 * whole blocks of the whole scan (cnf_partition of the blocks over the parts), so its rows are
 * the single job's rows bit for bit; the merge only has to prove that the files given are
 * exactly the n parts of one scan, then copy them: the root attributes of part 0 without the
 * part attributes (its resume fingerprint without the part suffix), every /scan column
 * concatenated, block_done all ones. */
#include "cnflow/data.h"
#include "cnflow/infer.h"
#include "scan_out.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#define MERGE_NCOLS 7
static const char *const merge_cols[MERGE_NCOLS] = {"e_true", "e_pred", "e_lo", "e_hi",
                                                    "logl_max", "flags", "n_maxima"};
/* written by cnflow scan -parts only; never in a whole scan */
static const char *const part_attrs[] = {"part", "parts", "part_first", "part_showers_total",
                                         "part_block"};

typedef struct merge_part {
  const char *path;
  hid_t file;
  int part, parts, block;
  int64_t first, total, rows;
  char base[8192]; /* resume fingerprint without "|part=i/n" */
} merge_part;

static int is_part_attr(const char *name) {
  for (size_t i = 0; i < sizeof part_attrs / sizeof *part_attrs; i++)
    if (strcmp(name, part_attrs[i]) == 0)
      return 1;
  return 0;
}

static int read_str(hid_t f, const char *name, char *buf, size_t len) {
  buf[0] = 0;
  if (H5Aexists(f, name) <= 0)
    return -1;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
  int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) &&
           H5Tget_size(t) < len && H5Aread(a, t, buf) >= 0;
  if (ok)
    buf[H5Tget_size(t)] = 0;
  if (t >= 0)
    H5Tclose(t);
  if (a >= 0)
    H5Aclose(a);
  return ok ? 0 : -1;
}

static int read_i64(hid_t f, const char *name, int64_t *v) {
  if (H5Aexists(f, name) <= 0)
    return -1;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  int ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
  if (a >= 0)
    H5Aclose(a);
  return ok ? 0 : -1;
}

static int64_t dset_len(hid_t f, const char *path) {
  if (H5Lexists(f, "scan", H5P_DEFAULT) <= 0 || H5Lexists(f, path, H5P_DEFAULT) <= 0)
    return -1;
  hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
  if (d < 0)
    return -1;
  hid_t sp = H5Dget_space(d);
  hssize_t n = H5Sget_simple_extent_ndims(sp) == 1 ? H5Sget_simple_extent_npoints(sp) : -1;
  H5Sclose(sp);
  H5Dclose(d);
  return (int64_t)n;
}

/* Open part file p->path and read where it belongs; one-line errors naming the file. */
static int part_open(merge_part *p) {
  p->file = H5Fopen(p->path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (p->file < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: not a readable HDF5 file", p->path);
  char fmt[64], fp[sizeof p->base];
  if (read_str(p->file, "format", fmt, sizeof fmt) < 0 || strcmp(fmt, "cnflow-scan") != 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: not a cnflow scan file", p->path);
  int64_t part, parts, block;
  if (read_i64(p->file, "parts", &parts) < 0 || read_i64(p->file, "part", &part) < 0 ||
      read_i64(p->file, "part_first", &p->first) < 0 ||
      read_i64(p->file, "part_showers_total", &p->total) < 0 ||
      read_i64(p->file, "part_block", &block) < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: not a part file (a scan made without -parts)",
                         p->path);
  p->part = (int)part;
  p->parts = (int)parts;
  p->block = (int)block;
  char suffix[64];
  snprintf(suffix, sizeof suffix, "|part=%d/%d", p->part, p->parts);
  const size_t ls = strlen(suffix);
  size_t lf = 0;
  if (read_str(p->file, "resume_fingerprint", fp, sizeof fp) < 0 || (lf = strlen(fp)) < ls ||
      strcmp(fp + lf - ls, suffix) != 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: its fingerprint does not name part %d of %d",
                         p->path, p->part, p->parts);
  memcpy(p->base, fp, lf - ls);
  p->base[lf - ls] = 0;
  p->rows = dset_len(p->file, "scan/e_true");
  for (int k = 1; k < MERGE_NCOLS && p->rows >= 0; k++) {
    char path[64];
    snprintf(path, sizeof path, "scan/%s", merge_cols[k]);
    if (dset_len(p->file, path) != p->rows)
      p->rows = -1;
  }
  if (p->rows < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: /scan lacks a column or its columns differ in "
                         "length", p->path);
  return 0;
}

/* Every block of the part written (a renamed part file always is; a copied .tmp is not). */
static int part_complete(const merge_part *p) {
  const int64_t nb = (p->rows + p->block - 1) / p->block;
  if (dset_len(p->file, "scan/block_done") != nb)
    return 0;
  unsigned char *done = malloc(nb ? (size_t)nb : 1);
  hid_t d = H5Dopen2(p->file, "scan/block_done", H5P_DEFAULT);
  int ok = done && d >= 0 && H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, done) >= 0;
  for (int64_t b = 0; ok && b < nb; b++)
    ok = done[b] == 1;
  if (d >= 0)
    H5Dclose(d);
  free(done);
  return ok;
}

/* H5Aiterate callback: the root attribute `name` of part 0 (op_data[0]) must be the same bytes
 * in the part compared (op_data[1]); the part attributes and the fingerprint (compared by
 * base) are skipped.  Returns 1 and the name in op_data[2] on a difference. */
typedef struct attr_cmp {
  hid_t ref, other;
  char differs[256];
} attr_cmp;

static herr_t attr_cmp_one(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
  (void)loc;
  (void)info;
  attr_cmp *c = op;
  if (is_part_attr(name) || strcmp(name, "resume_fingerprint") == 0)
    return 0;
  int same = 0;
  if (H5Aexists(c->other, name) > 0) {
    hid_t a = H5Aopen(c->ref, name, H5P_DEFAULT), b = H5Aopen(c->other, name, H5P_DEFAULT);
    hid_t ta = H5Aget_type(a), tb = H5Aget_type(b), sa = H5Aget_space(a), sb = H5Aget_space(b);
    const size_t n = H5Tget_size(ta) * (size_t)H5Sget_simple_extent_npoints(sa);
    if (H5Tequal(ta, tb) > 0 && H5Sget_simple_extent_npoints(sa) == H5Sget_simple_extent_npoints(sb)
        && !H5Tis_variable_str(ta)) {
      unsigned char *va = malloc(n ? n : 1), *vb = malloc(n ? n : 1);
      same = va && vb && H5Aread(a, ta, va) >= 0 && H5Aread(b, ta, vb) >= 0 &&
             memcmp(va, vb, n) == 0;
      free(va);
      free(vb);
    }
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Tclose(tb);
    H5Aclose(a);
    H5Aclose(b);
  }
  if (!same) {
    snprintf(c->differs, sizeof c->differs, "%s", name);
    return 1;
  }
  return 0;
}

/* Copy the root attributes of `from` to `to`: the part attributes dropped, the fingerprint
 * replaced by the whole scan's (`base`). */
typedef struct attr_copy {
  hid_t to;
  const char *base;
  int failed;
} attr_copy;

static herr_t attr_copy_one(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
  (void)info;
  attr_copy *c = op;
  if (is_part_attr(name))
    return 0;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = H5Aget_type(a), sp = H5Aget_space(a);
  const int fp = strcmp(name, "resume_fingerprint") == 0;
  if (fp)
    H5Tset_size(t, strlen(c->base) + 1);
  const size_t n = H5Tget_size(t) * (size_t)H5Sget_simple_extent_npoints(sp);
  unsigned char *v = malloc(n ? n : 1);
  int ok = v && (fp ? (memcpy(v, c->base, n), 1) : H5Aread(a, t, v) >= 0);
  hid_t b = ok ? H5Acreate2(c->to, name, t, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
  ok = b >= 0 && H5Awrite(b, t, v) >= 0;
  if (b >= 0)
    H5Aclose(b);
  free(v);
  H5Sclose(sp);
  H5Tclose(t);
  H5Aclose(a);
  if (!ok) {
    c->failed = 1;
    return -1;
  }
  return 0;
}

/* rank 0's work: check, then write tmp */
static int merge_root(merge_part *p, int n, const char *out, const char *tmp) {
  for (int i = 0; i < n; i++)
    CNF_CALL(part_open(&p[i]));
  merge_part *by_index[4096] = {0};
  const merge_part *p0 = &p[0];
  for (int i = 0; i < n; i++) {
    const merge_part *q = &p[i];
    if (q->parts != n)
      return cnf_error_set(CNF_ERR_ARG, "%s is part %d of %d, but %d part file(s) were given",
                           q->path, q->part, q->parts, n);
    if (q->part < 0 || q->part >= n)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: part %d is out of range", q->path, q->part);
    if (by_index[q->part])
      return cnf_error_set(CNF_ERR_ARG, "%s and %s are both part %d of %d", by_index[q->part]->path,
                           q->path, q->part, n);
    by_index[q->part] = &p[i];
    attr_cmp c = {p0->file, q->file, ""};
    hsize_t idx = 0;
    if (strcmp(q->base, p0->base) != 0 || q->total != p0->total || q->block != p0->block)
      snprintf(c.differs, sizeof c.differs, "resume_fingerprint");
    else
      H5Aiterate2(p0->file, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cmp_one, &c);
    if (!c.differs[0]) { /* and the other way round: no attribute part 0 lacks */
      attr_cmp r = {q->file, p0->file, ""};
      idx = 0;
      H5Aiterate2(q->file, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cmp_one, &r);
      memcpy(c.differs, r.differs, sizeof c.differs);
    }
    if (c.differs[0])
      return cnf_error_set(CNF_ERR_FORMAT, "%s is not a part of the same scan as %s (attribute "
                           "'%s' differs: input, ensemble, range, grid, block, prior or cnflow "
                           "version)", q->path, p0->path, c.differs);
    /* the rows a part must hold, from the same partition cnflow scan -parts used */
    const uint64_t B = (uint64_t)q->block, total = (uint64_t)q->total, nb = (total + B - 1) / B;
    uint64_t b0 = 0, bn = 0;
    cnf_partition(nb, n, q->part, &b0, &bn);
    const uint64_t first = b0 * B, end = (b0 + bn) * B < total ? (b0 + bn) * B : total;
    if ((uint64_t)q->first != first || (uint64_t)q->rows != end - first || !part_complete(q))
      return cnf_error_set(CNF_ERR_FORMAT, "%s: part %d of %d should hold rows %llu..%llu of "
                           "%llu, complete; it holds %lld rows from %lld%s", q->path, q->part, n,
                           (unsigned long long)first, (unsigned long long)end,
                           (unsigned long long)total, (long long)q->rows, (long long)q->first,
                           part_complete(q) ? "" : " (incomplete)");
  }
  /* the output: part 0's layout, the whole length */
  const int64_t total = p0->total, nb = (total + p0->block - 1) / p0->block;
  /* room for the whole merged file before it exists (the previous <out> stays until the
   * rename): 5 float64 and 2 int32 columns, a byte per block, part 0's attributes (the
   * fingerprint is the longest) and a margin for HDF5's metadata */
  CNF_CALL(cnf_check_free_space(out, cnf_scan_out_bytes((uint64_t)total, (uint64_t)nb,
                                                        strlen(p0->base))));
  int rc = 0;
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), g = -1;
  if (f < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create the merged output", tmp);
  attr_copy ac = {f, p0->base, 0};
  hsize_t idx = 0;
  if (H5Aiterate2(p0->file, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_copy_one, &ac) < 0 || ac.failed)
    rc = cnf_error_set(CNF_ERR_IO, "%s: copying the root attributes failed", tmp);
  if (rc == 0 && (g = H5Gcreate2(f, "scan", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot create group /scan", tmp);
  enum { CHUNK = 65536 };
  double *buf = rc == 0 ? malloc(sizeof(double) * CHUNK) : NULL;
  if (rc == 0 && !buf)
    rc = cnf_error_set(CNF_ERR_NOMEM, "merge: out of memory");
  for (int k = 0; rc == 0 && k <= MERGE_NCOLS; k++) {
    const char *name = k < MERGE_NCOLS ? merge_cols[k] : "block_done";
    char path[64];
    snprintf(path, sizeof path, "scan/%s", name);
    hid_t src = H5Dopen2(p0->file, path, H5P_DEFAULT);
    hid_t type = H5Dget_type(src), dcpl = H5Dget_create_plist(src);
    hsize_t dims[1] = {(hsize_t)(k < MERGE_NCOLS ? total : nb)};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Tclose(type);
    H5Dclose(src);
    if (d < 0) {
      rc = cnf_error_set(CNF_ERR_IO, "%s: cannot create /scan/%s", tmp, name);
      break;
    }
    hid_t mtype = k < 5 ? H5T_NATIVE_DOUBLE : k < MERGE_NCOLS ? H5T_NATIVE_INT : H5T_NATIVE_UCHAR;
    if (k == MERGE_NCOLS) { /* every block of the whole scan is done */
      unsigned char *ones = malloc(nb ? (size_t)nb : 1);
      if (!ones || (memset(ones, 1, nb ? (size_t)nb : 1),
                    H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, ones) < 0))
        rc = cnf_error_set(CNF_ERR_IO, "%s: writing /scan/block_done failed", tmp);
      free(ones);
    }
    for (int i = 0; rc == 0 && k < MERGE_NCOLS && i < n; i++) {
      const merge_part *q = by_index[i];
      hid_t s = H5Dopen2(q->file, path, H5P_DEFAULT);
      hid_t fs = H5Dget_space(s), ds = H5Dget_space(d);
      for (int64_t r = 0; rc == 0 && r < q->rows; r += CHUNK) {
        hsize_t cnt[1] = {(hsize_t)(q->rows - r < CHUNK ? q->rows - r : CHUNK)};
        hsize_t off_s[1] = {(hsize_t)r}, off_d[1] = {(hsize_t)(q->first + r)};
        hid_t ms = H5Screate_simple(1, cnt, NULL);
        int ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off_s, NULL, cnt, NULL) >= 0 &&
                 H5Sselect_hyperslab(ds, H5S_SELECT_SET, off_d, NULL, cnt, NULL) >= 0 &&
                 H5Dread(s, mtype, ms, fs, H5P_DEFAULT, buf) >= 0 &&
                 H5Dwrite(d, mtype, ms, ds, H5P_DEFAULT, buf) >= 0;
        H5Sclose(ms);
        if (!ok)
          rc = cnf_error_set(CNF_ERR_IO, "%s: copying /scan/%s from %s failed", out, name,
                             q->path);
      }
      H5Sclose(ds);
      H5Sclose(fs);
      H5Dclose(s);
    }
    H5Dclose(d);
  }
  free(buf);
  if (g >= 0)
    H5Gclose(g);
  if (H5Fclose(f) < 0 && rc == 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: closing the merged output failed", tmp);
  if (rc == 0 && rename(tmp, out) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot rename the merged output into place", out);
  return rc;
}

int cnf_scan_merge(const char *const *parts, int n, const char *out, MPI_Comm comm) {
  int rank = 0, rc = 0;
  MPI_Comm_rank(comm, &rank);
  if (n < 1 || n > 4096)
    return cnf_error_set(CNF_ERR_ARG, "scan: -merge needs 1 to 4096 part files, %d given", n);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  if (rank == 0) {
    merge_part *p = calloc((size_t)n, sizeof *p);
    if (!p)
      rc = cnf_error_set(CNF_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; p && i < n; i++) {
      p[i].path = parts[i];
      p[i].file = -1;
    }
    /* our one-line errors, not HDF5's stack */
    H5E_auto2_t efunc = NULL;
    void *edata = NULL;
    H5Eget_auto2(H5E_DEFAULT, &efunc, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (p)
      rc = merge_root(p, n, out, tmp);
    H5Eset_auto2(H5E_DEFAULT, efunc, edata);
    for (int i = 0; p && i < n; i++)
      if (p[i].file >= 0)
        H5Fclose(p[i].file);
    free(p);
    if (rc < 0)
      remove(tmp); /* a merge is cheap to redo: never leave a partial file */
  }
  return cnf_sync_status(comm, rc);
}
