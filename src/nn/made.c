/* Conditional MADE with degree-sorted hidden units (see include/cnflow/nn.h).
 *
 * Every masked layer is prefix-masked: row r reads input columns [0, len[r]) with len
 * non-decreasing in r.  At creation the rows are cut into a few blocks (a small dynamic
 * programme over a GEMM cost model); each block is one GEMM over the columns its last row
 * needs, so the all-zero upper-right part of the weight matrix is skipped while the GEMMs stay
 * large enough to run near peak.  Entries inside a block but outside a row's prefix are masked
 * zeros: they add nothing in the forward pass, and their gradients are cleared after the
 * weight-gradient GEMM.  The float library built for AVX-512 replaces these BLAS calls by two
 * register-blocked kernels that skip the masked zeros per panel of 32 columns and fuse the
 * bias, ReLU and bias-gradient passes (about twice as fast on the reference architectures).
 */
#include "cnflow/nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if CNF_REAL_IS_DOUBLE
#define MADE_GEMM cblas_dgemm
#else
#define MADE_GEMM cblas_sgemm
#endif

/* The float library on an AVX-512 build runs the forward and backward passes on the
 * hand-written kernels below (section "AVX-512 kernels"); the double library (finite-difference
 * tests) and other targets use the BLAS block GEMMs. */
#if !CNF_REAL_IS_DOUBLE && defined(__AVX512F__)
#define MADE_SIMD 1
#include <immintrin.h>
#else
#define MADE_SIMD 0
#endif

/* Cost model of one block GEMM, in multiply-adds per batch row: (rows + R) * (cols + K).  The
 * pads stand for the lower efficiency of thin GEMMs and the per-call overhead (tuned on the
 * reference architectures: finer blocks save FLOPs but were not faster). */
#define MADE_BLOCK_ROW_PAD 16
#define MADE_BLOCK_COL_PAD 16

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
};

/* ---- sizes ----------------------------------------------------------------------------------- */
size_t cnf_made_count_params(int D, int C, int H, int L, int P) {
  size_t d = (size_t)D, c = (size_t)C, h = (size_t)H, p = (size_t)P;
  return h * (d + c) + h + (size_t)(L - 1) * (h * h + h) + d * p * h + d * p + d * p * c;
}

/* Number of hidden units with degree <= g (g >= 0) for the sorted peer sequence. */
static int made_units_upto(int D, int H, int g) {
  const int period = D > 1 ? D - 1 : 1, lo = D > 1 ? 1 : 0;
  int cnt = 0;
  for (int k = 0; k < H; k++)
    cnt += (k % period + lo) <= g;
  return cnt;
}

size_t cnf_made_count_params_effective(int D, int C, int H, int L, int P) {
  size_t w0 = 0, wh = 0, wo = 0;
  for (int g = 0; g < D; g++) {
    size_t units = (size_t)(made_units_upto(D, H, g) - (g > 0 ? made_units_upto(D, H, g - 1) : 0));
    size_t below = (size_t)made_units_upto(D, H, g); /* units of degree <= g */
    w0 += units * (size_t)g;     /* a degree-g unit reads x_1..x_g */
    wh += units * below;         /* and hidden units of degree <= g */
    wo += (size_t)P * below;     /* output dimension g (degree g+1) reads degree <= g */
  }
  size_t h = (size_t)H, dp = (size_t)D * P;
  return w0 + h * (size_t)C + h + (size_t)(L - 1) * (wh + h) + wo + dp + dp * (size_t)C;
}

size_t cnf_made_num_params(const cnf_made *m) { return m->n_params; }
size_t cnf_made_offset_weight(const cnf_made *m, int layer) {
  CNF_ASSERT(layer >= 0 && layer <= m->L);
  return m->layer[layer].off_w;
}
size_t cnf_made_offset_bias(const cnf_made *m, int layer) {
  CNF_ASSERT(layer >= 0 && layer <= m->L);
  return m->layer[layer].off_b;
}
size_t cnf_made_offset_wc(const cnf_made *m) { return m->off_wc; }
int cnf_made_hidden_degree(const cnf_made *m, int k) { return m->deg[k]; }
int cnf_made_hidden_peer_index(const cnf_made *m, int k) { return m->peer[k]; }

int cnf_made_connected(const cnf_made *m, int layer, int row, int col) {
  CNF_ASSERT(layer >= 0 && layer <= m->L);
  const made_layer *ly = &m->layer[layer];
  CNF_ASSERT(row >= 0 && row < ly->rows && col >= 0 && col < ly->ld);
  if (layer == 0 && col >= m->D)
    return 1; /* condition column */
  return col < ly->len[row];
}

/* ---- construction ---------------------------------------------------------------------------- */
/* Cut the rows of a prefix-masked layer into GEMM blocks minimising the cost model.  Rows with
 * equal len form groups; a block is a run of whole groups. */
static int made_layer_blocks(made_layer *ly) {
  const int R = ly->rows;
  int *gstart = cnf_malloc(sizeof(int) * (size_t)(R + 1));
  double *best = cnf_malloc(sizeof(double) * (size_t)(R + 1));
  int *from = cnf_malloc(sizeof(int) * (size_t)(R + 1));
  if (!gstart || !best || !from) {
    free(gstart);
    free(best);
    free(from);
    return CNF_ERR_NOMEM;
  }
  int G = 0;
  for (int r = 0; r < R; r++)
    if (r == 0 || ly->len[r] != ly->len[r - 1])
      gstart[G++] = r;
  gstart[G] = R;
  best[0] = 0;
  for (int i = 1; i <= G; i++) {
    best[i] = HUGE_VAL;
    const int k = ly->len[gstart[i] - 1];
    for (int j = 0; j < i; j++) {
      const int rows = gstart[i] - gstart[j];
      const double cost =
          k == 0 ? 0.0 : (double)(rows + MADE_BLOCK_ROW_PAD) * (double)(k + MADE_BLOCK_COL_PAD);
      if (best[j] + cost < best[i]) {
        best[i] = best[j] + cost;
        from[i] = j;
      }
    }
  }
  int nblk = 0;
  for (int i = G; i > 0; i = from[i])
    nblk++;
  ly->blk = cnf_malloc(sizeof(made_block) * (size_t)nblk);
  if (!ly->blk) {
    free(gstart);
    free(best);
    free(from);
    return CNF_ERR_NOMEM;
  }
  ly->nblk = nblk;
  for (int i = G, b = nblk - 1; i > 0; i = from[i], b--) {
    ly->blk[b].r0 = gstart[from[i]];
    ly->blk[b].r1 = gstart[i];
    ly->blk[b].k = ly->len[gstart[i] - 1];
  }
  free(gstart);
  free(best);
  free(from);
  return 0;
}

