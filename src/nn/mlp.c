/* Dense MLP on OpenBLAS GEMMs (see mlp.h for the parameter layout). */
#include "mlp.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#if CNF_REAL_IS_DOUBLE
#define MLP_GEMM cblas_dgemm
#else
#define MLP_GEMM cblas_sgemm
#endif

int cnf_mlp_init(cnf_mlp *m, int n_in, int n_hidden, int hidden, int n_out, cnf_mlp_act act,
                 double slope) {
  if (n_in < 1 || n_hidden < 0 || (n_hidden > 0 && hidden < 1) || n_out < 1)
    return cnf_error_set(CNF_ERR_ARG,
                         "mlp: need n_in >= 1, n_hidden >= 0, hidden >= 1, n_out >= 1 (got %d, "
                         "%d, %d, %d)",
                         n_in, n_hidden, hidden, n_out);
  if (act != CNF_MLP_RELU && act != CNF_MLP_LEAKY_RELU)
    return cnf_error_set(CNF_ERR_ARG, "mlp: unknown activation %d", (int)act);
  m->n_in = n_in;
  m->n_hidden = n_hidden;
  m->hidden = n_hidden > 0 ? hidden : 0;
  m->n_out = n_out;
  m->act = act;
  m->slope = act == CNF_MLP_LEAKY_RELU ? (cnf_real)slope : 0;
  m->n_params = cnf_mlp_out_bias_offset(m) + (size_t)n_out;
  return 0;
}

/* Input and output width of layer l (0..n_hidden; the last one is the output layer). */
static int layer_in(const cnf_mlp *m, int l) { return l == 0 ? m->n_in : m->hidden; }
static int layer_out(const cnf_mlp *m, int l) { return l == m->n_hidden ? m->n_out : m->hidden; }

/* Offset of layer l's weight matrix; its bias follows the weights. */
static size_t layer_offset(const cnf_mlp *m, int l) {
  size_t off = 0;
  for (int j = 0; j < l; j++)
    off += (size_t)layer_out(m, j) * ((size_t)layer_in(m, j) + 1);
  return off;
}

size_t cnf_mlp_work_size(const cnf_mlp *m, int n) {
  return (size_t)m->n_hidden * (size_t)n * (size_t)m->hidden;
}
size_t cnf_mlp_out_weight_offset(const cnf_mlp *m) { return layer_offset(m, m->n_hidden); }
size_t cnf_mlp_out_bias_offset(const cnf_mlp *m) {
  return cnf_mlp_out_weight_offset(m) + (size_t)m->n_out * (size_t)layer_in(m, m->n_hidden);
}

void cnf_mlp_init_params(const cnf_mlp *m, cnf_real *params, cnf_rng *rng, int zero_output) {
  for (int l = 0; l <= m->n_hidden; l++) {
    const size_t count = (size_t)layer_out(m, l) * ((size_t)layer_in(m, l) + 1);
    cnf_real *p = params + layer_offset(m, l);
    if (l == m->n_hidden && zero_output) {
      memset(p, 0, count * sizeof *p);
      continue;
    }
    const double bound = 1.0 / sqrt((double)layer_in(m, l));
    for (size_t i = 0; i < count; i++)
      p[i] = (cnf_real)(bound * (2.0 * cnf_rng_uniform(rng) - 1.0));
  }
}

void cnf_mlp_forward(const cnf_mlp *m, const cnf_real *params, int n, const cnf_real *in,
                     cnf_real *out, cnf_real *work) {
  if (n <= 0)
    return;
  const cnf_real *cur = in;
  for (int l = 0; l <= m->n_hidden; l++) {
    const int di = layer_in(m, l), de = layer_out(m, l);
    const cnf_real *W = params + layer_offset(m, l), *b = W + (size_t)de * di;
    cnf_real *dst = l < m->n_hidden ? work + (size_t)l * n * m->hidden : out;
    /* dst (n, de) = b + cur (n, di) W^T */
    for (int i = 0; i < n; i++)
      memcpy(dst + (size_t)i * de, b, (size_t)de * sizeof *dst);
    MLP_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, de, di, 1, cur, di, W, di, 1, dst, de);
    if (l < m->n_hidden) {
      const size_t cnt = (size_t)n * de;
      const cnf_real slope = m->slope;
      for (size_t i = 0; i < cnt; i++)
        dst[i] = dst[i] > 0 ? dst[i] : slope * dst[i];
    }
    cur = dst;
  }
}

void cnf_mlp_backward(const cnf_mlp *m, const cnf_real *params, int n, const cnf_real *in,
                      const cnf_real *work, const cnf_real *dout, cnf_real *grads,
                      cnf_real *din, cnf_real *scratch) {
  if (n <= 0)
    return;
  const size_t half = (size_t)n * (size_t)(m->hidden > 0 ? m->hidden : 1);
  const cnf_real *delta = dout;
  for (int l = m->n_hidden; l >= 0; l--) {
    const int di = layer_in(m, l), de = layer_out(m, l);
    const size_t off = layer_offset(m, l);
    const cnf_real *W = params + off;
    const cnf_real *a = l == 0 ? in : work + (size_t)(l - 1) * n * m->hidden;
    if (grads) {
      /* gW (de, di) += delta^T (de, n) a (n, di);  gb += column sums of delta */
      cnf_real *gW = grads + off, *gb = gW + (size_t)de * di;
      MLP_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, de, di, n, 1, delta, de, a, di, 1, gW,
               di);
      for (int i = 0; i < n; i++) {
        const cnf_real *dr = delta + (size_t)i * de;
        for (int j = 0; j < de; j++)
          gb[j] += dr[j];
      }
    }
    if (l == 0) {
      if (din)
        MLP_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, di, de, 1, delta, de, W, di, 0,
                 din, di);
      break;
    }
    /* d a (n, di) = delta W, then through the activation: a > 0 exactly where its input was */
    cnf_real *next = scratch + (l % 2) * half;
    MLP_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, di, de, 1, delta, de, W, di, 0, next,
             di);
    const size_t cnt = (size_t)n * di;
    const cnf_real slope = m->slope;
    for (size_t i = 0; i < cnt; i++)
      next[i] = a[i] > 0 ? next[i] : slope * next[i];
    delta = next;
  }
}
