/* Conditional MADE with degree-sorted hidden units (see include/cnflow/nn.h).
 *
 * Every masked layer is prefix-masked: row r reads input columns [0, len[r]) with len
 * non-decreasing in r.  At creation the rows are cut into a few blocks (a small dynamic
 * programme over a GEMM cost model); each block is one GEMM over the columns its last row
 * needs, so the all-zero upper-right part of the weight matrix is skipped while the GEMMs stay
 * large enough to run near peak.  Entries inside a block but outside a row's prefix are masked
 * zeros: they add nothing in the forward pass, and their gradients are cleared after the
 * weight-gradient GEMM.  The float library built for AVX-512 can replace these BLAS calls by two
 * register-blocked kernels that skip the masked zeros per panel of 32 columns and fuse the
 * bias, ReLU and bias-gradient passes (about twice as fast on the reference architectures):
 * src/nn/made_simd.c, chosen at run time (cnf_made_set_simd, CNFLOW_SIMD).
 */
#include "made_impl.h"

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

/* Cost model of one block GEMM, in multiply-adds per batch row: (rows + R) * (cols + K).  The
 * pads stand for the lower efficiency of thin GEMMs and the per-call overhead (tuned on the
 * reference architectures: finer blocks save FLOPs but were not faster). */
#define MADE_BLOCK_ROW_PAD 16
#define MADE_BLOCK_COL_PAD 16

/* ---- path selection -------------------------------------------------------------------------- */
/* -1: not decided yet (CNFLOW_SIMD is read at the first use), 0: generic, 1: SIMD.  The
 * library runs no threads of its own; callers that do set the path before starting them. */
static int made_simd_mode = -1;

int cnf_made_simd_available(void) {
#if MADE_SIMD
  /* -march=native decides what is compiled; the run-time check keeps a binary moved to a CPU
   * without AVX-512F off these kernels (other code of such a build may still need it) */
  return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
  return 0;
#endif
}

static int made_simd_default(void) {
  const int avail = cnf_made_simd_available();
  const char *env = getenv("CNFLOW_SIMD");
  if (!env || !*env)
    return avail;
  if (strcmp(env, "0") == 0)
    return 0;
  if (strcmp(env, "1") == 0) {
    if (!avail)
      cnf_log_warn("CNFLOW_SIMD=1: the AVX-512 MADE kernels are %s; using the generic path",
                   MADE_SIMD ? "compiled in but this CPU lacks AVX-512F"
                             : "not compiled into this library");
    return avail;
  }
  cnf_log_warn("CNFLOW_SIMD=%s ignored (expected 0 or 1); using the %s MADE path", env,
               avail ? "SIMD" : "generic");
  return avail;
}

int cnf_made_simd(void) {
  if (made_simd_mode < 0)
    made_simd_mode = made_simd_default();
  return made_simd_mode;
}

int cnf_made_set_simd(int on) {
  if (on < 0) {
    made_simd_mode = made_simd_default();
    return 0;
  }
  if (on && !cnf_made_simd_available())
    return cnf_error_set(CNF_ERR_ARG, "MADE: the AVX-512 kernels are %s",
                         MADE_SIMD ? "compiled in but this CPU lacks AVX-512F"
                                   : "not compiled into this library (float build with "
                                     "AVX-512 target only)");
  made_simd_mode = on ? 1 : 0;
  return 0;
}

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
#if MADE_SIMD
  if (cnf_made_simd_available()) {
    CNF_CALL_GOTO(rc, fail, made_simd_setup(m));
    m->simd_ready = 1;
  }
#endif
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

/* A range list being built: counts without storing when out is NULL, and merges a range
 * that starts where the previous one ended (so counting and writing agree). */
typedef struct range_list {
  size_t *out, count, last_end;
} range_list;

static void range_push(range_list *rl, size_t b, size_t e) {
  if (b >= e)
    return;
  if (rl->count > 0 && rl->last_end == b) {
    if (rl->out)
      rl->out[2 * rl->count - 1] = e;
  } else {
    if (rl->out) {
      rl->out[2 * rl->count] = b;
      rl->out[2 * rl->count + 1] = e;
    }
    rl->count++;
  }
  rl->last_end = e;
}