/* Panel tables and buffers of the AVX-512 path (a no-op without it). */
#define MADE_PANEL 32
#define MADE_KW_R 12
#if MADE_SIMD
static int made_npanel(int cols) { return (cols + MADE_PANEL - 1) / MADE_PANEL; }
#endif
static int made_simd_setup(cnf_made *m) {
#if MADE_SIMD
  const int D = m->D, C = m->C, H = m->H, L = m->L, DP = m->D * m->P;
  size_t pack = 0;
  int maxcols = D + C > H ? D + C : H;
  for (int l = 0; l <= L; l++) {
    made_layer *ly = &m->layer[l];
    const int npr = made_npanel(ly->rows), cols = l == 0 ? D : ly->ld, npc = made_npanel(cols);
    ly->fk1 = cnf_malloc(sizeof(int) * (size_t)npr);
    ly->bk0 = cnf_malloc(sizeof(int) * (size_t)(npc > 0 ? npc : 1));
    if (!ly->fk1 || !ly->bk0)
      return CNF_ERR_NOMEM;
    for (int p = 0; p < npr; p++) {
      const int last = (p + 1) * MADE_PANEL < ly->rows ? (p + 1) * MADE_PANEL - 1 : ly->rows - 1;
      ly->fk1[p] = ly->len[last];
    }
    for (int p = 0; p < npc; p++) {
      int r = 0;
      while (r < ly->rows && ly->len[r] <= p * MADE_PANEL)
        r++;
      ly->bk0[p] = r;
    }
    ly->off_pack = pack;
    /* layer 0: x part (K = D) then c part (K = C); others K = H */
    pack += (size_t)npr * MADE_PANEL * (size_t)(l == 0 ? D + C : H);
  }
  m->off_pack_wc = pack;
  pack += (size_t)made_npanel(DP) * MADE_PANEL * (size_t)C;
  m->cw_ld = maxcols + MADE_PANEL;
  m->pack = cnf_aligned_alloc(sizeof(cnf_real) * (pack + 1));
  m->wcb = cnf_aligned_alloc(sizeof(cnf_real) * ((size_t)DP * (D + C) + 1));
  m->tmp = cnf_aligned_alloc(sizeof(cnf_real) * (size_t)MADE_ROW_TILE * (D + C));
  m->cw = cnf_aligned_alloc(sizeof(cnf_real) * (size_t)MADE_KW_R * m->cw_ld);
  if (!m->pack || !m->wcb || !m->tmp || !m->cw)
    return CNF_ERR_NOMEM;
#else
  (void)m;
#endif
  return 0;
}

int cnf_made_create(int D, int C, int H, int L, int P, cnf_made **out) {
  *out = NULL;
  if (D < 1 || C < 0 || H < 1 || L < 1 || P < 1)
    return cnf_error_set(CNF_ERR_ARG,
                         "MADE: need D >= 1, C >= 0, H >= 1, L >= 1, P >= 1 (got D=%d C=%d "
                         "H=%d L=%d P=%d)",
                         D, C, H, L, P);
  cnf_made *m = cnf_calloc(1, sizeof *m);
  if (!m)
    return CNF_ERR_NOMEM;
  m->D = D;
  m->C = C;
  m->H = H;
  m->L = L;
  m->P = P;
  m->deg = cnf_malloc(sizeof(int) * (size_t)H);
  m->peer = cnf_malloc(sizeof(int) * (size_t)H);
  m->hs = cnf_malloc(sizeof(int) * (size_t)(D + 1));
  const size_t nct = (size_t)C * H + (size_t)C * D * P;
  m->wct = cnf_calloc(2 * nct + 1, sizeof(cnf_real));
  m->layer = cnf_calloc((size_t)L + 1, sizeof(made_layer));
  int rc = CNF_ERR_NOMEM;
  if (!m->deg || !m->peer || !m->hs || !m->layer || !m->wct)
    goto fail;
  /* stable counting sort of the peer degrees k mod period + lo */
  const int period = D > 1 ? D - 1 : 1, lo = D > 1 ? 1 : 0;
  for (int g = 0, k = 0; g < D; g++) {
    m->hs[g] = k;
    for (int j = 0; j < H; j++)
      if (j % period + lo == g) {
        m->deg[k] = g;
        m->peer[k++] = j;
      }
  }
  m->hs[D] = H;
  size_t off = 0;
  for (int l = 0; l <= L; l++) {
    made_layer *ly = &m->layer[l];
    ly->rows = l < L ? H : D * P;
    ly->ld = l == 0 ? D + C : H;
    ly->off_w = off;
    off += (size_t)ly->rows * ly->ld;
    ly->off_b = off;
    off += (size_t)ly->rows;
    ly->len = cnf_malloc(sizeof(int) * (size_t)ly->rows);
    if (!ly->len)
      goto fail;
    for (int r = 0; r < ly->rows; r++) {
      if (l == 0)
        ly->len[r] = m->deg[r];                /* x_1..x_deg */
      else if (l < L)
        ly->len[r] = m->hs[m->deg[r] + 1]; /* degree <= deg (deg <= D-1) */
      else
        ly->len[r] = m->hs[r / P + 1];         /* dimension d reads degree <= d */
    }
    CNF_CALL_GOTO(rc, fail, made_layer_blocks(ly));
  }
  m->off_wc = off;
  off += (size_t)D * P * C;
  m->n_params = off;
  m->wcto = m->wct + (size_t)C * H;
  m->gct = m->wcto + (size_t)C * D * P;
  m->gcto = m->gct + (size_t)C * H;
  CNF_CALL_GOTO(rc, fail, made_simd_setup(m));
  CNF_ASSERT(m->n_params == cnf_made_count_params(D, C, H, L, P));
  *out = m;
  return 0;
fail:
  cnf_made_free(&m);
  return rc;
}

