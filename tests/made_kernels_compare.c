/* Element-wise check of the MADE kernels, compare side (see tests/made_kernels_dump.c): every
 * value of a float-library dump against the same value of the double-library dump,
 *     |f - d| <= atol + rtol * |d|      for EVERY element (no scaling by the largest entry),
 * with (atol, rtol) per quantity (the record name's last part; values and reasoning in
 * the table below and in the README section "MADE kernel check").  Prints, per record, the
 * element count, the largest |d|, the worst ratio |f - d| / (atol + rtol |d|) and, on failure,
 * the first few offending elements.  Exit 0: all pass; 1: some element fails; 2: bad files.
 *
 * usage: made_kernels_compare REF_DOUBLE_DUMP FLOAT_DUMP
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_LEN 48

/* Tolerances.  The inputs and parameters are identical in both dumps (float-representable), so
 * the difference is the float rounding of the computation itself: the MADE sums up to
 * ~200 products per layer over 2-3 layers (a few 1e-7 relative each, growing like sqrt(terms)
 * for random signs), the flows chain 6-10 blocks with exp/log/softmax/softplus, and the
 * parameter gradients additionally sum over up to 300 events.  All quantities are O(1)-scaled
 * by construction (|out| and |dx| up to ~10, per-event parameter gradients ~1): atol is the
 * absolute error of an O(1) sum whose terms cancel (d near 0), rtol the relative error of a
 * value that does not cancel.  Measured worst |f - d| / (atol + rtol |d|) on an AVX-512 EPYC:
 * <= 0.6 (SIMD path) and <= 0.3 (generic path), most records < 0.05.  Known and tested
 * failures it catches: one input column dropped from a panel, the last prefix entry of each
 * weight-gradient row dropped, a bias-gradient sum 0.1 % off.
 * Not covered by a tolerance: an event within ~1e-5 of a kink of the flow (a ReLU switching or
 * an RQS input on a knot), where float and double may take different one-sided derivatives;
 * the fixed batches of made_kernels_dump.c are away from kinks (an earlier flowi batch had one
 * event 1e-6..1e-5 in c from a kink: its float gradient was the double one-sided derivative on
 * the other side). */
typedef struct tol {
  const char *suffix;
  double atol, rtol;
} tol;
static const tol tols[] = {
    {"/out", 2e-5, 2e-5},         /* MADE outputs (n, D*P) */
    {"/dx", 5e-5, 5e-5},          /* MADE dL/dx (n, D): sums over D*P outputs and H units */
    {"/dc", 5e-5, 5e-5},          /* MADE dL/dc (n, C), accumulated: same, up to 3712 + 196 */
    {"/logp", 2e-4, 2e-5},        /* flow log p (n): ~ -D log(2 pi)/2 + log-dets, |logp| ~ 10-300 */
    {"/logp_train", 2e-4, 2e-5},  /* same from the training pass */
    {"/grad_params", 1e-4, 1e-4}, /* MADE: sums over 300 events of terms up to ~100 that
                                     largely cancel; flows: the mean NLL gradient */
    {"/grad_c", 1e-6, 1e-4},      /* flow d mean NLL / d c (n, C): 1/n-scaled per event */
};

typedef struct rec {
  char name[NAME_LEN + 1];
  int64_t n;
  double *v;
} rec;

static int read_rec(FILE *fp, const char *path, rec *r) {
  char nm[NAME_LEN];
  const size_t got = fread(nm, 1, NAME_LEN, fp);
  if (got == 0 && feof(fp))
    return 0;
  if (got != NAME_LEN || fread(&r->n, sizeof r->n, 1, fp) != 1 || r->n < 0 || r->n > (1ll << 32)) {
    fprintf(stderr, "made_kernels_compare: %s: truncated or damaged record header\n", path);
    return -1;
  }
  memcpy(r->name, nm, NAME_LEN);
  r->name[NAME_LEN] = 0;
  r->v = malloc(sizeof(double) * (size_t)(r->n + 1));
  if (!r->v || fread(r->v, sizeof(double), (size_t)r->n, fp) != (size_t)r->n) {
    fprintf(stderr, "made_kernels_compare: %s: record %s truncated\n", path, r->name);
    return -1;
  }
  return 1;
}

