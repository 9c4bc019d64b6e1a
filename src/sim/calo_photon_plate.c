/* calo-photon, upstream stages (physics-spec.md 2.3 steps 2-6): conversion in the iron plate,
 * Bethe-Heitler pair sharing and opening angle, bremsstrahlung energy loss with the radiated
 * photon(s), ionisation, Highland multiple scattering, and the exact helix in the 4 T field
 * from the plate to the calorimeter face.  Every particle reaching z = 0 is showered at once. */
#include "calo_photon.h"

#include <gsl/gsl_randist.h>
#include <math.h>

/* brem photons may re-convert, whose pairs radiate again: bound the recursion (energies shrink
 * geometrically, so 8 levels never cut anything that matters) */
#define PHOTON_MAX_LEVEL 8

double photon_pair_fraction(cnf_rng *r) {
  for (;;) { /* accept-reject against the flat envelope: efficiency 7/9 */
    double x = cnf_rng_uniform(r);
    if (cnf_rng_uniform(r) < 1.0 - (4.0 / 3.0) * x * (1.0 - x))
      return x;
  }
}

double photon_brem_survival(void *gsl, double t_x0) {
  if (t_x0 <= 0.0)
    return 1.0;
  /* gsl_ran_gamma uses Gamma(k+1) U^(1/k) for k < 1, the same trick as ActsFatras */
  double y = gsl_ran_gamma((gsl_rng *)gsl, t_x0 / M_LN2, 1.0);
  return exp(-y);
}

double photon_highland(double p_gev, double t_x0) {
  if (t_x0 <= 0.0 || p_gev <= 0.0)
    return 0.0;
  double corr = 1.0 + 0.038 * log(t_x0);
  return corr > 0.0 ? 0.0136 / p_gev * sqrt(t_x0) * corr : 0.0;
}

int photon_helix_to_face(const double pos[3], const double dir[3], double p_gev, int q,
                         double field_t, double pos_out[3], double dir_out[3]) {
  double u_yz = sqrt(dir[1] * dir[1] + dir[2] * dir[2]);
  double radius_mm = 1000.0 * p_gev * u_yz / (0.299792458 * field_t);
  if (q == 0 || field_t == 0.0 || !(radius_mm < INFINITY)) { /* straight line */
    double s = -pos[2] / dir[2];
    for (int k = 0; k < 3; k++) {
      pos_out[k] = pos[k] + s * dir[k];
      dir_out[k] = dir[k];
    }
    pos_out[2] = 0.0;
    return 0;
  }
  /* projected circle in (y, z): dz/ds = cos(phi), dy/ds = sin(phi), dphi/ds = kappa */
  double kappa = q / radius_mm;
  double phi0 = atan2(dir[1], dir[2]);
  double sin1 = sin(phi0) + kappa * (0.0 - pos[2]);
  if (fabs(sin1) >= 1.0)
    return 1;
  double phi1 = asin(sin1); /* first crossing: the track still moves towards +z */
  double s_perp = (phi1 - phi0) / kappa;
  pos_out[0] = pos[0] + s_perp * dir[0] / u_yz;
  pos_out[1] = pos[1] + (cos(phi0) - cos(phi1)) / kappa;
  pos_out[2] = 0.0;
  dir_out[0] = dir[0];
  dir_out[1] = u_yz * sin1;
  dir_out[2] = u_yz * cos(phi1);
  return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */
/* Rotate unit vector d by polar angle theta about itself, at azimuth phi around it. */
static void rotate_dir(const double d[3], double theta, double phi, double out[3]) {
  /* e1 = normalise(a x d) with a the axis least aligned with d; e2 = d x e1 */
  double a[3] = {1, 0, 0};
  if (fabs(d[0]) > 0.9) {
    a[0] = 0;
    a[1] = 1;
  }
  double e1[3] = {a[1] * d[2] - a[2] * d[1], a[2] * d[0] - a[0] * d[2], a[0] * d[1] - a[1] * d[0]};
  double n1 = sqrt(e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2]);
  for (int k = 0; k < 3; k++)
    e1[k] /= n1;
  double e2[3] = {d[1] * e1[2] - d[2] * e1[1], d[2] * e1[0] - d[0] * e1[2],
                  d[0] * e1[1] - d[1] * e1[0]};
  double st = sin(theta), ct = cos(theta), sp = sin(phi), cp = cos(phi);
  for (int k = 0; k < 3; k++)
    out[k] = ct * d[k] + st * (cp * e1[k] + sp * e2[k]);
}