void cnf_made_free(cnf_made **mp) {
  cnf_made *m = *mp;
  if (!m)
    return;
  if (m->layer)
    for (int l = 0; l <= m->L; l++) {
      free(m->layer[l].len);
      free(m->layer[l].blk);
      free(m->layer[l].fk1);
      free(m->layer[l].bk0);
    }
  free(m->pack);
  free(m->wcb);
  free(m->tmp);
  free(m->cw);
  free(m->layer);
  free(m->deg);
  free(m->peer);
  free(m->hs);
  free(m->h);
  free(m->dh);
  free(m->seq_h);
  free(m->wct);
  free(m);
  *mp = NULL;
}

/* ---- parameters ------------------------------------------------------------------------------ */
void cnf_made_apply_mask(const cnf_made *m, cnf_real *params) {
  for (int l = 0; l <= m->L; l++) {
    const made_layer *ly = &m->layer[l];
    const int masked_cols = l == 0 ? m->D : ly->ld;
    for (int r = 0; r < ly->rows; r++) {
      cnf_real *w = params + ly->off_w + (size_t)r * ly->ld;
      for (int j = ly->len[r]; j < masked_cols; j++)
        w[j] = 0;
    }
  }
}

static void made_fill_uniform(cnf_real *a, size_t count, double bound, cnf_rng *rng) {
  for (size_t i = 0; i < count; i++)
    a[i] = (cnf_real)(bound * (2.0 * cnf_rng_uniform(rng) - 1.0));
}

void cnf_made_init_params(const cnf_made *m, cnf_real *params, cnf_rng *rng, int zero_output) {
  for (int l = 0; l <= m->L; l++) {
    const made_layer *ly = &m->layer[l];
    const size_t nw = (size_t)ly->rows * ly->ld;
    if (l == m->L && zero_output) {
      memset(params + ly->off_w, 0, sizeof(cnf_real) * (nw + (size_t)ly->rows));
      continue;
    }
    const double bound = 1.0 / sqrt((double)ly->ld); /* fan_in: D + C for layer 0, else H */
    made_fill_uniform(params + ly->off_w, nw, bound, rng);
    made_fill_uniform(params + ly->off_b, (size_t)ly->rows, bound, rng);
  }
  const size_t nwc = (size_t)m->D * m->P * m->C;
  if (zero_output)
    memset(params + m->off_wc, 0, sizeof(cnf_real) * nwc);
  else
    made_fill_uniform(params + m->off_wc, nwc, 1.0 / sqrt((double)(m->H + m->C)), rng);
  cnf_made_apply_mask(m, params);
}

/* ---- buffers --------------------------------------------------------------------------------- */
int cnf_made_reserve(cnf_made *m, int nmax) {
  if (nmax < 0)
    return cnf_error_set(CNF_ERR_ARG, "MADE: negative batch size %d", nmax);
  if (nmax <= m->nmax)
    return 0;
  free(m->h);
  free(m->dh);
  m->nmax = 0;
  m->h = cnf_aligned_alloc(sizeof(cnf_real) * (size_t)m->L * nmax * m->H);
  m->dh = cnf_aligned_alloc(sizeof(cnf_real) * 2 * (size_t)MADE_ROW_TILE * m->H);
  if (!m->h || !m->dh) {
    free(m->h);
    free(m->dh);
    m->h = m->dh = NULL;
    return CNF_ERR_NOMEM;
  }
  m->nmax = nmax;
  return 0;
}

/* ---- layer kernels --------------------------------------------------------------------------- */
/* y (n, rows; ldy) += in (n, :; ldin) W^T over the prefix blocks (W = params + off_w).
 * Always beta = 1: OpenBLAS implements beta = 0 as an extra pass over the output. */
static void made_layer_forward(const made_layer *ly, const cnf_real *W, int n,
                               const cnf_real *in, int ldin, cnf_real *y, int ldy) {
  for (int b = 0; b < ly->nblk; b++) {
    const made_block *bk = &ly->blk[b];
    if (bk->k == 0)
      continue;
    MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, bk->r1 - bk->r0, bk->k, 1, in, ldin,
              W + (size_t)bk->r0 * ly->ld, ly->ld, 1, y + bk->r0, ldy);
  }
}

/* din (n, cols) = g (n, rows; ldg) W over the prefix blocks, OVERWRITTEN (din contiguous). */
static void made_layer_backward_input(const made_layer *ly, const cnf_real *W, int n,
                                      const cnf_real *g, int ldg, int cols, cnf_real *din) {
  memset(din, 0, sizeof(cnf_real) * (size_t)n * cols);
  for (int b = 0; b < ly->nblk; b++) {
    const made_block *bk = &ly->blk[b];
    if (bk->k == 0)
      continue;
    MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, bk->k, bk->r1 - bk->r0, 1,
              g + bk->r0, ldg, W + (size_t)bk->r0 * ly->ld, ly->ld, 1, din, cols);
  }
}

/* dW += g^T in over the prefix blocks; then the masked entries inside blocks are re-zeroed. */
static void made_layer_backward_weight(const made_layer *ly, int n, const cnf_real *g, int ldg,
                                       const cnf_real *in, int ldin, cnf_real *dW) {
  for (int b = 0; b < ly->nblk; b++) {
    const made_block *bk = &ly->blk[b];
    if (bk->k == 0)
      continue;
    MADE_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, bk->r1 - bk->r0, bk->k, n, 1, g + bk->r0,
              ldg, in, ldin, 1, dW + (size_t)bk->r0 * ly->ld, ly->ld);
    for (int r = bk->r0; r < bk->r1; r++)
      for (int j = ly->len[r]; j < bk->k; j++)
        dW[(size_t)r * ly->ld + j] = 0;
  }
}

/* y (n, cols; ldy) = bias + c (n, C) wt (C, cols; ldw): the condition part of a layer is
 * computed in the pass that writes the bias (C is small; C = 0: the bias alone). */
static void made_bias_cond(int n, int cols, const cnf_real *bias, int C, const cnf_real *c,
                           const cnf_real *wt, int ldw, cnf_real *y, int ldy) {
  for (int i = 0; i < n; i++) {
    cnf_real *row = y + (size_t)i * ldy;
    memcpy(row, bias, sizeof(cnf_real) * (size_t)cols);
    for (int k = 0; k < C; k++) {
      const cnf_real a = c[(size_t)i * C + k], *w = wt + (size_t)k * ldw;
      for (int j = 0; j < cols; j++)
        row[j] += a * w[j];
    }
  }
}

