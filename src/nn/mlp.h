/* Private: plain dense MLP (the coupling-block subnet).  n_layers - 1 hidden dense layers of
 * width H with an activation, then a dense output layer without activation.  Parameters are
 * one contiguous slice, in order
 *     W0 (H, n_in), b0 (H), [W_l (H, H), b_l (H)] ..., Wout (n_out, H), bout (n_out)
 * (torch nn.Linear weight layout: row = output unit).  Row-major batches, "(n, k)" = n rows.
 * Activations for the backward pass live in caller-provided workspaces, so one cnf_mlp can
 * serve a cached forward and an uncached evaluation (sampling) side by side.
 */
#pragma once

#include "cnflow/core.h"

typedef enum cnf_mlp_act { CNF_MLP_RELU = 0, CNF_MLP_LEAKY_RELU = 1 } cnf_mlp_act;

typedef struct cnf_mlp {
  int n_in, n_hidden, hidden, n_out; /* n_hidden >= 0 hidden layers of width hidden */
  cnf_mlp_act act;
  cnf_real slope; /* LeakyReLU negative slope (0 for ReLU) */
  size_t n_params;
} cnf_mlp;

/* Describe an MLP; fails on non-positive sizes. */
int cnf_mlp_init(cnf_mlp *m, int n_in, int n_hidden, int hidden, int n_out, cnf_mlp_act act,
                 double slope);
/* Values a workspace must hold for n rows: the hidden activations (n_hidden * n * hidden). */
size_t cnf_mlp_work_size(const cnf_mlp *m, int n);
/* Offset of the output layer's weights Wout (n_out, H) and bias bout (n_out) in the slice. */
size_t cnf_mlp_out_weight_offset(const cnf_mlp *m);
size_t cnf_mlp_out_bias_offset(const cnf_mlp *m);

/* nn.Linear-like init: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from the stream.
 * zero_output != 0 sets Wout and bout to exactly zero instead. */
void cnf_mlp_init_params(const cnf_mlp *m, cnf_real *params, cnf_rng *rng, int zero_output);

/* out (n, n_out) = MLP(in (n, n_in)); work (cnf_mlp_work_size) receives the hidden
 * activations that cnf_mlp_backward needs. */
void cnf_mlp_forward(const cnf_mlp *m, const cnf_real *params, int n, const cnf_real *in,
                     cnf_real *out, cnf_real *work);
/* Reverse mode through the cnf_mlp_forward that filled `work` (same params, n, in):
 *   dout (n, n_out) dL/dout; grads ACCUMULATED (same layout as params), or NULL: no
 *     parameter gradients (dx only);
 *   din (n, n_in) dL/din WRITTEN (skipped if NULL);
 *   scratch: 2 * n * max(hidden, 1) values, overwritten. */
void cnf_mlp_backward(const cnf_mlp *m, const cnf_real *params, int n, const cnf_real *in,
                      const cnf_real *work, const cnf_real *dout, cnf_real *grads,
                      cnf_real *din, cnf_real *scratch);
