/* Learning-rate schedules (see include/cnflow/optim.h for the formulas and their sources). */
#include "cnflow/optim.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const char *const kind_names[CNF_SCHED_KIND_COUNT] = {
    [CNF_SCHED_CONSTANT] = "constant", [CNF_SCHED_POLY] = "poly",
    [CNF_SCHED_COSINE] = "cosine",     [CNF_SCHED_ONECYCLE] = "onecycle",
    [CNF_SCHED_MULTISTEP] = "multistep",
};

const char *cnf_schedule_kind_name(cnf_schedule_kind kind) {
  if ((int)kind < 0 || kind >= CNF_SCHED_KIND_COUNT)
    return "unknown";
  return kind_names[kind];
}

int cnf_schedule_kind_from_name(const char *name) {
  for (int k = 0; name && k < CNF_SCHED_KIND_COUNT; k++)
    if (strcmp(name, kind_names[k]) == 0)
      return k;
  return -1;
}

cnf_schedule_conf cnf_schedule_conf_default(cnf_schedule_kind kind) {
  cnf_schedule_conf c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.lr = 1e-3;
  c.steps_per_epoch = 1;
  c.lr_end = 1e-5;
  c.power = 0.5;
  c.t_mult = 1;
  c.eta_min = 0.0;
  c.pct_start = 0.3;
  c.div_factor = 25.0;
  c.final_div_factor = 1e4;
  c.base_momentum = 0.85;
  c.max_momentum = 0.95;
  c.gamma = 0.5;
  c.plateau_factor = 0.5;
  c.plateau_threshold = 1e-4;
  return c;
}

int cnf_schedule_init(cnf_schedule *s, const cnf_schedule_conf *conf) {
  memset(s, 0, sizeof *s);
  const cnf_schedule_conf *c = conf;
  if ((int)c->kind < 0 || c->kind >= CNF_SCHED_KIND_COUNT)
    return cnf_error_set(CNF_ERR_ARG, "schedule: unknown kind %d", (int)c->kind);
  const char *name = kind_names[c->kind];
  if (!(c->lr > 0) || !isfinite(c->lr))
    return cnf_error_set(CNF_ERR_ARG, "schedule %s: lr = %g must be > 0", name, c->lr);
  if (c->steps_per_epoch < 1)
    return cnf_error_set(CNF_ERR_ARG, "schedule %s: steps_per_epoch = %lld must be >= 1", name,
                         (long long)c->steps_per_epoch);
  switch (c->kind) {
  case CNF_SCHED_POLY:
    if (c->decay_steps < 1 || !(c->power > 0) || !(c->lr_end >= 0))
      return cnf_error_set(CNF_ERR_ARG,
                           "schedule poly: need decay_steps >= 1 (%lld), power > 0 (%g), "
                           "lr_end >= 0 (%g)",
                           (long long)c->decay_steps, c->power, c->lr_end);
    break;
  case CNF_SCHED_COSINE:
    if (c->t0_steps < 1 || c->t_mult < 1 || !(c->eta_min >= 0))
      return cnf_error_set(CNF_ERR_ARG,
                           "schedule cosine: need t0_steps >= 1 (%lld), t_mult >= 1 (%d), "
                           "eta_min >= 0 (%g)",
                           (long long)c->t0_steps, c->t_mult, c->eta_min);
    break;
  case CNF_SCHED_ONECYCLE:
    if (c->total_steps < 2 || !(c->pct_start > 0 && c->pct_start < 1) ||
        !(c->div_factor > 0) || !(c->final_div_factor > 0))
      return cnf_error_set(CNF_ERR_ARG,
                           "schedule onecycle: need total_steps >= 2 (%lld), pct_start in (0,1) "
                           "(%g), div factors > 0 (%g, %g)",
                           (long long)c->total_steps, c->pct_start, c->div_factor,
                           c->final_div_factor);
    /* torch requires the warm-up phase to have a positive length */
    if (!(c->pct_start * (double)c->total_steps - 1.0 > 0))
      return cnf_error_set(CNF_ERR_ARG,
                           "schedule onecycle: pct_start * total_steps = %g leaves no warm-up "
                           "step",
                           c->pct_start * (double)c->total_steps);
    break;
  case CNF_SCHED_MULTISTEP:
    if (c->n_milestones < 0 || c->n_milestones > CNF_SCHED_MAX_MILESTONES || !(c->gamma > 0))
      return cnf_error_set(CNF_ERR_ARG,
                           "schedule multistep: need 0..%d milestones (%d) and gamma > 0 (%g)",
                           CNF_SCHED_MAX_MILESTONES, c->n_milestones, c->gamma);
    for (int i = 1; i < c->n_milestones; i++)
      if (c->milestones[i] < c->milestones[i - 1])
        return cnf_error_set(CNF_ERR_ARG, "schedule multistep: milestones must be ascending");
    break;
  default: break;
  }
  if (c->plateau_patience < 0 || c->early_stop_patience < 0)
    return cnf_error_set(CNF_ERR_ARG, "schedule %s: patience values must be >= 0", name);
  if (c->plateau_patience > 0 &&
      (!(c->plateau_factor > 0 && c->plateau_factor < 1) || !(c->plateau_threshold >= 0) ||
       !(c->min_lr >= 0)))
    return cnf_error_set(CNF_ERR_ARG,
                         "schedule %s: plateau factor %g must be in (0, 1), threshold %g and "
                         "min_lr %g >= 0",
                         name, c->plateau_factor, c->plateau_threshold, c->min_lr);
  s->conf = *c;
  s->plateau_scale = 1.0;
  s->plateau_best = INFINITY;
  s->best_loss = INFINITY;
  s->best_epoch = -1;
  return 0;
}