/* wct (C, H) and wcto (C, D*P) from the parameters. */
static void made_pack_cond(cnf_made *m, const cnf_real *params) {
  const int C = m->C, H = m->H, DP = m->D * m->P, ld0 = m->layer[0].ld;
  const cnf_real *w0 = params + m->layer[0].off_w + m->D, *wc = params + m->off_wc;
  for (int k = 0; k < C; k++) {
    for (int j = 0; j < H; j++)
      m->wct[(size_t)k * H + j] = w0[(size_t)j * ld0 + k];
    for (int j = 0; j < DP; j++)
      m->wcto[(size_t)k * DP + j] = wc[(size_t)j * C + k];
  }
}

static void made_relu(int n, int cols, cnf_real *y, int ldy) {
  for (int i = 0; i < n; i++) {
    cnf_real *row = y + (size_t)i * ldy;
    for (int j = 0; j < cols; j++)
      row[j] = row[j] > 0 ? row[j] : 0;
  }
}

/* One pass over a layer's output gradient g (n, cols):
 *   h != NULL: g_out = g * relu'(pre) (h = relu(pre), the cached activation; g_out may be g),
 *   db (cols) += column sums, and if C > 0: gt (C, cols) += c^T g (the gradient of the layer's
 *   transposed condition weights). */
static void made_bias_cond_backward(int n, int cols, const cnf_real *h, const cnf_real *g,
                                    cnf_real *g_out, int C, const cnf_real *c, cnf_real *db,
                                    cnf_real *gt) {
  for (int i = 0; i < n; i++) {
    const cnf_real *row = g + (size_t)i * cols;
    if (h) {
      const cnf_real *hrow = h + (size_t)i * cols;
      cnf_real *orow = g_out + (size_t)i * cols;
      for (int j = 0; j < cols; j++)
        orow[j] = hrow[j] > 0 ? row[j] : 0;
      row = orow;
    }
    for (int j = 0; j < cols; j++)
      db[j] += row[j];
    for (int k = 0; k < C; k++) {
      const cnf_real a = c[(size_t)i * C + k];
      cnf_real *gk = gt + (size_t)k * cols;
      for (int j = 0; j < cols; j++)
        gk[j] += a * row[j];
    }
  }
}

/* ---- AVX-512 kernels (float library) --------------------------------------------------------- */
#if MADE_SIMD
/* Two register-blocked kernels replace the BLAS calls: thin, masked, per-tile GEMMs spent much
 * of their time packing and in call overhead, and the bias, ReLU, ReLU-derivative and bias
 * gradient passes are fused into the kernels' epilogues here.
 *
 * kf ("rows x panel"): y[i, j] = epi(bias[j] + sum_s sum_{k in [k0_s, k1_s)} a_s[i, k] b_s[k, j])
 *   for one panel of <= 32 output columns; the k ranges skip the masked zeros.  b_s is a
 *   panel of a packed W^T (ldb 32) or a column block of W itself (backward data product). */
typedef struct made_src {
  const float *a, *b;
  int lda, ldb, k0, k1;
} made_src;

enum { MADE_EPI_STORE, MADE_EPI_RELU, MADE_EPI_DRELU };
#define MADE_KF_MR 8
#define MADE_KW_AHEAD 8

static inline __attribute__((always_inline)) void
made_kf_rows(const int mr, const int nv, __mmask16 m0, __mmask16 m1, const made_src *src, int ns,
             int i0, const float *bias, int epi, float *y, int ldy, const float *h, __m512 *ds) {
  __m512 acc0[MADE_KF_MR], acc1[MADE_KF_MR];
  const __m512 zero = _mm512_setzero_ps();
  const __m512 bi0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : zero;
  const __m512 bi1 = bias && nv == 2 ? _mm512_maskz_loadu_ps(m1, bias + 16) : zero;
#pragma GCC unroll 8
  for (int r = 0; r < mr; r++) {
    acc0[r] = bi0;
    acc1[r] = bi1;
  }
  for (int s = 0; s < ns; s++) {
    const float *a = src[s].a + (size_t)i0 * src[s].lda, *b = src[s].b;
    const int lda = src[s].lda, ldb = src[s].ldb;
    for (int k = src[s].k0; k < src[s].k1; k++) {
      const __m512 v0 = _mm512_maskz_loadu_ps(m0, b + (size_t)k * ldb);
      const __m512 v1 = nv == 2 ? _mm512_maskz_loadu_ps(m1, b + (size_t)k * ldb + 16) : zero;
#pragma GCC unroll 8
      for (int r = 0; r < mr; r++) {
        const __m512 av = _mm512_set1_ps(a[(size_t)r * lda + k]);
        acc0[r] = _mm512_fmadd_ps(av, v0, acc0[r]);
        if (nv == 2)
          acc1[r] = _mm512_fmadd_ps(av, v1, acc1[r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < mr; r++) {
    float *yr = y + (size_t)(i0 + r) * ldy;
    __m512 o0 = acc0[r], o1 = acc1[r];
    if (epi == MADE_EPI_RELU) {
      o0 = _mm512_max_ps(o0, zero);
      o1 = _mm512_max_ps(o1, zero);
    } else if (epi == MADE_EPI_DRELU) {
      /* h = relu(pre) > 0 exactly where relu'(pre) = 1 */
      const float *hr = h + (size_t)(i0 + r) * ldy;
      o0 = _mm512_maskz_mov_ps(
          _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m0, hr), zero, _CMP_GT_OQ), o0);
      ds[0] = _mm512_add_ps(ds[0], o0);
      if (nv == 2) {
        o1 = _mm512_maskz_mov_ps(
            _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m1, hr + 16), zero, _CMP_GT_OQ), o1);
        ds[1] = _mm512_add_ps(ds[1], o1);
      }
    }
    _mm512_mask_storeu_ps(yr, m0, o0);
    if (nv == 2)
      _mm512_mask_storeu_ps(yr + 16, m1, o1);
  }
}

static __mmask16 made_lane_mask(int w) { return w <= 0 ? (__mmask16)0 : w >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << w) - 1); }

/* One panel of w <= 32 columns over nt rows (y, bias, h at the panel's first column); DRELU adds
 * the column sums of the result into dsum (the bias gradient of the layer below). */