static void shower_particle(photon_event_ctx *ctx, const photon_particle *p) {
  cnf_rng rs; /* every shower has its own sub-stream: spots never shift the upstream draws */
  cnf_rng_init(&rs, ctx->seed, ctx->index, ctx->next_sub++);
  photon_shower(ctx->o, ctx->st, &rs, p, ctx->image, ctx->tally);
}

/* A photon flying straight from `pos` to the calorimeter face. */
static void photon_to_face(photon_event_ctx *ctx, double e, const double pos[3],
                           const double dir[3]) {
  photon_particle p = {.e = e, .q = 0};
  double s = -pos[2] / dir[2];
  for (int k = 0; k < 3; k++) {
    p.pos[k] = pos[k] + s * dir[k];
    p.dir[k] = dir[k];
  }
  p.pos[2] = 0.0;
  shower_particle(ctx, &p);
}

static int plate_photon(photon_event_ctx *ctx, double e, const double pos[3], const double dir[3],
                        int level, photon_upstream_truth *truth);

/* An e+- of energy e_in created at `pos` inside the plate, moving along `dir`: brem, ionisation,
 * multiple scattering to the back face, then the helix to z = 0 and its shower.  Returns the
 * energy (GeV) and impact y (mm) at the face through e_face / y_face (0 if lost). */
static int plate_lepton(photon_event_ctx *ctx, double e_in, int q, const double pos[3],
                        const double dir[3], int level, double *e_face, double *y_face) {
  const photon_opts *o = ctx->o;
  photon_tally *tally = ctx->tally;
  *e_face = 0.0;
  *y_face = 0.0;
  if (dir[2] <= 0.05) { /* emitted sideways (only for keV leptons): absorbed in the iron */
    tally->plate += e_in;
    return 0;
  }
  double path = (ctx->z_out - pos[2]) / dir[2]; /* mm */
  double t = path / o->x0_fe;

  double e_out = e_in * photon_brem_survival(ctx->gsl, t);
  double k = e_in - e_out;
  if (level == 0)
    tally->brem += k;
  if (k > 0.0) {
    double mid[3];
    for (int c = 0; c < 3; c++)
      mid[c] = pos[c] + dir[c] * path * o->brem_position;
    /* stick-breaking of k into brem_split photons: normalised exponentials (uniform simplex) */
    double w[64], wsum = 0.0;
    int n = o->brem_split;
    for (int j = 0; j < n; j++)
      wsum += (w[j] = -log(cnf_rng_uniform(ctx->r)));
    for (int j = 0; j < n; j++) {
      double kj = k * w[j] / wsum;
      if (o->brem_reconvert && level + 1 < PHOTON_MAX_LEVEL)
        CNF_CALL(plate_photon(ctx, kj, mid, dir, level + 1, NULL));
      else
        photon_to_face(ctx, kj, mid, dir);
    }
  }

  double ion = o->dedx_fe * (path / 10.0) * 1e-3; /* MeV/cm * cm -> GeV */
  if (e_out <= ion) {
    tally->plate += e_out;
    return 0;
  }
  e_out -= ion;
  tally->plate += ion;

  /* Highland with correlated (offset, angle) per projection (PDG eq. for y_plane, theta_plane) */
  double p_ms = ctx->st->ms_mode == 0 ? sqrt(e_in * e_out) : ctx->st->ms_mode == 1 ? e_in : e_out;
  double theta0 = photon_highland(p_ms, t);
  double exit[3], slope[2];
  for (int c = 0; c < 3; c++)
    exit[c] = pos[c] + dir[c] * path;
  for (int c = 0; c < 2; c++) {
    double z1 = cnf_rng_normal(ctx->r), z2 = cnf_rng_normal(ctx->r);
    exit[c] += path * theta0 * (z1 / sqrt(12.0) + z2 / 2.0);
    slope[c] = dir[c] / dir[2] + z2 * theta0;
  }
  double norm = sqrt(slope[0] * slope[0] + slope[1] * slope[1] + 1.0);
  double udir[3] = {slope[0] / norm, slope[1] / norm, 1.0 / norm};

  photon_particle p = {.e = e_out, .q = q};
  if (photon_helix_to_face(exit, udir, e_out, q, o->field, p.pos, p.dir)) {
    tally->curl += e_out;
    return 0;
  }
  *e_face = e_out;
  *y_face = p.pos[1];
  shower_particle(ctx, &p);
  return 0;
}

