/* Private interface of the MADE module (src/nn/made.c, the generic BLAS path, and
 * src/nn/made_simd.c, the AVX-512 float kernels): the object layout both files read, and the
 * entry points of the SIMD path.  Not installed; include/cnflow/nn.h is the public contract.
 */
#pragma once

#include "cnflow/nn.h"

/* The AVX-512 kernels exist in the float library when the compiler targets AVX-512
 * (-march=native on such a machine).  The double library (finite-difference tests) and other
 * targets have the generic path only.  Which path runs is chosen at run time among the
 * compiled ones (cnf_made_set_simd, CNFLOW_SIMD). */
#if !CNF_REAL_IS_DOUBLE && defined(__AVX512F__)
#define MADE_SIMD 1
#else
#define MADE_SIMD 0
#endif

/* Columns per panel of the SIMD kernels and rows per block of their weight-gradient kernel. */
#define MADE_PANEL 32
#define MADE_KW_R 12

/* Rows per tile of the forward and backward passes: one tile's activations of every layer stay
 * in L2 between the layers (large batches are otherwise memory-bound). */
#define MADE_ROW_TILE 256

typedef struct made_block {
  int r0, r1; /* rows [r0, r1) */
  int k;      /* masked input columns used: [0, k) (the prefix of row r1 - 1) */
} made_block;

typedef struct made_layer {
  int rows, ld;     /* W is (rows, ld); the masked columns come first */
  size_t off_w, off_b;
  int *len;         /* (rows) row r reads masked columns [0, len[r]) */
  made_block *blk;
  int nblk;
  /* AVX-512 path, per panel of 32 output columns: fk1[p] = input columns the panel's rows read
   * in the forward pass; bk0[p] = first row whose prefix reaches the panel's first column
   * (rows before it contribute nothing to the backward data product). */
  int *fk1, *bk0;
  size_t off_pack;  /* this layer's W^T panels in cnf_made.pack */
} made_layer;

struct cnf_made {
  int D, C, H, L, P;
  size_t n_params, off_wc;
  int *deg;          /* (H) sorted hidden degrees */
  int *peer;         /* (H) index of each sorted unit in the peer's unsorted order */
  int *hs;           /* (D + 1) hidden units of degree g are [hs[g], hs[g+1]) */
  made_layer *layer; /* (L + 1): hidden layers 0..L-1, then the output layer */
  int nmax;
  cnf_real *h;       /* (L, nmax, H) post-ReLU activations of the last forward */
  cnf_real *dh;      /* (2, MADE_ROW_TILE, H) backward scratch */
  int seq_nmax, seq_n;
  cnf_real *seq_h;   /* (L, seq_nmax, H) activations of the sequential pass */
  const cnf_real *seq_c;
  /* The condition weights transposed, (C, H) for W0's condition columns and (C, D*P) for Wc,
   * refreshed by every forward: the condition terms are then computed row by row inside the
   * bias passes instead of by thin GEMMs.  gct/gcto accumulate their gradients the same way. */
  cnf_real *wct, *wcto, *gct, *gcto;
  /* AVX-512 path: every layer's W^T (and Wc^T after the output layer's) packed in panels of 32
   * columns, refreshed by every forward; wcb (D*P, D + C) = [0 | Wc] for the condition gradient
   * of the output layer; tmp (MADE_ROW_TILE, D + C) and cw (MADE_KW_R, cw_ld) backward scratch. */
  cnf_real *pack, *wcb, *tmp, *cw;
  size_t off_pack_wc;
  int cw_ld;
  /* Packed-weight reuse (cnf_made_set_param_cache): with cache_params set, pack is rebuilt
   * only when pack_src is not the params passed in (NULL after cnf_made_params_changed); the
   * wct/wcto/wcb copies are cheap and are refreshed by every pass either way. */
  int cache_params;
  const cnf_real *pack_src;
  int simd_ready; /* the SIMD buffers above exist (compiled in and the CPU has AVX-512F) */
  int simd_last;  /* path of the last cnf_made_forward: its backward takes the same one */
};

#if MADE_SIMD
/* Panel tables and packed-weight buffers of the SIMD path (made_layer fk1/bk0/off_pack,
 * cnf_made pack/wcb/tmp/cw); called by cnf_made_create when the CPU can run the kernels. */
int made_simd_setup(cnf_made *m);
/* The SIMD versions of cnf_made_forward / cnf_made_backward (same contract; the cache of
 * hidden activations m->h has the same layout on both paths, m->nmax >= n reserved). */
void made_simd_forward(cnf_made *m, const float *params, int n, const float *x, const float *c,
                       float *out);
void made_simd_backward(cnf_made *m, const float *params, int n, const float *x, const float *c,
                        const float *dout, float *grads, float *dx, float *dc);
#endif
