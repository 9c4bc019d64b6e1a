/* AVX-512 MADE kernels of the float library (see src/nn/made_impl.h; the generic BLAS path
 * and the shared construction are in src/nn/made.c).
 *
 * Per panel of 32 output columns the kernels skip the masked zeros of the prefix-masked
 * weights and fuse the bias, ReLU and bias-gradient passes (about twice as fast as the block
 * GEMMs on the reference architectures).  Checked element-wise against the double library's
 * generic path by tests/cmake/made_kernels.cmake.
 */
#include "made_impl.h"

#if MADE_SIMD
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

static int made_npanel(int cols) { return (cols + MADE_PANEL - 1) / MADE_PANEL; }

int made_simd_setup(cnf_made *m) {
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
  return 0;
}

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
    made_kf_panel(nt, w, &src, 1, NULL, MADE_EPI_DRELU, g_in + j0, H, h_in + j0,
                  db_in ? db_in + j0 : NULL); /* NULL: no bias gradient wanted */
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
  /* grads NULL: only dx/dc are wanted (likelihood scans): every weight and bias gradient of
   * this pass is skipped, the data gradients are the same arithmetic as with them */
  if (grads)
    made_simd_backward_weight(m, lo, nt, dout, DP, hl, H, grads + lo->off_w);
  for (int r0 = 0; grads && C > 0 && r0 < DP; r0 += MADE_KW_R) {
    const int R = DP - r0 < MADE_KW_R ? DP - r0 : MADE_KW_R;
    made_kw(R, C, nt, dout + r0, DP, c, C, m->cw, m->cw_ld);
    for (int r = 0; r < R; r++)
      for (int k = 0; k < C; k++)
        grads[m->off_wc + (size_t)(r0 + r) * C + k] += m->cw[(size_t)r * m->cw_ld + k];
  }
  float *db = grads ? grads + lo->off_b : NULL;
  for (int i = 0; db && i < nt; i++)
    for (int j = 0; j < DP; j++)
      db[j] += dout[(size_t)i * DP + j];
  float *g = m->dh, *g_next = m->dh + (size_t)MADE_ROW_TILE * H;
  made_simd_backward_data(m, params, L, nt, dout, hl, g,
                          grads ? grads + m->layer[L - 1].off_b : NULL);
  /* hidden layers L-1 .. 1 */
  for (int l = L - 1; l >= 1; l--) {
    const made_layer *ly = &m->layer[l];
    const float *hin = m->h + (size_t)(l - 1) * stride + rows;
    if (grads)
      made_simd_backward_weight(m, ly, nt, g, H, hin, H, grads + ly->off_w);
    made_simd_backward_data(m, params, l, nt, g, hin, g_next,
                            grads ? grads + m->layer[l - 1].off_b : NULL);
    float *t = g;
    g = g_next;
    g_next = t;
  }
  /* layer 0: W0 = [Wx | Wc0] */
  const made_layer *l0 = &m->layer[0];
  if (grads)
    made_simd_backward_weight_t(m, nt, x, D, D, g, H, l0->len, 0, grads + l0->off_w, DC);
  if (grads && C > 0)
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

void made_simd_forward(cnf_made *m, const float *params, int n, const float *x, const float *c,
                       float *out) {
  /* a scan evaluates fixed weights many times over small batches: the transposed copies are
   * reused then (about as costly as a forward pass of a few dozen rows for Flow-I's MADEs) */
  if (!m->cache_params || m->pack_src != params) {
    made_simd_pack(m, params);
    m->pack_src = m->cache_params ? params : NULL;
  }
  for (int i0 = 0; i0 < n; i0 += MADE_ROW_TILE) {
    const int nt = n - i0 < MADE_ROW_TILE ? n - i0 : MADE_ROW_TILE;
    made_simd_forward_tile(m, params, i0, nt, x + (size_t)i0 * m->D,
                           m->C > 0 ? c + (size_t)i0 * m->C : NULL,
                           out + (size_t)i0 * m->D * m->P);
  }
}

void made_simd_backward(cnf_made *m, const float *params, int n, const float *x, const float *c,
                        const float *dout, float *grads, float *dx, float *dc) {
  const int D = m->D, C = m->C, DP = m->D * m->P;
  if (dc && C > 0)
    made_simd_pack_wcb(m, params);
  for (int i0 = 0; i0 < n; i0 += MADE_ROW_TILE) {
    const int nt = n - i0 < MADE_ROW_TILE ? n - i0 : MADE_ROW_TILE;
    made_simd_backward_tile(m, params, i0, nt, x + (size_t)i0 * D,
                            C > 0 ? c + (size_t)i0 * C : NULL, dout + (size_t)i0 * DP, grads,
                            dx ? dx + (size_t)i0 * D : NULL, dc ? dc + (size_t)i0 * C : NULL);
  }
}
#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int made_simd_not_compiled;
#endif
