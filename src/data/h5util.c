/* HDF5 helpers shared by src/data, the model file (src/flow/flow_io.c) and the inference
 * outputs (src/infer): quiet error stacks turned into one-line messages, attributes,
 * deterministic property lists, and the status sync that keeps ranks in step on failure. */
#include "h5util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void h5u_quiet_begin(h5u_quiet *q) {
  H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5u_quiet_end(const h5u_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

/* The innermost entry of the stack says what actually went wrong ("truncated file: eof = ...",
 * "unable to open file", ...); the outer ones only repeat the call chain. */
static herr_t innermost_cb(unsigned n, const H5E_error2_t *err, void *buf) {
  if (n == 0 && err->desc)
    snprintf((char *)buf, 384, "%s", err->desc);
  return 0;
}

int h5u_fail(int code, const char *fmt, ...) {
  char what[640], detail[384] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, detail);
  H5Eclear2(H5E_DEFAULT);
  /* multi-line HDF5 descriptions would break the one-line rule */
  for (char *p = detail; *p; p++)
    if (*p == '\n')
      *p = ' ';
  if (detail[0])
    return cnf_error_set(code, "%s: %s", what, detail);
  return cnf_error_set(code, "%s", what);
}

int cnf_sync_status(MPI_Comm comm, int rc) {
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  if (size == 1)
    return rc;
  MPI_Comm_rank(comm, &rank);
  struct {
    int ok, rank;
  } in = {rc < 0 ? 0 : 1, rank}, out;
  if (MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MINLOC, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "MPI_Allreduce failed while sharing a status");
  if (out.ok)
    return rc;
  struct {
    int code;
    char msg[1020];
  } shared = {rc, ""};
  if (rank == out.rank)
    snprintf(shared.msg, sizeof shared.msg, "%s", cnf_error_message());
  if (MPI_Bcast(&shared, (int)sizeof shared, MPI_BYTE, out.rank, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "MPI_Bcast failed while sharing an error");
  if (rank != out.rank)
    cnf_error_set(shared.code, "%s", shared.msg);
  return shared.code;
}

hid_t h5u_fapl(MPI_Comm comm) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0)
    return fapl;
  if (H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
      H5Pset_all_coll_metadata_ops(fapl, 1) < 0 || H5Pset_coll_metadata_write(fapl, 1) < 0 ||
      H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0) {
    H5Pclose(fapl);
    return -1;
  }
  return fapl;
}

hid_t h5u_gcpl_untimed(hid_t cls) {
  hid_t p = H5Pcreate(cls);
  if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
    H5Pclose(p);
    return -1;
  }
  return p;
}

static hid_t vlen_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0)
    return t;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

static int attr_write2(hid_t obj, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                       const void *buf) {
  int rc = 0;
  hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0)
    return h5u_fail(CNF_ERR_IO, "cannot create attribute '%s'", name);
  if (H5Awrite(a, mtype, buf) < 0)
    rc = h5u_fail(CNF_ERR_IO, "cannot write attribute '%s'", name);
  H5Aclose(a);
  return rc;
}

static int attr_write(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf) {
  return attr_write2(obj, name, type, type, space, buf);
}

int h5u_attr_write_string(hid_t obj, const char *name, const char *value) {
  hid_t t = vlen_string_type(), s = H5Screate(H5S_SCALAR);
  int rc = (t < 0 || s < 0) ? h5u_fail(CNF_ERR_IO, "cannot describe attribute '%s'", name)
                            : attr_write(obj, name, t, s, &value);
  if (s >= 0)
    H5Sclose(s);
  if (t >= 0)
    H5Tclose(t);
  return rc;
}

int h5u_attr_write_strings(hid_t obj, const char *name, int n, const char *const *values) {
  hsize_t dim = (hsize_t)n;
  hid_t t = vlen_string_type(), s = H5Screate_simple(1, &dim, NULL);
  int rc = (t < 0 || s < 0) ? h5u_fail(CNF_ERR_IO, "cannot describe attribute '%s'", name)
                            : attr_write(obj, name, t, s, values);
  if (s >= 0)
    H5Sclose(s);
  if (t >= 0)
    H5Tclose(t);
  return rc;
}