static void made_kf_panel(int nt, int w, const made_src *src, int ns, const float *bias, int epi,
                          float *y, int ldy, const float *h, float *dsum) {
  const __mmask16 m0 = made_lane_mask(w), m1 = made_lane_mask(w - 16);
  __m512 ds[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  int i0 = 0;
  if (w > 16) {
    for (; i0 + MADE_KF_MR <= nt; i0 += MADE_KF_MR)
      made_kf_rows(MADE_KF_MR, 2, m0, m1, src, ns, i0, bias, epi, y, ldy, h, ds);
    for (; i0 < nt; i0++)
      made_kf_rows(1, 2, m0, m1, src, ns, i0, bias, epi, y, ldy, h, ds);
  } else {
    for (; i0 + MADE_KF_MR <= nt; i0 += MADE_KF_MR)
      made_kf_rows(MADE_KF_MR, 1, m0, 0, src, ns, i0, bias, epi, y, ldy, h, ds);
    for (; i0 < nt; i0++)
      made_kf_rows(1, 1, m0, 0, src, ns, i0, bias, epi, y, ldy, h, ds);
  }
  if (dsum) {
    _mm512_mask_storeu_ps(dsum, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, dsum), ds[0]));
    if (w > 16)
      _mm512_mask_storeu_ps(dsum + 16, m1,
                            _mm512_add_ps(_mm512_maskz_loadu_ps(m1, dsum + 16), ds[1]));
  }
}

/* kw ("outer products"): c[r, j] = sum_{i < n} a[i, r] b[i, j] for r < R <= MADE_KW_R,
 * j < w <= 32: the weight gradients, accumulated over the rows of a tile in registers. */
