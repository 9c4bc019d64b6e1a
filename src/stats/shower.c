/* ParaFlow shower shapes of one calorimeter image (include/cnflow/stats.h, "shower shapes"):
 * energies, brightest crystals, width, R9 and the DBSCAN cluster count. */
#include "cnflow/stats.h"

#include <math.h>
#include <stdlib.h>

void cnf_shower_conf_default(cnf_shower_conf *c) {
  c->cluster_e_min = 400.0; /* MeV, the calo-photon image unit (ParaFlow's threshold=400) */
  c->cluster_eps = 1.5;     /* crystals: the 8 neighbours, not the next-but-one */
  c->cluster_min_pts = 1;   /* every crystal above threshold is a core point */
  c->r9_clip_edges = 0;
}

/* DBSCAN over the grid points with on[i] set.  Points are integer (row, col), so the eps
 * neighbourhood is a fixed list of offsets: O(points x offsets) instead of all pairs.
 * Distances are compared as sqrt(dr^2 + dc^2) <= eps, as sklearn/cuML do, so that eps given as
 * an exact distance (1, sqrt 2, 2) behaves identically.  Returns the cluster count or < 0. */
static int shower_dbscan(const unsigned char *on, int rows, int cols, double eps, int min_pts) {
  const size_t ncell = (size_t)rows * (size_t)cols;
  const int span = rows > cols ? rows : cols; /* no offset beyond the image is useful */
  const int reach = floor(eps) >= (double)span ? span : (int)floor(eps);
  const int side = 2 * reach + 1;
  int *offs = cnf_malloc((size_t)side * (size_t)side * 2 * sizeof *offs);
  int *count = cnf_malloc(ncell * sizeof *count), *label = cnf_malloc(ncell * sizeof *label);
  size_t *queue = cnf_malloc(ncell * sizeof *queue);
  if (!offs || !count || !label || !queue) {
    free(offs);
    free(count);
    free(label);
    free(queue);
    return CNF_ERR_NOMEM;
  }
  int noff = 0;
  for (int dr = -reach; dr <= reach; dr++)
    for (int dc = -reach; dc <= reach; dc++)
      if (sqrt((double)(dr * dr + dc * dc)) <= eps) {
        offs[2 * noff] = dr;
        offs[2 * noff + 1] = dc;
        noff++;
      }
  /* neighbour counts, the point itself included (offset (0, 0) is in the list) */
  for (size_t i = 0; i < ncell; i++) {
    count[i] = 0;
    label[i] = -1;
    if (!on[i])
      continue;
    int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
    for (int o = 0; o < noff; o++) {
      int rr = r + offs[2 * o], cc = c + offs[2 * o + 1];
      if (rr >= 0 && rr < rows && cc >= 0 && cc < cols && on[(size_t)rr * cols + cc])
        count[i]++;
    }
  }
  /* Grow a cluster from every unlabelled core point: every point within eps of a core point
   * joins; only core points extend the cluster further (border points do not). */
  int n_clusters = 0;
  for (size_t seed = 0; seed < ncell; seed++) {
    if (!on[seed] || count[seed] < min_pts || label[seed] >= 0)
      continue;
    size_t head = 0, tail = 0;
    label[seed] = n_clusters;
    queue[tail++] = seed;
    while (head < tail) {
      size_t p = queue[head++];
      int r = (int)(p / (size_t)cols), c = (int)(p % (size_t)cols);
      for (int o = 0; o < noff; o++) {
        int rr = r + offs[2 * o], cc = c + offs[2 * o + 1];
        if (rr < 0 || rr >= rows || cc < 0 || cc >= cols)
          continue;
        size_t q = (size_t)rr * cols + cc;
        if (!on[q] || label[q] >= 0)
          continue;
        label[q] = n_clusters;
        if (count[q] >= min_pts)
          queue[tail++] = q;
      }
    }
    n_clusters++;
  }
  free(offs);
  free(count);
  free(label);
  free(queue);
  return n_clusters;
}

int cnf_shower_shape_compute(const double *img, int rows, int cols, const cnf_shower_conf *conf,
                             cnf_shower_shape *s) {
  if (rows < 1 || cols < 1)
    return cnf_error_set(CNF_ERR_ARG, "shower shape: image of %d x %d crystals", rows, cols);
  if (!isfinite(conf->cluster_eps) || !(conf->cluster_eps > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "shower shape: DBSCAN eps = %g must be > 0",
                         conf->cluster_eps);
  if (conf->cluster_min_pts < 1)
    return cnf_error_set(CNF_ERR_ARG, "shower shape: DBSCAN min_pts = %d must be >= 1",
                         conf->cluster_min_pts);
  if (!isfinite(conf->cluster_e_min))
    return cnf_error_set(CNF_ERR_ARG, "shower shape: cluster energy threshold is not finite");
  const size_t ncell = (size_t)rows * (size_t)cols;
  size_t imax = 0;
  double tot = 0.0, sr = 0.0, sc = 0.0;
  for (size_t i = 0; i < ncell; i++) {
    if (!isfinite(img[i]))
      return cnf_error_set(CNF_ERR_NUMERIC, "shower shape: crystal (%zu, %zu) is not finite",
                           i / (size_t)cols, i % (size_t)cols);
    if (img[i] > img[imax])
      imax = i;
    tot += img[i];
    sr += img[i] * (double)(i / (size_t)cols);
    sc += img[i] * (double)(i % (size_t)cols);
  }
  s->e_total = tot;
  s->e_max1 = img[imax];
  s->e_max2 = NAN;
  for (size_t i = 0; i < ncell; i++)
    if (i != imax && !(img[i] <= s->e_max2)) /* first one, then any larger (NaN start) */
      s->e_max2 = img[i];

  const int r0 = (int)(imax / (size_t)cols), c0 = (int)(imax % (size_t)cols);
  if (tot > 0.0) {
    const double rb = sr / tot, cb = sc / tot;
    double w = 0.0;
    for (size_t i = 0; i < ncell; i++) {
      double dr = (double)(i / (size_t)cols) - rb, dc = (double)(i % (size_t)cols) - cb;
      w += img[i] * sqrt(dr * dr + dc * dc);
    }
    s->width = w / tot;
    double e3 = 0.0;
    for (int dr = -1; dr <= 1; dr++)
      for (int dc = -1; dc <= 1; dc++) {
        int r = r0 + dr, c = c0 + dc;
        if (conf->r9_clip_edges) { /* np.clip(index, 0, size - 1) */
          r = r < 0 ? 0 : r >= rows ? rows - 1 : r;
          c = c < 0 ? 0 : c >= cols ? cols - 1 : c;
        } else if (r < 0 || r >= rows || c < 0 || c >= cols) {
          continue;
        }
        e3 += img[(size_t)r * cols + c];
      }
    s->r9 = e3 / tot;
  } else {
    s->width = NAN;
    s->r9 = NAN;
  }

  unsigned char *on = cnf_malloc(ncell);
  if (!on)
    return CNF_ERR_NOMEM;
  for (size_t i = 0; i < ncell; i++)
    on[i] = img[i] > conf->cluster_e_min;
  int nc = shower_dbscan(on, rows, cols, conf->cluster_eps, conf->cluster_min_pts);
  free(on);
  if (nc < 0)
    return nc;
  s->n_clusters = nc;
  return 0;
}