int h5u_attr_write_int64(hid_t obj, const char *name, int ndims, const hsize_t *dims,
                         const int64_t *values) {
  hid_t s = ndims == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndims, dims, NULL);
  if (s < 0)
    return h5u_fail(CNF_ERR_IO, "cannot describe attribute '%s'", name);
  int rc = attr_write(obj, name, H5T_STD_I64LE, s, values);
  H5Sclose(s);
  return rc;
}

int h5u_attr_write_double(hid_t obj, const char *name, double value) {
  hid_t s = H5Screate(H5S_SCALAR);
  if (s < 0)
    return h5u_fail(CNF_ERR_IO, "cannot describe attribute '%s'", name);
  int rc = attr_write(obj, name, H5T_IEEE_F64LE, s, &value);
  H5Sclose(s);
  return rc;
}

int h5u_attr_write_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                          const void *value) {
  hid_t s = H5Screate(H5S_SCALAR);
  if (s < 0)
    return h5u_fail(CNF_ERR_IO, "cannot describe attribute '%s'", name);
  int rc = attr_write2(obj, name, ftype, mtype, s, value);
  H5Sclose(s);
  return rc;
}

int h5u_attr_write_fixed_string(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
  int rc = (t < 0 || s < 0 || H5Tset_size(t, strlen(value) + 1) < 0)
               ? h5u_fail(CNF_ERR_IO, "cannot describe attribute '%s'", name)
               : attr_write(obj, name, t, s, value);
  if (s >= 0)
    H5Sclose(s);
  if (t >= 0)
    H5Tclose(t);
  return rc;
}

/* Open attribute `name` if present: 0 with *a set, 1 when absent, < 0 on error. */
static int attr_open(hid_t obj, const char *name, hid_t *a) {
  htri_t exists = H5Aexists(obj, name);
  if (exists < 0)
    return h5u_fail(CNF_ERR_IO, "cannot query attribute '%s'", name);
  if (!exists)
    return 1;
  *a = H5Aopen(obj, name, H5P_DEFAULT);
  if (*a < 0)
    return h5u_fail(CNF_ERR_IO, "cannot open attribute '%s'", name);
  return 0;
}

/* Read n strings (variable-length or fixed-length storage) into malloc'ed copies. */
static int attr_read_strings_open(hid_t a, const char *name, int n, char **out) {
  int rc = 0;
  hid_t ft = H5Aget_type(a), mt = -1;
  if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "attribute '%s' is not a string", name);
    goto done;
  }
  htri_t vl = H5Tis_variable_str(ft);
  mt = H5Tcopy(ft);
  if (vl < 0 || mt < 0) {
    rc = h5u_fail(CNF_ERR_IO, "cannot read attribute '%s'", name);
    goto done;
  }
  if (vl) {
    char **tmp = cnf_calloc((size_t)n, sizeof *tmp);
    if (!tmp) {
      rc = CNF_ERR_NOMEM;
      goto done;
    }
    if (H5Aread(a, mt, tmp) < 0) {
      free(tmp);
      rc = h5u_fail(CNF_ERR_IO, "cannot read attribute '%s'", name);
      goto done;
    }
    for (int i = 0; i < n; i++) {
      out[i] = strdup(tmp[i] ? tmp[i] : "");
      H5free_memory(tmp[i]);
      if (!out[i])
        rc = cnf_error_set(CNF_ERR_NOMEM, "out of memory reading attribute '%s'", name);
    }
    free(tmp);
  } else {
    size_t w = H5Tget_size(ft);
    char *tmp = cnf_malloc((size_t)n * w);
    if (!tmp) {
      rc = CNF_ERR_NOMEM;
      goto done;
    }
    if (H5Aread(a, mt, tmp) < 0) {
      free(tmp);
      rc = h5u_fail(CNF_ERR_IO, "cannot read attribute '%s'", name);
      goto done;
    }
    for (int i = 0; i < n; i++) {
      out[i] = cnf_calloc(w + 1, 1);
      if (!out[i]) {
        rc = CNF_ERR_NOMEM;
        continue;
      }
      memcpy(out[i], tmp + (size_t)i * w, w); /* null-padded or space-padded: trim below */
      for (size_t k = w; k > 0 && (out[i][k - 1] == ' ' || out[i][k - 1] == '\0'); k--)
        out[i][k - 1] = '\0';
    }
    free(tmp);
  }