size_t cnf_made_live_ranges(const cnf_made *m, size_t base, size_t *out) {
  range_list rl = {out, 0, 0};
  for (int l = 0; l <= m->L; l++) {
    const made_layer *ly = &m->layer[l];
    const int masked_cols = l == 0 ? m->D : ly->ld;
    for (int r = 0; r < ly->rows; r++) {
      const size_t row = base + ly->off_w + (size_t)r * ly->ld;
      /* the kept prefix [0, len) and the unmasked condition columns [masked_cols, ld): the
       * conditions of row r and the prefix of row r + 1 touch and merge */
      range_push(&rl, row, row + (size_t)ly->len[r]);
      range_push(&rl, row + (size_t)masked_cols, row + (size_t)ly->ld);
    }
    range_push(&rl, base + ly->off_b, base + ly->off_b + (size_t)ly->rows);
  }
  range_push(&rl, base + m->off_wc, base + m->off_wc + (size_t)m->D * m->P * m->C);
  return rl.count;
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
 *   db (cols) += column sums (db NULL: skipped), and if C > 0: gt (C, cols) += c^T g (the gradient of the layer's
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
    for (int j = 0; db && j < cols; j++)
      db[j] += row[j];
    for (int k = 0; k < C; k++) {
      const cnf_real a = c[(size_t)i * C + k];
      cnf_real *gk = gt + (size_t)k * cols;
      for (int j = 0; j < cols; j++)
        gk[j] += a * row[j];
    }
  }
}

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

void cnf_made_set_param_cache(cnf_made *m, int on) {
  m->cache_params = on != 0;
  m->pack_src = NULL;
}

void cnf_made_params_changed(cnf_made *m) { m->pack_src = NULL; }

int cnf_made_forward(cnf_made *m, const cnf_real *params, int n, const cnf_real *x,
                     const cnf_real *c, cnf_real *out) {
  CNF_CALL(cnf_made_reserve(m, n));
#if MADE_SIMD
  /* the path may change between calls (cnf_made_set_simd): each forward takes the current one */
  m->simd_last = m->simd_ready && cnf_made_simd();
  if (m->simd_last) {
    made_simd_forward(m, params, n, x, c, out);
    return 0;
  }
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
  /* grads NULL: only dx/dc are wanted (likelihood scans): the weight, bias and condition-
   * weight gradients are skipped; the data gradients are the same arithmetic as with them */
  const int Cg = grads ? C : 0; /* the transposed condition-weight gradients, if wanted */
  if (grads) {
    made_layer_backward_weight(lo, nt, dout, DP, hl, H, grads + lo->off_w);
    made_bias_cond_backward(nt, DP, NULL, dout, NULL, C, c, grads + lo->off_b, m->gcto);
  }
  if (C > 0 && dc)
    MADE_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, C, DP, 1, dout, DP,
              params + m->off_wc, C, 1, dc, C);
  cnf_real *g = m->dh, *g_next = m->dh + (size_t)MADE_ROW_TILE * H;
  made_layer_backward_input(lo, params + lo->off_w, nt, dout, DP, H, g);
  made_bias_cond_backward(nt, H, hl, g, g, L == 1 ? Cg : 0, c,
                          grads ? grads + m->layer[L - 1].off_b : NULL, m->gct);
  /* hidden layers L-1 .. 1: h_l = relu(h_{l-1} W_l^T + b_l); g = dL/dpre_l */
  for (int l = L - 1; l >= 1; l--) {
    const made_layer *ly = &m->layer[l];
    const cnf_real *hin = m->h + (size_t)(l - 1) * stride + rows;
    if (grads)
      made_layer_backward_weight(ly, nt, g, H, hin, H, grads + ly->off_w);
    made_layer_backward_input(ly, params + ly->off_w, nt, g, H, H, g_next);
    made_bias_cond_backward(nt, H, hin, g_next, g_next, l == 1 ? Cg : 0, c,
                            grads ? grads + m->layer[l - 1].off_b : NULL, m->gct);
    cnf_real *t = g;
    g = g_next;
    g_next = t;
  }
  /* layer 0: h_0 = relu([x, c] W0^T + b0) */
  const made_layer *l0 = &m->layer[0];
  if (grads)
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
  if (m->simd_last) {
    made_simd_backward(m, params, n, x, c, dout, grads, dx, dc);
    return 0;
  }
#endif
  memset(m->gct, 0, sizeof(cnf_real) * (size_t)C * (H + DP));
  for (int i0 = 0; i0 < n; i0 += MADE_ROW_TILE) {
    const int nt = n - i0 < MADE_ROW_TILE ? n - i0 : MADE_ROW_TILE;
    made_backward_tile(m, params, i0, nt, x + (size_t)i0 * D, C > 0 ? c + (size_t)i0 * C : NULL,
                       dout + (size_t)i0 * DP, grads, dx ? dx + (size_t)i0 * D : NULL,
                       dc ? dc + (size_t)i0 * C : NULL);
  }
  if (!grads)
    return 0;
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