static inline __attribute__((always_inline)) void
made_kw_rows(const int R, const int nv, __mmask16 m0, __mmask16 m1, int n, const float *a,
             int lda, const float *b, int ldb, float *c, int ldc) {
  __m512 acc0[MADE_KW_R], acc1[MADE_KW_R];
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 12
  for (int r = 0; r < R; r++)
    acc0[r] = acc1[r] = zero;
  for (int i = 0; i < n; i++) {
    const float *ar = a + (size_t)i * lda, *br = b + (size_t)i * ldb;
    /* rows are far apart (the row stride of a tile): fetch a few iterations ahead */
    _mm_prefetch((const char *)(br + (size_t)MADE_KW_AHEAD * ldb), _MM_HINT_T0);
    if (nv == 2)
      _mm_prefetch((const char *)(br + (size_t)MADE_KW_AHEAD * ldb + 16), _MM_HINT_T0);
    _mm_prefetch((const char *)(ar + (size_t)MADE_KW_AHEAD * lda), _MM_HINT_T0);
    const __m512 v0 = _mm512_maskz_loadu_ps(m0, br);
    const __m512 v1 = nv == 2 ? _mm512_maskz_loadu_ps(m1, br + 16) : zero;
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
      const __m512 av = _mm512_set1_ps(ar[r]);
      acc0[r] = _mm512_fmadd_ps(av, v0, acc0[r]);
      if (nv == 2)
        acc1[r] = _mm512_fmadd_ps(av, v1, acc1[r]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; r++) {
    _mm512_mask_storeu_ps(c + (size_t)r * ldc, m0, acc0[r]);
    if (nv == 2)
      _mm512_mask_storeu_ps(c + (size_t)r * ldc + 16, m1, acc1[r]);
  }
}

#define MADE_KW_CASE(R)                                                                    \
  case R:                                                                                  \
    if (w > 16)                                                                            \
      made_kw_rows(R, 2, m0, m1, n, a, lda, b + j0, ldb, c + j0, ldc);                     \
    else                                                                                   \
      made_kw_rows(R, 1, m0, 0, n, a, lda, b + j0, ldb, c + j0, ldc);                      \
    break;

/* c (R, N; ldc) = a^T b over n rows: a (n, R; lda), b (n, N; ldb), R <= MADE_KW_R. */
static void made_kw(int R, int N, int n, const float *a, int lda, const float *b, int ldb,
                    float *c, int ldc) {
  for (int j0 = 0; j0 < N; j0 += MADE_PANEL) {
    const int w = N - j0 < MADE_PANEL ? N - j0 : MADE_PANEL;
    const __mmask16 m0 = made_lane_mask(w), m1 = made_lane_mask(w - 16);
    switch (R) {
      MADE_KW_CASE(1) MADE_KW_CASE(2) MADE_KW_CASE(3) MADE_KW_CASE(4) MADE_KW_CASE(5)
      MADE_KW_CASE(6) MADE_KW_CASE(7) MADE_KW_CASE(8) MADE_KW_CASE(9) MADE_KW_CASE(10)
      MADE_KW_CASE(11) MADE_KW_CASE(12)
    default: CNF_ASSERT(0 && "made_kw: R out of range");
    }
  }
}

/* dst (32-column panels over the rows of W, each (K, 32)) = W[:, col0 .. col0+K)^T.  W is
 * (rows, ldw).  The padding columns of the last panel are never written: they stay the zeros of
 * the allocation. */
static void made_pack_t(const float *W, int ldw, int rows, int col0, int K, float *dst) {
  for (int j = 0; j < rows; j++) {
    const float *w = W + (size_t)j * ldw + col0;
    float *d = dst + (size_t)(j / MADE_PANEL) * K * MADE_PANEL + j % MADE_PANEL;
    for (int k = 0; k < K; k++)
      d[(size_t)k * MADE_PANEL] = w[k];
  }
}

static void made_simd_pack(cnf_made *m, const float *params) {
  const int D = m->D, C = m->C, H = m->H, L = m->L, DP = m->D * m->P;
  for (int l = 0; l <= L; l++) {
    const made_layer *ly = &m->layer[l];
    float *dst = m->pack + ly->off_pack;
    if (l == 0) {
      made_pack_t(params + ly->off_w, ly->ld, H, 0, D, dst);
      made_pack_t(params + ly->off_w, ly->ld, H, D, C, dst + (size_t)made_npanel(H) * MADE_PANEL * D);
    } else {
      made_pack_t(params + ly->off_w, ly->ld, ly->rows, 0, H, dst);
    }
  }
  made_pack_t(params + m->off_wc, C, DP, 0, C, m->pack + m->off_pack_wc);
}

/* y (nt, rows of layer l; ldy) = act(in W^T + [c Wc^T] + b): layer 0 reads x and c, layers
 * 1..L-1 the layer below, the output layer (l = L) the last hidden layer and c. */
static void made_simd_layer_forward(const cnf_made *m, const float *params, int l, int nt,
                                    const float *in, const float *c, float *y, int ldy) {
  const made_layer *ly = &m->layer[l];
  const int D = m->D, C = m->C, H = m->H, L = m->L;
  const int K = l == 0 ? D : H, rows = ly->rows, npr = made_npanel(rows);
  const float *pk = m->pack + ly->off_pack;
  const float *pc = l == 0 ? pk + (size_t)npr * MADE_PANEL * D
                           : (l == L ? m->pack + m->off_pack_wc : NULL);
  for (int p = 0; p < npr; p++) {
    const int j0 = p * MADE_PANEL, w = rows - j0 < MADE_PANEL ? rows - j0 : MADE_PANEL;
    made_src src[2];
    int ns = 0;
    if (ly->fk1[p] > 0)
      src[ns++] = (made_src){in, pk + (size_t)p * K * MADE_PANEL, K, MADE_PANEL, 0, ly->fk1[p]};
    if (pc && C > 0)
      src[ns++] = (made_src){c, pc + (size_t)p * C * MADE_PANEL, C, MADE_PANEL, 0, C};
    made_kf_panel(nt, w, src, ns, params + ly->off_b + j0, l < L ? MADE_EPI_RELU : MADE_EPI_STORE,
                  y + j0, ldy, NULL, NULL);
  }
}

/* g_in (nt, H) = (g (nt, rows of layer l) W_l) * relu'(h_in), h_in (nt, H) the input of layer
 * l >= 1 (a hidden activation); db_in (H) += column sums of g_in. */
static void made_simd_backward_data(const cnf_made *m, const float *params, int l, int nt,
                                    const float *g, const float *h_in, float *g_in,
                                    float *db_in) {
  const made_layer *ly = &m->layer[l];
  const int H = m->H;
  const float *W = params + ly->off_w;
  for (int p = 0; p < made_npanel(H); p++) {
    const int j0 = p * MADE_PANEL, w = H - j0 < MADE_PANEL ? H - j0 : MADE_PANEL;
    made_src src = {g, W + j0, ly->rows, ly->ld, ly->bk0[p], ly->rows};
    made_kf_panel(nt, w, &src, 1, NULL, MADE_EPI_DRELU, g_in + j0, H, h_in + j0, db_in + j0);
  }
}

/* dW (rows, ld) += g^T in over the prefix of every row (masked entries untouched):
 * g (nt, rows; ldg), in (nt, :; ldin), in row blocks of MADE_KW_R. */
static void made_simd_backward_weight(cnf_made *m, const made_layer *ly, int nt, const float *g,
                                      int ldg, const float *in, int ldin, float *dW) {
  for (int r0 = 0; r0 < ly->rows; r0 += MADE_KW_R) {
    const int R = ly->rows - r0 < MADE_KW_R ? ly->rows - r0 : MADE_KW_R;
    const int N = ly->len[r0 + R - 1];
    if (N == 0)
      continue;
    made_kw(R, N, nt, g + r0, ldg, in, ldin, m->cw, m->cw_ld);
    for (int r = 0; r < R; r++) {
      float *dr = dW + (size_t)(r0 + r) * ly->ld;
      const float *cr = m->cw + (size_t)r * m->cw_ld;
      for (int j = 0; j < ly->len[r0 + r]; j++)
        dr[j] += cr[j];
    }
  }
}

/* dW[:, col0 + k] += (a^T g)[k, :] for k < K (a (nt, K; lda)), only where col0 + k < lim[row]
 * (lim NULL: every row): the layer-0 gradients computed transposed, K rows at a time. */
static void made_simd_backward_weight_t(cnf_made *m, int nt, const float *a, int lda, int K,
                                        const float *g, int H, const int *lim, int col0,
                                        float *dW, int ldw) {
  for (int k0 = 0; k0 < K; k0 += MADE_KW_R) {
    const int R = K - k0 < MADE_KW_R ? K - k0 : MADE_KW_R;
    made_kw(R, H, nt, a + k0, lda, g, H, m->cw, m->cw_ld);
    for (int k = 0; k < R; k++) {
      const float *cr = m->cw + (size_t)k * m->cw_ld;
      const int col = col0 + k0 + k;
      for (int r = 0; r < H; r++)
        if (!lim || col < lim[r])
          dW[(size_t)r * ldw + col] += cr[r];
    }
  }
}

static void made_simd_forward_tile(cnf_made *m, const float *params, int i0, int nt,
                                   const float *x, const float *c, float *out) {
  const int H = m->H, L = m->L;
  const size_t stride = (size_t)m->nmax * H;
  for (int l = 0; l < L; l++) {
    float *h = m->h + (size_t)l * stride + (size_t)i0 * H;
    made_simd_layer_forward(m, params, l, nt, l == 0 ? x : h - stride, c, h, H);
  }
  made_simd_layer_forward(m, params, L, nt, m->h + (size_t)(L - 1) * stride + (size_t)i0 * H, c,
                          out, m->D * m->P);
}

static void made_simd_backward_tile(cnf_made *m, const float *params, int i0, int nt,
                                    const float *x, const float *c, const float *dout,
                                    float *grads, float *dx, float *dc) {
  const int D = m->D, C = m->C, H = m->H, L = m->L, DP = m->D * m->P, DC = D + C;
  const size_t stride = (size_t)m->nmax * H, rows = (size_t)i0 * H;
  /* output layer */
  const made_layer *lo = &m->layer[L];
  const float *hl = m->h + (size_t)(L - 1) * stride + rows;
  made_simd_backward_weight(m, lo, nt, dout, DP, hl, H, grads + lo->off_w);
  for (int r0 = 0; C > 0 && r0 < DP; r0 += MADE_KW_R) {
    const int R = DP - r0 < MADE_KW_R ? DP - r0 : MADE_KW_R;
    made_kw(R, C, nt, dout + r0, DP, c, C, m->cw, m->cw_ld);
    for (int r = 0; r < R; r++)
      for (int k = 0; k < C; k++)
        grads[m->off_wc + (size_t)(r0 + r) * C + k] += m->cw[(size_t)r * m->cw_ld + k];
  }
  float *db = grads + lo->off_b;
  for (int i = 0; i < nt; i++)
    for (int j = 0; j < DP; j++)
      db[j] += dout[(size_t)i * DP + j];
  float *g = m->dh, *g_next = m->dh + (size_t)MADE_ROW_TILE * H;
  made_simd_backward_data(m, params, L, nt, dout, hl, g, grads + m->layer[L - 1].off_b);
  /* hidden layers L-1 .. 1 */
  for (int l = L - 1; l >= 1; l--) {
    const made_layer *ly = &m->layer[l];
    const float *hin = m->h + (size_t)(l - 1) * stride + rows;
    made_simd_backward_weight(m, ly, nt, g, H, hin, H, grads + ly->off_w);
    made_simd_backward_data(m, params, l, nt, g, hin, g_next, grads + m->layer[l - 1].off_b);
    float *t = g;
    g = g_next;
    g_next = t;
  }
  /* layer 0: W0 = [Wx | Wc0] */
  const made_layer *l0 = &m->layer[0];
  made_simd_backward_weight_t(m, nt, x, D, D, g, H, l0->len, 0, grads + l0->off_w, DC);
  if (C > 0)
    made_simd_backward_weight_t(m, nt, c, C, C, g, H, NULL, D, grads + l0->off_w, DC);
  if (!dx && !(dc && C > 0))
    return;
  /* [dx | dc] (nt, D + C) = g W0 + dout [0 | Wc] */
  for (int p = 0; p < made_npanel(DC); p++) {
    const int j0 = p * MADE_PANEL, w = DC - j0 < MADE_PANEL ? DC - j0 : MADE_PANEL;
    made_src src[2] = {{g, params + l0->off_w + j0, H, DC, 0, H},
                       {dout, m->wcb + j0, DP, DC, 0, DP}};
    made_kf_panel(nt, w, src, dc && C > 0 ? 2 : 1, NULL, MADE_EPI_STORE, m->tmp + j0, DC, NULL, NULL);
  }
  for (int i = 0; i < nt; i++) {
    const float *t = m->tmp + (size_t)i * DC;
    if (dx)
      for (int d = 0; d < D; d++)
        dx[(size_t)i * D + d] = t[d];
    if (dc)
      for (int k = 0; k < C; k++)
        dc[(size_t)i * C + k] += t[D + k];
  }
}

/* wcb (D*P, D + C) = [0 | Wc] */
static void made_simd_pack_wcb(cnf_made *m, const float *params) {
  const int D = m->D, C = m->C, DP = m->D * m->P;
  for (int r = 0; r < DP; r++) {
    float *row = m->wcb + (size_t)r * (D + C);
    memset(row, 0, sizeof(float) * (size_t)D);
    memcpy(row + D, params + m->off_wc + (size_t)r * C, sizeof(float) * (size_t)C);
  }
}
#endif

/* ---- forward / backward ---------------------------------------------------------------------- */
/* Forward pass of nt rows starting at row i0 of the batch (x, c, out point at row i0). */
static void made_forward_tile(cnf_made *m, const cnf_real *params, int i0, int nt,
                              const cnf_real *x, const cnf_real *c, cnf_real *out) {
  const int D = m->D, C = m->C, H = m->H, L = m->L, DP = m->D * m->P;
  const size_t stride = (size_t)m->nmax * H;
  for (int l = 0; l < L; l++) {
    const made_layer *ly = &m->layer[l];
    const cnf_real *W = params + ly->off_w;
    cnf_real *h = m->h + (size_t)l * stride + (size_t)i0 * H;
    if (l == 0) {
      made_bias_cond(nt, H, params + ly->off_b, C, c, m->wct, H, h, H);
      made_layer_forward(ly, W, nt, x, D, h, H);
    } else {
      made_bias_cond(nt, H, params + ly->off_b, 0, NULL, NULL, 0, h, H);
      made_layer_forward(ly, W, nt, h - stride, H, h, H);
    }
    made_relu(nt, H, h, H);
  }
  const made_layer *lo = &m->layer[L];
  made_bias_cond(nt, DP, params + lo->off_b, C, c, m->wcto, DP, out, DP);
  made_layer_forward(lo, params + lo->off_w, nt, m->h + (size_t)(L - 1) * stride + (size_t)i0 * H,
                     H, out, DP);
}

int cnf_made_forward(cnf_made *m, const cnf_real *params, int n, const cnf_real *x,
                     const cnf_real *c, cnf_real *out) {
  CNF_CALL(cnf_made_reserve(m, n));
#if MADE_SIMD
  made_simd_pack(m, params);
  for (int i0 = 0; i0 < n; i0 += MADE_ROW_TILE) {
    const int nt = n - i0 < MADE_ROW_TILE ? n - i0 : MADE_ROW_TILE;
    made_simd_forward_tile(m, params, i0, nt, x + (size_t)i0 * m->D,
                           m->C > 0 ? c + (size_t)i0 * m->C : NULL,
                           out + (size_t)i0 * m->D * m->P);
  }
  return 0;
#endif
  made_pack_cond(m, params);
  for (int i0 = 0; i0 < n; i0 += MADE_ROW_TILE) {
    const int nt = n - i0 < MADE_ROW_TILE ? n - i0 : MADE_ROW_TILE;
    made_forward_tile(m, params, i0, nt, x + (size_t)i0 * m->D,
                      m->C > 0 ? c + (size_t)i0 * m->C : NULL, out + (size_t)i0 * m->D * m->P);
  }
  return 0;
}

/* Backward pass of the nt rows starting at row i0 (x, c, dout, dx, dc point at row i0). */
static void made_backward_tile(cnf_made *m, const cnf_real *params, int i0, int nt,
                               const cnf_real *x, const cnf_real *c, const cnf_real *dout,
                               cnf_real *grads, cnf_real *dx, cnf_real *dc) {
  const int D = m->D, C = m->C, H = m->H, L = m->L, DP = m->D * m->P;
  const size_t stride = (size_t)m->nmax * H, rows = (size_t)i0 * H;
  /* output layer: out = h_{L-1} Wout^T + bout + c Wc^T */
  const made_layer *lo = &m->layer[L];
  const cnf_real *hl = m->h + (size_t)(L - 1) * stride + rows;
  made_layer_backward_weight(lo, nt, dout, DP, hl, H, grads + lo->off_w);
  made_bias_cond_backward(nt, DP, NULL, dout, NULL, C, c, grads + lo->off_b, m->gcto);
  if (C > 0 && dc)
    MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, C, DP, 1, dout, DP,
              params + m->off_wc, C, 1, dc, C);
  cnf_real *g = m->dh, *g_next = m->dh + (size_t)MADE_ROW_TILE * H;
  made_layer_backward_input(lo, params + lo->off_w, nt, dout, DP, H, g);
  made_bias_cond_backward(nt, H, hl, g, g, L == 1 ? C : 0, c, grads + m->layer[L - 1].off_b,
                          m->gct);
  /* hidden layers L-1 .. 1: h_l = relu(h_{l-1} W_l^T + b_l); g = dL/dpre_l */
  for (int l = L - 1; l >= 1; l--) {
    const made_layer *ly = &m->layer[l];
    const cnf_real *hin = m->h + (size_t)(l - 1) * stride + rows;
    made_layer_backward_weight(ly, nt, g, H, hin, H, grads + ly->off_w);
    made_layer_backward_input(ly, params + ly->off_w, nt, g, H, H, g_next);
    made_bias_cond_backward(nt, H, hin, g_next, g_next, l == 1 ? C : 0, c,
                            grads + m->layer[l - 1].off_b, m->gct);
    cnf_real *t = g;
    g = g_next;
    g_next = t;
  }
  /* layer 0: h_0 = relu([x, c] W0^T + b0) */
  const made_layer *l0 = &m->layer[0];
  made_layer_backward_weight(l0, nt, g, H, x, D, grads + l0->off_w);
  if (C > 0 && dc)
    MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, C, H, 1, g, H,
              params + l0->off_w + D, l0->ld, 1, dc, C);
  if (dx)
    made_layer_backward_input(l0, params + l0->off_w, nt, g, H, D, dx);
}