static const tol *find_tol(const char *name) {
  const size_t ln = strlen(name);
  for (size_t i = 0; i < sizeof tols / sizeof *tols; i++) {
    const size_t ls = strlen(tols[i].suffix);
    if (ln >= ls && strcmp(name + ln - ls, tols[i].suffix) == 0)
      return &tols[i];
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: made_kernels_compare REF_DOUBLE_DUMP FLOAT_DUMP\n");
    return 2;
  }
  FILE *fd = fopen(argv[1], "rb"), *ff = fopen(argv[2], "rb");
  if (!fd || !ff) {
    fprintf(stderr, "made_kernels_compare: %s: cannot open\n", !fd ? argv[1] : argv[2]);
    return 2;
  }
  int bad = 0, nrec = 0;
  long long nchecked = 0;
  for (;;) {
    rec d = {0}, f = {0};
    const int a = read_rec(fd, argv[1], &d), b = read_rec(ff, argv[2], &f);
    if (a < 0 || b < 0)
      return 2;
    if (a == 0 || b == 0) {
      if (a != b) {
        fprintf(stderr, "made_kernels_compare: %s ends before %s\n", a == 0 ? argv[1] : argv[2],
                a == 0 ? argv[2] : argv[1]);
        return 2;
      }
      break;
    }
    if (strcmp(d.name, f.name) != 0 || d.n != f.n) {
      fprintf(stderr, "made_kernels_compare: record %d differs: %s (%lld) vs %s (%lld)\n", nrec,
              d.name, (long long)d.n, f.name, (long long)f.n);
      return 2;
    }
    const tol *t = find_tol(d.name);
    if (!t) {
      fprintf(stderr, "made_kernels_compare: no tolerance for record %s\n", d.name);
      return 2;
    }
    double dmax = 0, worst = 0;
    long long nfail = 0, nzero = 0, nsmall = 0;
    for (int64_t i = 0; i < d.n; i++) {
      const double dv = d.v[i], fv = f.v[i], err = fabs(fv - dv);
      const double lim = t->atol + t->rtol * fabs(dv);
      dmax = fmax(dmax, fabs(dv));
      nzero += dv == 0;
      nsmall += dv != 0 && fabs(dv) < t->atol; /* checked against atol only */
      const double ratio = err / lim;
      if (ratio > worst || isnan(ratio))
        worst = isnan(ratio) ? INFINITY : ratio;
      if (!(err <= lim)) { /* NaN fails too */
        if (nfail < 5)
          fprintf(stderr, "  FAIL %s[%lld]: float %.9g double %.9g |diff| %.3g > %.3g\n", d.name,
                  (long long)i, fv, dv, err, lim);
        nfail++;
      }
    }
    printf("%-30s n=%-8lld zero=%-7lld <atol=%-6lld max|d|=%-9.3g worst=%.3f (atol %.0e rtol "
           "%.0e)%s\n",
           d.name, (long long)d.n, nzero, nsmall, dmax, worst, t->atol, t->rtol,
           nfail ? "  FAILED" : "");
    if (nfail)
      fprintf(stderr, "made_kernels_compare: %s: %lld of %lld elements out of tolerance\n",
              d.name, nfail, (long long)d.n);
    bad |= nfail > 0;
    nchecked += d.n;
    nrec++;
    free(d.v);
    free(f.v);
  }
  fclose(fd);
  fclose(ff);
  if (nrec == 0) {
    fprintf(stderr, "made_kernels_compare: %s: no records\n", argv[1]);
    return 2;
  }
  printf("made_kernels_compare: %d records, %lld elements: %s\n", nrec, nchecked,
         bad ? "FAILED" : "all within tolerance");
  return bad ? 1 : 0;
}
