/* cnflow nn: the conditional MADE (masked autoregressive network) used by the MAF bijectors.
 *
 * A MADE maps x (n, D) and conditions c (n, C) to out (n, D*P): P parameters per dimension,
 * output column d*P + p ("dimension-major"), where the parameters of dimension d depend on
 * x_0..x_{d-1} and on c only.  Parameter layout (flow.h is the contract; offsets relative to
 * the MADE's slice):
 *     W0 (H, D + C), b0 (H), [W_l (H, H), b_l (H)] for l = 1..L-1,
 *     Wout (D*P, H), bout (D*P), Wc (D*P, C)
 * Hidden units are sorted by degree (the peer sequence k mod max(1, D-1) + min(1, D-1),
 * stable-sorted), so every masked weight matrix is "prefix-masked": row r uses the first len(r)
 * input columns only, and len is non-decreasing in r.  The forward and backward passes exploit
 * this with GEMMs over row blocks that skip the all-zero parts; sampling exploits it by
 * computing, for dimension d, only the hidden units of degree d (cnf_made_seq_*).
 * Masked weights are stored as exact zeros (cnf_made_apply_mask) and their gradients are zero.
 * Activation: ReLU after every hidden layer, none at the output.
 *
 * Shapes are row-major, "(n, D)" = n rows of D values.  Backward passes ACCUMULATE into the
 * parameter gradients.  A cnf_made holds work buffers, so one object serves one thread.
 */
#pragma once

#include "cnflow/core.h"

typedef struct cnf_made cnf_made;

/* Which implementation runs cnf_made_forward / cnf_made_backward (both compute the same
 * function; they differ in rounding only).  The float library built for AVX-512
 * (-march=native on such a CPU) has hand-written SIMD kernels (src/nn/made_simd.c) besides the
 * generic BLAS path; every other build has the generic path only.
 *   cnf_made_simd_available(): 1 if the SIMD kernels are compiled in and this CPU has AVX-512F.
 *   cnf_made_simd(): the path the next forward pass takes (1 SIMD, 0 generic).  Default: the
 *     environment variable CNFLOW_SIMD=0|1, read at the first call, else SIMD when available.
 *   cnf_made_set_simd(on): 1 SIMD (CNF_ERR_ARG if not available), 0 generic, -1 the default.
 * A backward pass takes the path of its forward pass.  Process-wide; not thread-safe. */
int cnf_made_simd_available(void);
int cnf_made_simd(void);
int cnf_made_set_simd(int on);

/* Trainable parameters of a MADE as stored (masked zeros included). */
size_t cnf_made_count_params(int D, int C, int H, int L, int P);
/* Parameters that are not masked: free weights + biases + Wc. */
size_t cnf_made_count_params_effective(int D, int C, int H, int L, int P);

/* D >= 1, C >= 0, H >= 1, L >= 1 hidden layers, P >= 1 parameters per dimension. */
int cnf_made_create(int D, int C, int H, int L, int P, cnf_made **out);
void cnf_made_free(cnf_made **m);

size_t cnf_made_num_params(const cnf_made *m);
/* Offsets inside the MADE's parameter slice: weights / bias of layer 0..L-1 (hidden) or L
 * (output: Wout, bout), and of Wc. */
size_t cnf_made_offset_weight(const cnf_made *m, int layer);
size_t cnf_made_offset_bias(const cnf_made *m, int layer);
size_t cnf_made_offset_wc(const cnf_made *m);
/* Degree of sorted hidden unit k (same in every hidden layer), in 0..D-1. */
int cnf_made_hidden_degree(const cnf_made *m, int k);
/* Index k' in the peer's unsorted hidden order (deg(k') = k' mod max(1,D-1) + min(1,D-1)) of
 * our hidden unit k: the converter from torch weights permutes hidden units with this. */
