/* cnflow sim: the physics generators (specification: shared/research/physics-spec.md).
 *
 * Every generator is a pure function of (options, seed, event index): row i of every output
 * dataset is computed from the counter-based stream (seed, stream_id = i) only, so the file is
 * byte-identical whatever the number of ranks.  Rejection sampling (selection cuts) loops over
 * attempts inside one event index using the `sub` counter of the stream.
 *
 * The generic writer (src/data, `cnflow generate <name>`) knows nothing about the physics: it
 * asks a generator for its option table and dataset schema, gives each rank a contiguous block
 * of event indices, calls `event` per index and writes the rows with collective hyperslab
 * writes.
 */
#pragma once

/* The generator interface (cnf_generator, cnf_option, schemas) belongs to the data layer that
 * drives it (include/cnflow/data.h): sim implements it, data never needs to know a generator. */
#include "cnflow/data.h"

extern const cnf_generator cnf_gen_hgg;          /* G1: H->gamma gamma truth + smearing  (hgg.c) */
extern const cnf_generator cnf_gen_calo_photon;  /* G2: photon images behind material (calo_photon.c) */
extern const cnf_generator cnf_gen_calo_pion;    /* G3: pion layer energies          (calo_pion.c) */

/* Look a generator up by name; NULL if unknown. */
const cnf_generator *cnf_generator_find(const char *name);
/* The i-th registered generator (0, 1, ...), NULL past the last: for listing the names. */
const cnf_generator *cnf_generator_at(int i);
