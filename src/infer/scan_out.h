/* Private to src/infer: the one writer of the scan.h5 layout (include/cnflow/infer.h), used by
 * the likelihood scan (scan_file.c) and the regression stage (regress.c).  The file is created
 * up front with every dataset allocated (no metadata changes later); blocks of rows are then
 * written collectively, each followed by its flag in /scan/block_done. */
#pragma once

#include "cnflow/core.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>

#define CNF_SCAN_NCOLS 7
/* /scan/<name>: columns 0..4 float64, 5..6 int32 */
extern const char *const cnf_scan_cols[CNF_SCAN_NCOLS];
hid_t cnf_scan_col_type(int k);

typedef struct cnf_scan_out {
  hid_t file, group, dset[CNF_SCAN_NCOLS], done, dxpl;
  int flush; /* flush the file after every block (a resumable scan keeps finished blocks) */
} cnf_scan_out;

/* The root attributes, written in this order: format, format_version, method, prior, e_min,
 * e_max, input, split, ensemble, members, n_grid, [cnflow_version], git_rev,
 * [resume_fingerprint], [part, parts, part_first, part_showers_total, part_block]. */
typedef struct cnf_scan_out_header {
  const char *method, *prior, *input, *split, *ensemble;
  double e_min, e_max; /* GeV; NaN when there is no search range */
  int members, n_grid;
  const char *cnflow_version;     /* NULL: not written */
  const char *resume_fingerprint; /* NULL: not written, and the file is not flushed per block */
  int parts, part, part_block;    /* parts > 0: one part of a job array */
  int64_t part_first, part_showers_total;
  /* the regression output is made byte-reproducible (fixed format bounds, no object times);
   * the scan keeps the library defaults its resumable partial files were written with */
  int reproducible;
} cnf_scan_out_header;

void cnf_scan_out_init(cnf_scan_out *o); /* every handle -1 */
/* Bytes a scan-layout file of N rows and n_blocks blocks takes, attr_bytes of string attributes
 * included, with a margin for HDF5's metadata (the free-space pre-checks use it). */
uint64_t cnf_scan_out_bytes(uint64_t N, uint64_t n_blocks, uint64_t attr_bytes);
/* COLLECTIVE.  Rank 0 checks that the file system of `out` (the user's name: the message names
 * it) has room for the file cnf_scan_out_create makes, before it exists; the status is shared.
 * The previous file of that name stays until the rename, so the whole new file must fit. */
int cnf_scan_out_check_space(MPI_Comm comm, const char *out, uint64_t N, uint64_t n_blocks,
                             const cnf_scan_out_header *h);
/* COLLECTIVE.  Create tmp with N rows and n_blocks block flags (all 0). */
int cnf_scan_out_create(MPI_Comm comm, const char *tmp, uint64_t N, uint64_t n_blocks,
                        const cnf_scan_out_header *h, cnf_scan_out *o);
/* COLLECTIVE: rows [first, first + n) of every column (n may be 0), then block b's flag (b < 0:
 * none). */
int cnf_scan_out_write(cnf_scan_out *o, uint64_t first, uint64_t n, int64_t b,
                       const void *const cols[CNF_SCAN_NCOLS]);
void cnf_scan_out_close(cnf_scan_out *o);
