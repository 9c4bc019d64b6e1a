/* Bounded minimisation through PETSc/TAO for the deterministic problems of cnflow (per-shower
 * maximum likelihood, fits): a thin layer that hides Vec/Tao handling behind plain arrays and
 * turns PETSc error codes into cnf_status values with a message. */
#include "cnflow/optim.h"

#include <math.h>
#include <petsctao.h>
#include <string.h>

typedef struct tao_ctx {
  cnf_objective_fg fg;
  void *ctx;
  int n;
  int user_rc; /* first failure of the user's objective (TAO only sees PETSC_ERR_USER) */
} tao_ctx;

static PetscErrorCode tao_fg(Tao tao, Vec X, PetscReal *f, Vec G, void *p) {
  (void)tao;
  tao_ctx *t = p;
  const PetscScalar *x;
  PetscScalar *g;
  double xv[16], fv = 0, gv[16];
  PetscCall(VecGetArrayRead(X, &x));
  for (int i = 0; i < t->n; i++)
    xv[i] = (double)x[i];
  PetscCall(VecRestoreArrayRead(X, &x));
  int rc = t->fg(t->ctx, t->n, xv, &fv, gv);
  if (rc == 0 && !isfinite(fv))
    rc = cnf_error_set(CNF_ERR_NUMERIC, "objective is %g at x[0] = %g", fv, xv[0]);
  if (rc < 0) {
    if (t->user_rc == 0)
      t->user_rc = rc;
    return PETSC_ERR_USER;
  }
  *f = (PetscReal)fv;
  PetscCall(VecGetArray(G, &g));
  for (int i = 0; i < t->n; i++)
    g[i] = (PetscScalar)gv[i];
  PetscCall(VecRestoreArray(G, &g));
  return 0;
}

#define TAO_TRY(call)                                                                             \
  do {                                                                                            \
    if ((call) != 0) {                                                                            \
      rc = t.user_rc ? t.user_rc : cnf_error_set(CNF_ERR_NUMERIC, "TAO failed in %s", #call);     \
      goto done;                                                                                  \
    }                                                                                             \
  } while (0)

int cnf_tao_minimize_bounded(const cnf_tao_conf *conf, int n, cnf_objective_fg fg, void *ctx,
                             const double *lo, const double *hi, double *x, double *fmin,
                             int *reason) {
  if (n < 1 || n > 16)
    return cnf_error_set(CNF_ERR_ARG, "cnf_tao_minimize_bounded: %d variables (1..16)", n);
  for (int i = 0; i < n; i++)
    if (!(lo[i] <= hi[i]) || !isfinite(lo[i]) || !isfinite(hi[i]))
      return cnf_error_set(CNF_ERR_ARG, "cnf_tao_minimize_bounded: bad bounds [%g, %g]", lo[i],
                           hi[i]);
  tao_ctx t = {fg, ctx, n, 0};
  Tao tao = NULL;
  Vec X = NULL, XL = NULL, XU = NULL;
  int rc = 0;
  /* errors come back as return codes with our own message, not as PETSc tracebacks */
  PetscPushErrorHandler(PetscReturnErrorHandler, NULL);
  TAO_TRY(VecCreateSeq(PETSC_COMM_SELF, n, &X));
  TAO_TRY(VecDuplicate(X, &XL));
  TAO_TRY(VecDuplicate(X, &XU));
  {
    PetscScalar *px, *pl, *pu;
    TAO_TRY(VecGetArray(X, &px));
    TAO_TRY(VecGetArray(XL, &pl));
    TAO_TRY(VecGetArray(XU, &pu));
    for (int i = 0; i < n; i++) {
      pl[i] = lo[i];
      pu[i] = hi[i];
      px[i] = x[i] < lo[i] ? lo[i] : x[i] > hi[i] ? hi[i] : x[i];
    }
    TAO_TRY(VecRestoreArray(X, &px));
    TAO_TRY(VecRestoreArray(XL, &pl));
    TAO_TRY(VecRestoreArray(XU, &pu));
  }
  TAO_TRY(TaoCreate(PETSC_COMM_SELF, &tao));
  TAO_TRY(TaoSetType(tao, conf && conf->type ? conf->type : TAOBLMVM));
  TAO_TRY(TaoSetSolution(tao, X));
  TAO_TRY(TaoSetObjectiveAndGradient(tao, NULL, tao_fg, &t));
  TAO_TRY(TaoSetVariableBounds(tao, XL, XU));
  TAO_TRY(TaoSetTolerances(tao, conf ? conf->gatol : 1e-8, conf ? conf->grtol : 0, 0));
  if (conf && conf->max_it > 0)
    TAO_TRY(TaoSetMaximumIterations(tao, conf->max_it));
  if (conf && conf->prefix)
    TAO_TRY(TaoSetOptionsPrefix(tao, conf->prefix));
  TAO_TRY(TaoSetFromOptions(tao));
  TAO_TRY(TaoSolve(tao));
  {
    TaoConvergedReason why;
    PetscReal f = 0;
    TAO_TRY(TaoGetConvergedReason(tao, &why));
    TAO_TRY(TaoGetSolutionStatus(tao, NULL, &f, NULL, NULL, NULL, NULL));
    const PetscScalar *px;
    TAO_TRY(VecGetArrayRead(X, &px));
    for (int i = 0; i < n; i++)
      x[i] = (double)px[i];
    TAO_TRY(VecRestoreArrayRead(X, &px));
    if (fmin)
      *fmin = (double)f;
    if (reason)
      *reason = (int)why;
  }
done:
  TaoDestroy(&tao);
  VecDestroy(&X);
  VecDestroy(&XL);
  VecDestroy(&XU);
  PetscPopErrorHandler();
  return rc;
}