/* A photon at `pos` (inside or at the front of the plate) moving along `dir`. */
static int plate_photon(photon_event_ctx *ctx, double e, const double pos[3], const double dir[3],
                        int level, photon_upstream_truth *truth) {
  const photon_opts *o = ctx->o;
  double lambda = 9.0 / 7.0 * o->x0_fe;
  if (o->conv_tsai) /* Tsai cross sections as fitted in ActsFatras PhotonConversion.hpp */
    lambda /= 1.0 - (-0.00702 + 0.0769 * pow(e, -0.608));
  double to_back = (ctx->z_out - pos[2]) / dir[2];
  double s = -lambda * log(cnf_rng_uniform(ctx->r));
  if (s >= to_back) {
    photon_to_face(ctx, e, pos, dir);
    return 0;
  }
  double conv[3];
  for (int c = 0; c < 3; c++)
    conv[c] = pos[c] + s * dir[c];
  double x = photon_pair_fraction(ctx->r);
  double e_lep[2] = {x * e, (1.0 - x) * e}; /* e-, e+ */
  double phi = 2.0 * M_PI * cnf_rng_uniform(ctx->r);
  double e_face[2], y_face[2];
  for (int l = 0; l < 2; l++) {
    /* Urban/Geant4 opening angle: theta = (m_e/E) u, u = -1.6 ln(U1 U2), / 3 with prob. 0.75 */
    double u = -1.6 * log(cnf_rng_uniform(ctx->r) * cnf_rng_uniform(ctx->r));
    if (cnf_rng_uniform(ctx->r) < 0.75)
      u /= 3.0;
    double theta = fmin(M_PI, PHOTON_ME_GEV / fmax(e_lep[l], 1e-12) * u);
    double d[3];
    rotate_dir(dir, theta, phi + l * M_PI, d); /* back-to-back azimuths */
    CNF_CALL(plate_lepton(ctx, e_lep[l], l == 0 ? -1 : +1, conv, d, level, &e_face[l], &y_face[l]));
  }
  if (truth) {
    truth->converted = 1;
    truth->depth_x0 = (conv[2] - ctx->z_in) / o->x0_fe;
    truth->x_minus = x;
    truth->e_minus = e_face[0];
    truth->e_plus = e_face[1];
    truth->y_minus = y_face[0];
    truth->y_plus = y_face[1];
  }
  return 0;
}

int photon_upstream(photon_event_ctx *ctx, double e, const double pos[3],
                    photon_upstream_truth *truth) {
  const double dir[3] = {0.0, 0.0, 1.0}; /* shot perpendicular to the calorimeter */
  *truth = (photon_upstream_truth){.converted = 0, .depth_x0 = -1.0, .x_minus = -1.0};
  return plate_photon(ctx, e, pos, dir, 0, truth);
}
