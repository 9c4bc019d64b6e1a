/* The reference architectures ("presets") of include/cnflow/flow.h: each one a list of bijector
 * specs handed to cnf_flow_create, so a preset obeys exactly the rules a hand-written spec
 * list does.  Kept apart from the flow engine (flow.c): adding an architecture never touches
 * the forward/backward code. */
#include "cnflow/flow.h"

#include <stdlib.h>
#include <string.h>

#define PRESET_MAX_BIJ 64

typedef struct preset_builder {
  int D, C, n;
  cnf_bijector_spec specs[PRESET_MAX_BIJ];
  int *perms; /* (PRESET_MAX_BIJ, D): storage for the permutation specs */
  uint64_t seed;
  int n_random; /* random permutations drawn so far (stream index) */
} preset_builder;

typedef enum preset_perm { PERM_REVERSE, PERM_HALF_SWAP, PERM_RANDOM } preset_perm;

static cnf_bijector_spec *preset_push(preset_builder *pb, cnf_bijector_kind kind) {
  CNF_ASSERT(pb->n < PRESET_MAX_BIJ);
  cnf_bijector_spec *s = &pb->specs[pb->n++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  return s;
}

static void preset_permute(preset_builder *pb, preset_perm how) {
  int *p = pb->perms + (size_t)pb->n * pb->D;
  const int D = pb->D;
  if (how == PERM_REVERSE) {
    for (int j = 0; j < D; j++)
      p[j] = D - 1 - j;
  } else if (how == PERM_HALF_SWAP) {
    /* TFP Permute([D//2..D-1, 0..D//2-1]): the CNF study's permutation */
    for (int j = 0; j < D; j++)
      p[j] = (j + D / 2) % D;
  } else {
    /* stream (seed, index of this random permutation, sub 1): independent of the parameter
     * init streams (sub 0) */
    cnf_rng r;
    cnf_rng_init(&r, pb->seed, (uint64_t)pb->n_random++, 1);
    cnf_rng_permutation(&r, D, p);
  }
  preset_push(pb, CNF_BIJ_PERMUTE)->perm = p;
}

static void preset_maf(preset_builder *pb, cnf_bijector_kind kind, int hidden, int n_hidden,
                       int bins, double bound, double min_const, cnf_affine_scale scale_kind) {
  cnf_bijector_spec *s = preset_push(pb, kind);
  s->hidden = hidden;
  s->n_hidden = n_hidden;
  s->bins = bins;
  s->tail_bound = bound;
  s->min_bin_width = s->min_bin_height = s->min_derivative = min_const;
  s->scale_kind = scale_kind;
  s->tails = CNF_TAILS_ELEMENT;
}

/* n_blocks MAF blocks with a permutation between consecutive blocks (the peer CondMAF order:
 * block0, perm0, block1, ..., block_{n-1}). */
static void preset_maf_chain(preset_builder *pb, int n_blocks, preset_perm perm,
                             cnf_bijector_kind kind, int hidden, int n_hidden, int bins,
                             double bound, double min_const, cnf_affine_scale scale_kind) {
  for (int b = 0; b < n_blocks; b++) {
    if (b > 0)
      preset_permute(pb, perm);
    preset_maf(pb, kind, hidden, n_hidden, bins, bound, min_const, scale_kind);
  }
}

int cnf_flow_create_preset(const char *name, int D, int C, uint64_t seed, cnf_flow **out) {
  *out = NULL;
  static const struct {
    const char *name;
    int D, C;
  } defaults[] = {{"cnf", 6, 5},      {"cnf_peer", 6, 5}, {"paraflow", 128, 3},
                  {"flowi", 6, 1},    {"flowi_paper", 6, 1}, {"caloinn", 0, 1},
                  {"toy", 2, 1}};
  int which = -1;
  for (int i = 0; i < (int)(sizeof defaults / sizeof defaults[0]); i++)
    if (name && strcmp(name, defaults[i].name) == 0)
      which = i;
  if (which < 0)
    return cnf_error_set(CNF_ERR_ARG,
                         "unknown flow preset '%s' (known: cnf, cnf_peer, paraflow, flowi, "
                         "flowi_paper, caloinn, toy)",
                         name ? name : "(null)");
  if (D < 0 || C < 0)
    return cnf_error_set(CNF_ERR_ARG, "preset %s: negative D=%d or C=%d", name, D, C);
  preset_builder pb = {.D = D > 0 ? D : defaults[which].D, .C = C > 0 ? C : defaults[which].C,
                       .seed = seed};
  if (pb.D < 1)
    return cnf_error_set(CNF_ERR_ARG, "preset %s: the data dimension D must be given", name);
  pb.perms = cnf_malloc(sizeof(int) * PRESET_MAX_BIJ * (size_t)pb.D);
  if (!pb.perms)
    return CNF_ERR_NOMEM;
  const cnf_bijector_kind AFF = CNF_BIJ_MAF_AFFINE, RQS = CNF_BIJ_MAF_RQS;
  const cnf_affine_scale EXP = CNF_AFFINE_SCALE_EXP, EXP_TANH = CNF_AFFINE_SCALE_EXP_TANH;
  if (strcmp(name, "cnf") == 0) {
    /* TFP Chain(reversed([MAF0, P, ..., MAF9, P, Tanh])) read in the density direction:
     * atanh, then (half-swap P, MAF) ten times */
    preset_push(&pb, CNF_BIJ_TANH);
    for (int b = 0; b < 10; b++) {
      preset_permute(&pb, PERM_HALF_SWAP);
      preset_maf(&pb, AFF, 128, 2, 0, 0, 0, EXP_TANH);
    }
  } else if (strcmp(name, "cnf_peer") == 0) {
    preset_push(&pb, CNF_BIJ_TANH);
    preset_maf_chain(&pb, 10, PERM_REVERSE, AFF, 128, 2, 0, 0, 0, EXP);
  } else if (strcmp(name, "paraflow") == 0) {
    preset_maf_chain(&pb, 10, PERM_RANDOM, RQS, 196, 2, 10, 14.0, 1e-3, EXP);
  } else if (strcmp(name, "flowi") == 0) {
    preset_maf_chain(&pb, 6, PERM_REVERSE, RQS, 64, 2, 8, 14.0, 1e-3, EXP);
  } else if (strcmp(name, "flowi_paper") == 0) {
    /* Du et al.: nflows num_blocks=2 means 3 hidden layers; RandomPermutation; min 1e-6 */
    preset_maf_chain(&pb, 6, PERM_RANDOM, RQS, 64, 3, 8, 14.0, 1e-6, EXP);
  } else if (strcmp(name, "caloinn") == 0) {
    /* [ActNorm, RQS coupling, random permutation] blocks; the last permutation is dropped
     * (it would only relabel the standard-normal latents) */
    const int n_blocks = 8;
    for (int b = 0; b < n_blocks; b++) {
      preset_push(&pb, CNF_BIJ_ACTNORM);
      cnf_bijector_spec *s = preset_push(&pb, CNF_BIJ_COUPLING_RQS);
      s->hidden = 64;
      s->n_hidden = 2;
      s->bins = 8;
      s->tail_bound = 6.0;
      s->min_bin_width = s->min_bin_height = s->min_derivative = 1e-3;
      s->tails = CNF_TAILS_EVENT;
      if (b < n_blocks - 1)
        preset_permute(&pb, PERM_RANDOM);
    }
  } else { /* toy */
    preset_maf_chain(&pb, 4, PERM_REVERSE, RQS, 32, 2, 8, 5.0, 1e-3, EXP);
  }
  int rc = cnf_flow_create(pb.D, pb.C, pb.n, pb.specs, out);
  free(pb.perms);
  return rc;
}
