/* Counter-based random streams: Random123's Philox4x32-10.
 *
 * Key = 64-bit seed; counter = (draw index, sub-stream, stream id low, stream id high).  Every
 * value therefore depends only on (seed, stream_id, sub, draw index), which is what makes the
 * generators' output independent of the number of MPI ranks. */
#include "cnflow/core.h"

#include <Random123/philox.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>

void cnf_rng_init(cnf_rng *r, uint64_t seed, uint64_t stream_id, uint32_t sub) {
  r->key[0] = (uint32_t)seed;
  r->key[1] = (uint32_t)(seed >> 32);
  r->ctr[0] = 0;
  r->ctr[1] = sub;
  r->ctr[2] = (uint32_t)stream_id;
  r->ctr[3] = (uint32_t)(stream_id >> 32);
  r->used = 4;
  r->has_spare = 0;
  r->spare = 0.0;
}

static void rng_refill(cnf_rng *r) {
  philox4x32_ctr_t c = {{r->ctr[0], r->ctr[1], r->ctr[2], r->ctr[3]}};
  philox4x32_key_t k = {{r->key[0], r->key[1]}};
  philox4x32_ctr_t out = philox4x32(c, k);
  for (int i = 0; i < 4; i++)
    r->buf[i] = out.v[i];
  r->ctr[0]++;
  if (r->ctr[0] == 0) /* 2^32 blocks per (stream, sub): roll into the sub counter's high bit */
    r->ctr[1] ^= 0x80000000u;
  r->used = 0;
}

uint32_t cnf_rng_u32(cnf_rng *r) {
  if (r->used >= 4)
    rng_refill(r);
  return r->buf[r->used++];
}

uint64_t cnf_rng_u64(cnf_rng *r) {
  uint64_t hi = cnf_rng_u32(r);
  return (hi << 32) | cnf_rng_u32(r);
}

double cnf_rng_uniform(cnf_rng *r) {
  /* 53 bits, shifted by half an ulp so that 0 and 1 are never returned */
  uint64_t v = cnf_rng_u64(r) >> 11;
  return ((double)v + 0.5) * (1.0 / 9007199254740992.0);
}

double cnf_rng_normal(cnf_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u1 = cnf_rng_uniform(r), u2 = cnf_rng_uniform(r);
  double rad = sqrt(-2.0 * log(u1));
  double ang = 2.0 * M_PI * u2;
  r->spare = rad * sin(ang);
  r->has_spare = 1;
  return rad * cos(ang);
}

void cnf_rng_permutation(cnf_rng *r, int n, int *perm) {
  for (int i = 0; i < n; i++)
    perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(cnf_rng_uniform(r) * (double)(i + 1));
    if (j > i)
      j = i;
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* ---- stateless permutation ----------------------------------------------------------------- */
void cnf_perm_init(cnf_perm *p, uint64_t n, uint64_t seed, uint64_t stream_id, uint32_t sub) {
  unsigned bits = 0;
  while (bits < 64 && n > 1 && ((n - 1) >> bits) != 0)
    bits++;
  p->n = n;
  p->half_bits = bits < 2 ? 1 : (bits + 1) / 2;
  p->half_mask = (1ull << p->half_bits) - 1;
  cnf_rng r;
  cnf_rng_init(&r, seed, stream_id, sub);
  for (int k = 0; k < 6; k++)
    p->key[k] = cnf_rng_u64(&r);
}

/* splitmix64's finaliser: full avalanche of the 64 input bits, the Feistel round function */
static uint64_t perm_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t perm_feistel(const cnf_perm *p, uint64_t x) {
  uint64_t l = x >> p->half_bits, r = x & p->half_mask;
  for (int k = 0; k < 6; k++) {
    uint64_t t = l ^ (perm_mix(r ^ p->key[k]) & p->half_mask);
    l = r;
    r = t;
  }
  return (l << p->half_bits) | r;
}

uint64_t cnf_perm_at(const cnf_perm *p, uint64_t i) {
  /* a bijection of the 2^(2h) domain; walking its cycle from i < n must come back below n */
  uint64_t y = perm_feistel(p, i);
  while (y >= p->n)
    y = perm_feistel(p, y);
  return y;
}

/* ---- GSL adaptor ---------------------------------------------------------------------------- */
static void gsl_philox_set(void *state, unsigned long seed) {
  cnf_rng_init((cnf_rng *)state, (uint64_t)seed, 0, 0);
}
static unsigned long gsl_philox_get(void *state) { return cnf_rng_u32((cnf_rng *)state); }
static double gsl_philox_get_double(void *state) {
  /* GSL requires [0,1); ours is (0,1) which is a subset */
  return cnf_rng_uniform((cnf_rng *)state);
}

static const gsl_rng_type gsl_philox_type = {
    "cnflow-philox4x32", 0xffffffffUL, 0, sizeof(cnf_rng),
    gsl_philox_set,      gsl_philox_get, gsl_philox_get_double};

void *cnf_rng_gsl_alloc(uint64_t seed, uint64_t stream_id, uint32_t sub) {
  gsl_rng *g = gsl_rng_alloc(&gsl_philox_type);
  if (!g) {
    cnf_error_set(CNF_ERR_NOMEM, "out of memory allocating a GSL generator");
    return NULL;
  }
  cnf_rng_init((cnf_rng *)g->state, seed, stream_id, sub);
  return g;
}

void cnf_rng_gsl_reset(void *gsl_rng_ptr, uint64_t seed, uint64_t stream_id, uint32_t sub) {
  gsl_rng *g = gsl_rng_ptr;
  cnf_rng_init((cnf_rng *)g->state, seed, stream_id, sub);
}

void cnf_rng_gsl_free(void *gsl_rng_ptr) {
  if (gsl_rng_ptr)
    gsl_rng_free((gsl_rng *)gsl_rng_ptr);
}