int cnf_made_backward(cnf_made *m, const cnf_real *params, int n, const cnf_real *x,
                      const cnf_real *c, const cnf_real *dout, cnf_real *grads, cnf_real *dx,
                      cnf_real *dc) {
  if (n > m->nmax)
    return cnf_error_set(CNF_ERR_STATE, "MADE backward: batch %d larger than the last forward "
                                        "could cache (%d)", n, m->nmax);
  const int D = m->D, C = m->C, H = m->H, DP = m->D * m->P, ld0 = m->layer[0].ld;
#if MADE_SIMD
  if (dc && C > 0)
    made_simd_pack_wcb(m, params);
  for (int i0 = 0; i0 < n; i0 += MADE_ROW_TILE) {
    const int nt = n - i0 < MADE_ROW_TILE ? n - i0 : MADE_ROW_TILE;
    made_simd_backward_tile(m, params, i0, nt, x + (size_t)i0 * D,
                            C > 0 ? c + (size_t)i0 * C : NULL, dout + (size_t)i0 * DP, grads,
                            dx ? dx + (size_t)i0 * D : NULL, dc ? dc + (size_t)i0 * C : NULL);
  }
  return 0;
#endif
  memset(m->gct, 0, sizeof(cnf_real) * (size_t)C * (H + DP));
  for (int i0 = 0; i0 < n; i0 += MADE_ROW_TILE) {
    const int nt = n - i0 < MADE_ROW_TILE ? n - i0 : MADE_ROW_TILE;
    made_backward_tile(m, params, i0, nt, x + (size_t)i0 * D, C > 0 ? c + (size_t)i0 * C : NULL,
                       dout + (size_t)i0 * DP, grads, dx ? dx + (size_t)i0 * D : NULL,
                       dc ? dc + (size_t)i0 * C : NULL);
  }
  /* the transposed condition-weight gradients back into the parameter layout */
  cnf_real *g0 = grads + m->layer[0].off_w + D, *gwc = grads + m->off_wc;
  for (int k = 0; k < C; k++) {
    for (int j = 0; j < H; j++)
      g0[(size_t)j * ld0 + k] += m->gct[(size_t)k * H + j];
    for (int j = 0; j < DP; j++)
      gwc[(size_t)j * C + k] += m->gcto[(size_t)k * DP + j];
  }
  return 0;
}