/* torch _annealing_cos: from start (pct 0) to end (pct 1) along half a cosine */
static double anneal_cos(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1.0);
}

/* torch OneCycleLR phase logic (two phases) for a value going a -> b -> c */
static double onecycle_value(const cnf_schedule_conf *c, int64_t step, double a, double b,
                             double cval) {
  double end1 = c->pct_start * (double)c->total_steps - 1.0;
  double end2 = (double)c->total_steps - 1.0;
  double s = (double)step;
  if (s <= end1)
    return anneal_cos(a, b, s / end1);
  return anneal_cos(b, cval, (s - end1) / (end2 - end1));
}

double cnf_schedule_lr(const cnf_schedule *s, int64_t step) {
  const cnf_schedule_conf *c = &s->conf;
  const double peak = c->lr * s->plateau_scale;
  if (step < 0)
    step = 0;
  switch (c->kind) {
  case CNF_SCHED_POLY: {
    double lr_end = c->lr_end * s->plateau_scale;
    double frac = (double)(step < c->decay_steps ? step : c->decay_steps) / c->decay_steps;
    return (peak - lr_end) * pow(1.0 - frac, c->power) + lr_end;
  }
  case CNF_SCHED_COSINE: {
    int64_t t_i = c->t0_steps, t_cur = step;
    double len = (double)t_i; /* length of the cycle holding the step */
    if (c->t_mult == 1) {
      t_cur = step % t_i;
    } else {
      while (t_cur >= t_i) {
        t_cur -= t_i;
        if (t_i > INT64_MAX / c->t_mult) { /* the next cycle outlasts any int64 step */
          len = (double)t_i * c->t_mult;
          break;
        }
        t_i *= c->t_mult;
        len = (double)t_i;
      }
    }
    return c->eta_min + (peak - c->eta_min) * (1.0 + cos(M_PI * (double)t_cur / len)) / 2.0;
  }
  case CNF_SCHED_ONECYCLE: {
    double initial = peak / c->div_factor, final = initial / c->final_div_factor;
    return onecycle_value(c, step, initial, peak, final);
  }
  case CNF_SCHED_MULTISTEP: {
    int64_t epoch = step / c->steps_per_epoch;
    double lr = peak;
    for (int i = 0; i < c->n_milestones; i++)
      if (c->milestones[i] <= epoch)
        lr *= c->gamma;
    return lr;
  }
  default: return peak;
  }
}

double cnf_schedule_beta1(const cnf_schedule *s, int64_t step, double beta1_default) {
  const cnf_schedule_conf *c = &s->conf;
  if (c->kind != CNF_SCHED_ONECYCLE || (c->base_momentum == 0 && c->max_momentum == 0))
    return beta1_default;
  /* momentum moves opposite to the LR: max -> base while the LR warms up, then back */
  return onecycle_value(c, step < 0 ? 0 : step, c->max_momentum, c->base_momentum,
                        c->max_momentum);
}

int cnf_schedule_epoch_end(cnf_schedule *s, double val_loss) {
  const cnf_schedule_conf *c = &s->conf;
  /* early stopping / model selection: a strictly lower loss is a new best */
  s->improved = val_loss < s->best_loss;
  if (s->improved) {
    s->best_loss = val_loss;
    s->best_epoch = s->epoch;
    s->epochs_since_best = 0;
  } else {
    s->epochs_since_best++;
  }
  /* torch ReduceLROnPlateau(mode min, threshold_mode rel, cooldown 0) */
  if (c->plateau_patience > 0) {
    if (val_loss < s->plateau_best * (1.0 - c->plateau_threshold)) {
      s->plateau_best = val_loss;
      s->plateau_bad_epochs = 0;
    } else {
      s->plateau_bad_epochs++;
    }
    if (s->plateau_bad_epochs > c->plateau_patience) {
      double old_peak = c->lr * s->plateau_scale;
      double new_peak = fmax(old_peak * c->plateau_factor, c->min_lr);
      if (old_peak - new_peak > 1e-8) /* torch skips changes below its eps = 1e-8 */
        s->plateau_scale = new_peak / c->lr;
      s->plateau_bad_epochs = 0;
    }
  }
  s->epoch++;
  return c->early_stop_patience > 0 && s->epochs_since_best >= c->early_stop_patience;
}