int cnf_made_hidden_peer_index(const cnf_made *m, int k);
/* 1 if weight (row, col) of layer `layer` (0..L-1 hidden, L = output Wout) is trainable, else 0.
 * For layer 0, columns D..D+C-1 are the (never masked) condition columns. */
int cnf_made_connected(const cnf_made *m, int layer, int row, int col);

/* Set every masked weight of params (or of a gradient buffer with the same layout) to zero. */
void cnf_made_apply_mask(const cnf_made *m, cnf_real *params);
/* The entries of the parameter buffer that can have a non-zero gradient (every weight the
 * masks keep, the biases, the condition weights) as sorted, disjoint, merged ranges
 * [base + r[2i], base + r[2i+1]).  Writes them to out (if not NULL; room for 2 * the count) and
 * returns the count.  Everything outside is a masked weight: zero, with a zero gradient. */
size_t cnf_made_live_ranges(const cnf_made *m, size_t base, size_t *out);
/* nn.Linear-like init from the stream: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * (fan_in = D + C for layer 0, H otherwise; Wc uses fan_in = H + C, as if the conditions were
 * extra inputs of the output layer), then masked.  zero_output != 0: Wout, bout and Wc are set
 * to zero instead (identity blocks; the caller then sets the bias it needs). */
void cnf_made_init_params(const cnf_made *m, cnf_real *params, cnf_rng *rng, int zero_output);

/* Allocate the activation cache for batches of up to nmax rows (forward grows it if needed). */
int cnf_made_reserve(cnf_made *m, int nmax);

/* Packed weights.  The SIMD path multiplies transposed, panel-packed copies of the weights.
 * By default every forward repacks them from params (always right, whatever the caller wrote).
 * cnf_made_set_param_cache(m, 1): the copies are kept between forwards with the same params
 * pointer, and the caller promises cnf_made_params_changed(m) after every write into params
 * (the MAF bijector does, from the flow's params_changed contract); a scan's many small
 * batches over fixed weights then pack once. */
void cnf_made_set_param_cache(cnf_made *m, int on);
void cnf_made_params_changed(cnf_made *m);

/* out (n, D*P) = MADE(x (n, D), c (n, C)); c may be NULL when C == 0.  Caches the hidden
 * activations for cnf_made_backward. */
int cnf_made_forward(cnf_made *m, const cnf_real *params, int n, const cnf_real *x,
                     const cnf_real *c, cnf_real *out);
/* Reverse mode through the last cnf_made_forward (same params, n, x, c):
 *   dout (n, D*P): dL/dout;  grads: parameter gradients ACCUMULATED (masked entries stay 0),
 *     or NULL: no parameter gradient is computed (about a third of the pass: likelihood
 *     scans want dx/dc only), dx and dc are bit-identical to a call with grads;
 *   dx (n, D): dL/dx WRITTEN (skipped if NULL);  dc (n, C): dL/dc ACCUMULATED (skipped if NULL). */
int cnf_made_backward(cnf_made *m, const cnf_real *params, int n, const cnf_real *x,
                      const cnf_real *c, const cnf_real *dout, cnf_real *grads, cnf_real *dx,
                      cnf_real *dc);

/* Sequential evaluation for sampling, one dimension at a time, costing about one forward pass
 * in total.  Usage (x (n, D) is filled column by column by the caller):
 *     cnf_made_seq_begin(m, params, n, c);
 *     for d = 0..D-1: cnf_made_seq_step(m, params, d, x, out_d); then write x[:, d]
 * seq_step reads x columns 0..d-1 only and WRITES out_d (n, P) = the P outputs of dimension d.
 * c (n, C) is borrowed until the last step.  Uses its own buffers: it does not disturb the
 * cache of cnf_made_forward. */
int cnf_made_seq_begin(cnf_made *m, const cnf_real *params, int n, const cnf_real *c);
void cnf_made_seq_step(cnf_made *m, const cnf_real *params, int d, const cnf_real *x,
                       cnf_real *out_d);