/* ---- sequential evaluation (sampling) -------------------------------------------------------- */
int cnf_made_seq_begin(cnf_made *m, const cnf_real *params, int n, const cnf_real *c) {
  if (n < 0)
    return cnf_error_set(CNF_ERR_ARG, "MADE: negative batch size %d", n);
  if (n > m->seq_nmax) {
    free(m->seq_h);
    m->seq_nmax = 0;
    m->seq_h = cnf_aligned_alloc(sizeof(cnf_real) * (size_t)m->L * n * m->H);
    if (!m->seq_h)
      return CNF_ERR_NOMEM;
    m->seq_nmax = n;
  }
  const int C = m->C, H = m->H;
  const made_layer *l0 = &m->layer[0];
  m->seq_n = n;
  m->seq_c = c;
  /* the condition part of every layer-0 unit is known now; step d adds the x part */
  made_pack_cond(m, params);
  made_bias_cond(n, H, params + l0->off_b, C, c, m->wct, H, m->seq_h, H);
  return 0;
}

void cnf_made_seq_step(cnf_made *m, const cnf_real *params, int d, const cnf_real *x,
                       cnf_real *out_d) {
  CNF_ASSERT(d >= 0 && d < m->D);
  const int D = m->D, C = m->C, H = m->H, L = m->L, P = m->P, n = m->seq_n;
  const size_t stride = (size_t)m->seq_nmax * H;
  /* hidden units of degree d read x_0..x_{d-1} (layer 0) and units of degree <= d below */
  const int u0 = m->hs[d], u1 = m->hs[d + 1], nu = u1 - u0, k = u1;
  if (nu > 0) {
    const made_layer *l0 = &m->layer[0];
    cnf_real *h0 = m->seq_h;
    if (d > 0)
      MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, nu, d, 1, x, D,
                params + l0->off_w + (size_t)u0 * l0->ld, l0->ld, 1, h0 + u0, H);
    made_relu(n, nu, h0 + u0, H);
    for (int l = 1; l < L; l++) {
      const made_layer *ly = &m->layer[l];
      cnf_real *h = m->seq_h + (size_t)l * stride;
      made_bias_cond(n, nu, params + ly->off_b + u0, 0, NULL, NULL, 0, h + u0, H);
      MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, nu, k, 1, h - stride, H,
                params + ly->off_w + (size_t)u0 * H, H, 1, h + u0, H);
      made_relu(n, nu, h + u0, H);
    }
  }
  /* the P outputs of dimension d */
  const made_layer *lo = &m->layer[L];
  made_bias_cond(n, P, params + lo->off_b + (size_t)d * P, C, m->seq_c, m->wcto + (size_t)d * P,
                 D * P, out_d, P);
  if (k > 0)
    MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, P, k, 1,
              m->seq_h + (size_t)(L - 1) * stride, H, params + lo->off_w + (size_t)d * P * H, H,
              1, out_d, P);
}
