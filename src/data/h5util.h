/* The HDF5 helpers of every module that writes or reads HDF5 (src/data, src/flow/flow_io.c,
 * src/infer): quiet error stacks turned into one-line messages, the attribute writers and
 * readers (one implementation for every output file), deterministic property lists, and the
 * rank-consistent status sync.  Not a public header: include it as "../data/h5util.h". */
#pragma once

#include "cnflow/core.h"

#include <hdf5.h>
#include <mpi.h>

/* HDF5 prints its error stack to stderr by default; every HDF5 failure in src/data becomes one
 * cnf_error line instead.  Bracket public entry points with quiet_begin/quiet_end. */
typedef struct h5u_quiet {
  H5E_auto2_t func;
  void *data;
} h5u_quiet;
void h5u_quiet_begin(h5u_quiet *q);
void h5u_quiet_end(const h5u_quiet *q);

/* cnf_error_set(code, "<fmt>: <innermost HDF5 error description>") and clear the stack. */
int h5u_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Share a status across comm: returns rc when no rank failed; otherwise every rank returns the
 * code of the lowest failing rank and carries its message.  COLLECTIVE. */
#define h5u_sync cnf_sync_status /* include/cnflow/data.h */

/* File access list: MPI-IO on comm, collective metadata reads and writes, fixed format bounds
 * (v1.8 objects) so the bytes never depend on the library default.  < 0 on failure. */
hid_t h5u_fapl(MPI_Comm comm);
/* Object creation list for groups (and the root group via the file creation list) without
 * access/modification times. */
hid_t h5u_gcpl_untimed(hid_t cls);

/* Attributes on object `obj` (COLLECTIVE in parallel files: every rank writes the same value). */
int h5u_attr_write_string(hid_t obj, const char *name, const char *value);
int h5u_attr_write_strings(hid_t obj, const char *name, int n, const char *const *values);
int h5u_attr_write_int64(hid_t obj, const char *name, int ndims, const hsize_t *dims,
                         const int64_t *values);
/* Read a scalar string attribute into buf (truncated to len); 0 found, 1 absent, < 0 error. */
/* Scalar float64 attribute. */
int h5u_attr_write_double(hid_t obj, const char *name, double value);
/* Scalar numeric attribute stored as file type ftype, converted from *value of memory type
 * mtype (the model file's typed attributes; ftype == mtype for native-typed outputs). */
int h5u_attr_write_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                          const void *value);
/* Scalar fixed-length ASCII string attribute (size strlen + 1, null-terminated): the layout of
 * the scan, regress and fit outputs' string attributes (h5u_attr_write_string writes a
 * variable-length UTF-8 string, the dataset and model files' layout). */
int h5u_attr_write_fixed_string(hid_t obj, const char *name, const char *value);
int h5u_attr_read_string(hid_t obj, const char *name, char *buf, size_t len);
/* Read a 1-D string attribute of exactly n entries into malloc'ed strings (caller frees each
 * and the array); 0 found, 1 absent or wrong length, < 0 error. */
int h5u_attr_read_strings(hid_t obj, const char *name, int n, char ***out);
/* Read an int64 attribute of exactly n values; 0 found, 1 absent or wrong size, < 0 error. */
/* Release a file ID whose H5Fclose failed, so that HDF5's shutdown does not close it again. */
void h5u_abandon_file(hid_t file);
int h5u_attr_read_int64(hid_t obj, const char *name, int n, int64_t *out);
/* Read a scalar numeric attribute converted to memory type mtype: 0 found, 1 absent, < 0 error
 * (CNF_ERR_FORMAT "attribute '<name>' must hold a single value, has <n>" -- H5Aread writes ALL
 * elements, so an array attribute is refused before it overruns *val -- or "... has the wrong
 * type").  The message names no file: the caller puts its path in front. */
int h5u_attr_read_scalar(hid_t obj, const char *name, hid_t mtype, void *val);
