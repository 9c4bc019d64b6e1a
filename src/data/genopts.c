/* Generator option tables seen generically (the seed and event-count options the writer owns,
 * "name=value" provenance text) and the contiguous train/val/test split. */
#include "cnflow/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const cnf_split_names[CNF_N_SPLITS] = {"train", "val", "test"};

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_integer_option(const cnf_option *o) {
  return o->type == CNF_OPT_INT || o->type == CNF_OPT_INT64;
}

const cnf_option *cnf_gen_seed_option(const cnf_generator *gen) {
  for (int i = 0; i < gen->n_options; i++) {
    const cnf_option *o = &gen->options[i];
    if (is_integer_option(o) && (strcmp(o->name, "seed") == 0 || ends_with(o->name, "_seed")))
      return o;
  }
  return NULL;
}

const cnf_option *cnf_gen_nevents_option(const cnf_generator *gen) {
  for (int i = 0; i < gen->n_options; i++) {
    const cnf_option *o = &gen->options[i];
    if (is_integer_option(o) &&
        (strcmp(o->name, "n") == 0 || strcmp(o->name, "n_events") == 0 ||
         strcmp(o->name, "nevents") == 0 || ends_with(o->name, "_n_events")))
      return o;
  }
  return NULL;
}

int64_t cnf_option_get_int64(const cnf_option *o, const void *opts) {
  const char *base = (const char *)opts + o->offset;
  if (o->type == CNF_OPT_INT64) {
    int64_t v;
    memcpy(&v, base, sizeof v);
    return v;
  }
  int v;
  memcpy(&v, base, sizeof v);
  return v;
}

int cnf_option_set_int64(const cnf_option *o, void *opts, int64_t value) {
  char *base = (char *)opts + o->offset;
  if (o->type == CNF_OPT_INT64) {
    memcpy(base, &value, sizeof value);
    return 0;
  }
  if (o->type != CNF_OPT_INT)
    return cnf_error_set(CNF_ERR_ARG, "option -%s is not an integer option", o->name);
  if (value < -2147483647LL - 1 || value > 2147483647LL)
    return cnf_error_set(CNF_ERR_ARG, "option -%s: %lld does not fit an int", o->name,
                         (long long)value);
  int v = (int)value;
  memcpy(base, &v, sizeof v);
  return 0;
}

int cnf_option_format(const cnf_option *o, const void *opts, char *buf, size_t len) {
  const char *base = (const char *)opts + o->offset;
  int n = -1;
  switch (o->type) {
  case CNF_OPT_INT:
  case CNF_OPT_INT64:
    n = snprintf(buf, len, "%s=%lld", o->name, (long long)cnf_option_get_int64(o, opts));
    break;
  case CNF_OPT_REAL: {
    double v;
    memcpy(&v, base, sizeof v);
    n = snprintf(buf, len, "%s=%.17g", o->name, v);
    break;
  }
  case CNF_OPT_BOOL: {
    int v;
    memcpy(&v, base, sizeof v);
    n = snprintf(buf, len, "%s=%s", o->name, v ? "true" : "false");
    break;
  }
  case CNF_OPT_STRING:
    n = snprintf(buf, len, "%s=%.*s", o->name, CNF_OPT_STRLEN, base);
    break;
  }
  if (n < 0 || (size_t)n >= len)
    return cnf_error_set(CNF_ERR_ARG, "option -%s: value text too long", o->name);
  return n;
}

char *cnf_gen_options_string(const cnf_generator *gen, const void *opts) {
  size_t cap = 1, used = 0;
  for (int i = 0; i < gen->n_options; i++)
    cap += strlen(gen->options[i].name) + CNF_OPT_STRLEN + 32;
  char *s = cnf_malloc(cap);
  if (!s)
    return NULL;
  s[0] = '\0';
  for (int i = 0; i < gen->n_options; i++) {
    int n = cnf_option_format(&gen->options[i], opts, s + used, cap - used);
    if (n < 0) {
      free(s);
      return NULL;
    }
    used += (size_t)n;
    s[used++] = '\n';
    s[used] = '\0';
  }
  return s;
}

int cnf_data_split_ranges(uint64_t n, const double fractions[3], uint64_t first[3],
                          uint64_t count[3]) {
  double sum = 0;
  for (int k = 0; k < 3; k++) {
    if (!(fractions[k] >= 0.0 && fractions[k] <= 1.0))
      return cnf_error_set(CNF_ERR_ARG, "split fraction %s = %g is not in [0, 1]",
                           cnf_split_names[k], fractions[k]);
    sum += fractions[k];
  }
  if (fabs(sum - 1.0) > 1e-6)
    return cnf_error_set(CNF_ERR_ARG, "split fractions %g,%g,%g do not sum to 1", fractions[0],
                         fractions[1], fractions[2]);
  uint64_t lo = 0;
  double cum = 0;
  for (int k = 0; k < 3; k++) {
    cum += fractions[k];
    uint64_t hi = k == 2 ? n : (uint64_t)floor((double)n * cum + 0.5);
    if (hi > n)
      hi = n;
    if (hi < lo)
      hi = lo;
    first[k] = lo;
    count[k] = hi - lo;
    lo = hi;
  }
  return 0;
}

int cnf_data_parse_fractions(const char *s, double fractions[3]) {
  const char *p = s;
  for (int k = 0; k < 3; k++) {
    char *end;
    fractions[k] = strtod(p, &end);
    if (end == p || (k < 2 && *end != ',') || (k == 2 && *end != '\0'))
      return cnf_error_set(CNF_ERR_ARG,
                           "split fractions '%s': expected three numbers 'train,val,test'", s);
    p = end + 1;
  }
  uint64_t first[3], count[3];
  return cnf_data_split_ranges(0, fractions, first, count);
}

int cnf_data_split_index(const char *name) {
  for (int k = 0; k < CNF_N_SPLITS; k++)
    if (strcmp(name, cnf_split_names[k]) == 0)
      return k;
  return cnf_error_set(CNF_ERR_ARG, "unknown split '%s' (valid: train, val, test, all)", name);
}