done:
  if (mt >= 0)
    H5Tclose(mt);
  if (ft >= 0)
    H5Tclose(ft);
  return rc;
}

static hssize_t attr_npoints(hid_t a) {
  hid_t s = H5Aget_space(a);
  if (s < 0)
    return -1;
  hssize_t n = H5Sget_simple_extent_npoints(s);
  H5Sclose(s);
  return n;
}

int h5u_attr_read_string(hid_t obj, const char *name, char *buf, size_t len) {
  hid_t a = -1;
  int rc = attr_open(obj, name, &a);
  if (rc != 0)
    return rc;
  char *s = NULL;
  if (attr_npoints(a) != 1) {
    H5Aclose(a);
    return 1;
  }
  rc = attr_read_strings_open(a, name, 1, &s);
  H5Aclose(a);
  if (rc == 0)
    snprintf(buf, len, "%s", s);
  free(s);
  return rc;
}

int h5u_attr_read_strings(hid_t obj, const char *name, int n, char ***out) {
  hid_t a = -1;
  *out = NULL;
  int rc = attr_open(obj, name, &a);
  if (rc != 0)
    return rc;
  if (attr_npoints(a) != n) {
    H5Aclose(a);
    return 1;
  }
  char **s = cnf_calloc((size_t)n, sizeof *s);
  rc = s ? attr_read_strings_open(a, name, n, s) : CNF_ERR_NOMEM;
  H5Aclose(a);
  if (rc < 0 && s) {
    for (int i = 0; i < n; i++)
      free(s[i]);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int h5u_attr_read_int64(hid_t obj, const char *name, int n, int64_t *out) {
  hid_t a = -1;
  int rc = attr_open(obj, name, &a);
  if (rc != 0)
    return rc;
  hid_t ft = H5Aget_type(a);
  if (attr_npoints(a) != n || ft < 0 || H5Tget_class(ft) != H5T_INTEGER)
    rc = 1;
  else if (H5Aread(a, H5T_NATIVE_INT64, out) < 0)
    rc = h5u_fail(CNF_ERR_IO, "cannot read attribute '%s'", name);
  if (ft >= 0)
    H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

int h5u_attr_read_scalar(hid_t obj, const char *name, hid_t mtype, void *val) {
  hid_t a = -1;
  int rc = attr_open(obj, name, &a);
  if (rc != 0)
    return rc;
  hssize_t npoints = attr_npoints(a);
  if (npoints != 1)
    rc = cnf_error_set(CNF_ERR_FORMAT, "attribute '%s' must hold a single value, has %lld", name,
                       (long long)npoints);
  else if (H5Aread(a, mtype, val) < 0)
    rc = cnf_error_set(CNF_ERR_FORMAT, "attribute '%s' has the wrong type", name);
  H5Aclose(a);
  return rc;
}

/* A file whose H5Fclose failed (typically a full disk: the final metadata flush could not be
 * written) stays in HDF5's list of open files with its MPI-IO handle already gone.  Releasing
 * the ID, or HDF5's own shutdown (run from an MPI attribute callback inside MPI_Finalize),
 * then closes it again and crashes in the MPI-IO driver.  So the ID is left alone, and the
 * process is told not to finalize HDF5/MPI (cnf_data_hdf5_unusable): it reports its error,
 * removes its temporary files and exits. */
static int hdf5_unusable;
void h5u_abandon_file(hid_t file) {
  (void)file;
  hdf5_unusable = 1;
}
int cnf_data_hdf5_unusable(void) { return hdf5_unusable; }
