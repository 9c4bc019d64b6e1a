/* ParaFlow shower shapes (include/cnflow/stats.h, src/stats/shower.c) on hand-made images with
 * known answers: energies, width, R9 (both edge conventions) and DBSCAN cluster counts,
 * including cases where DBSCAN and plain connected components differ. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "cnflow/stats.h"

enum { ROWS = 16, COLS = 8 };

static void clear(double *img) { memset(img, 0, ROWS * COLS * sizeof *img); }
static void put(double *img, int r, int c, double e) { img[r * COLS + c] = e; }

static int clusters(const double *img, double e_min, double eps, int min_pts) {
  cnf_shower_conf conf;
  cnf_shower_conf_default(&conf);
  conf.cluster_e_min = e_min;
  conf.cluster_eps = eps;
  conf.cluster_min_pts = min_pts;
  cnf_shower_shape s;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  return s.n_clusters;
}

static void test_defaults(void **state) {
  cnf_shower_conf c;
  memset(&c, 0xff, sizeof c);
  cnf_shower_conf_default(&c);
  assert_true(c.cluster_e_min == 400.0 && c.cluster_eps == 1.5 && c.cluster_min_pts == 1);
  assert_int_equal(c.r9_clip_edges, 0);
}

static void test_dbscan_blobs_and_threshold(void **state) {
  double img[ROWS * COLS];
  clear(img);
  /* two 2x2 blobs, rows 2-3 and 9-10: 2 clusters */
  for (int r = 2; r <= 3; r++)
    for (int c = 3; c <= 4; c++) {
      put(img, r, c, 5000.0);
      put(img, r + 7, c, 3000.0);
    }
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 2);
  /* a chain of sub-threshold crystals between them changes nothing */
  for (int r = 4; r <= 8; r++)
    put(img, r, 3, 399.0);
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 2);
  /* exactly at the threshold is still below (E > e_min) */
  for (int r = 4; r <= 8; r++)
    put(img, r, 3, 400.0);
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 2);
  /* just above: the chain joins them */
  for (int r = 4; r <= 8; r++)
    put(img, r, 3, 401.0);
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 1);
  /* one gap in the chain (a missing crystal, the next one 2 rows away > 1.5) splits again */
  put(img, 6, 3, 0.0);
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 2);
  /* ...but eps = 2 bridges a one-crystal gap */
  assert_int_equal(clusters(img, 400.0, 2.0, 1), 1);
  /* nothing above threshold: 0 */
  assert_int_equal(clusters(img, 1e6, 1.5, 1), 0);
}

static void test_dbscan_diagonal(void **state) {
  double img[ROWS * COLS];
  clear(img);
  put(img, 5, 2, 1000.0);
  put(img, 6, 3, 1000.0); /* diagonal neighbour: distance sqrt 2 */
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 1);
  assert_int_equal(clusters(img, 400.0, sqrt(2.0), 1), 1); /* distance <= eps */
  assert_int_equal(clusters(img, 400.0, 1.0, 1), 2);       /* 4-neighbourhood only */
  /* a knight's move (distance sqrt 5 = 2.236) is not within 1.5 or 2, is within 2.3 */
  put(img, 6, 3, 0.0);
  put(img, 7, 3, 1000.0);
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 2);
  assert_int_equal(clusters(img, 400.0, 2.0, 1), 2);
  assert_int_equal(clusters(img, 400.0, 2.3, 1), 1);
  /* image edges: crystals in the corners are fine */
  clear(img);
  put(img, 0, 0, 1000.0);
  put(img, ROWS - 1, COLS - 1, 1000.0);
  put(img, 0, COLS - 1, 1000.0);
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 3);
}

static void test_dbscan_min_pts_noise(void **state) {
  double img[ROWS * COLS];
  clear(img);
  /* a 3x3 blob (centre has 9 neighbours, corners 4), an isolated crystal, a pair */
  for (int r = 1; r <= 3; r++)
    for (int c = 1; c <= 3; c++)
      put(img, r, c, 2000.0);
  put(img, 8, 6, 2000.0);
  put(img, 12, 1, 2000.0);
  put(img, 12, 2, 2000.0);
  assert_int_equal(clusters(img, 400.0, 1.5, 1), 3); /* every point is core */
  assert_int_equal(clusters(img, 400.0, 1.5, 2), 2); /* the single crystal is noise */
  assert_int_equal(clusters(img, 400.0, 1.5, 3), 1); /* the pair too */
  assert_int_equal(clusters(img, 400.0, 1.5, 9), 1); /* only the centre is core: still 1 */
  assert_int_equal(clusters(img, 400.0, 1.5, 10), 0);
  /* with eps = 1 the blob's centre has 5 neighbours, its edge-centres 4, its corners 3 */
  assert_int_equal(clusters(img, 400.0, 1.0, 5), 1);
  assert_int_equal(clusters(img, 400.0, 1.0, 6), 0);
}

static void test_dbscan_border_point_does_not_bridge(void **state) {
  /* row 5: crystals at cols 1..5, plus (6, 2) and (6, 4).  With eps = 1 and min_pts = 4 the
   * core points are (5, 2) and (5, 4) (4 neighbours each, themselves included); (5, 3) has 3 and
   * is a border point of both.  DBSCAN: 2 clusters (border points do not extend a cluster);
   * connected components of all points would give 1. */
  double img[ROWS * COLS];
  clear(img);
  for (int c = 1; c <= 5; c++)
    put(img, 5, c, 800.0);
  put(img, 6, 2, 800.0);
  put(img, 6, 4, 800.0);
  assert_int_equal(clusters(img, 400.0, 1.0, 4), 2);
  assert_int_equal(clusters(img, 400.0, 1.0, 3), 1); /* now (5, 3) is core and links them */
  assert_int_equal(clusters(img, 400.0, 1.0, 1), 1);
  /* a core chain through a border point's neighbour: add (4, 3) so (5, 3) has 4 -> core */
  put(img, 4, 3, 800.0);
  assert_int_equal(clusters(img, 400.0, 1.0, 4), 1);
}

static void test_energies_r9_width(void **state) {
  double img[ROWS * COLS];
  cnf_shower_conf conf;
  cnf_shower_conf_default(&conf);
  cnf_shower_shape s;
  /* centre 10 at (7, 4), ring of eight 1s, a far crystal 7 at (14, 0): R9 = 18 / 25 */
  clear(img);
  for (int dr = -1; dr <= 1; dr++)
    for (int dc = -1; dc <= 1; dc++)
      put(img, 7 + dr, 4 + dc, 1.0);
  put(img, 7, 4, 10.0);
  put(img, 14, 0, 7.0);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.e_total, 25.0, 1e-15, 0);
  assert_true(s.e_max1 == 10.0 && s.e_max2 == 7.0);
  assert_close(s.r9, 18.0 / 25.0, 1e-15, 0);
  /* width by hand: barycentre (row (18*7 + 7*14)/25, col (18*4 + 0)/25) */
  {
    double rb = (18.0 * 7 + 7.0 * 14) / 25.0, cb = 18.0 * 4 / 25.0, w = 0.0;
    for (int dr = -1; dr <= 1; dr++)
      for (int dc = -1; dc <= 1; dc++)
        w += (dr == 0 && dc == 0 ? 10.0 : 1.0) * hypot(7 + dr - rb, 4 + dc - cb);
    w += 7.0 * hypot(14 - rb, 0 - cb);
    assert_close(s.width, w / 25.0, 1e-14, 0);
  }
  /* two equal crystals two columns apart: barycentre midway, width 1; R9 = 1/2 */
  clear(img);
  put(img, 3, 1, 50.0);
  put(img, 3, 3, 50.0);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.width, 1.0, 1e-15, 0);
  assert_close(s.r9, 0.5, 1e-15, 0);
  assert_true(s.e_max1 == 50.0 && s.e_max2 == 50.0); /* a tie: the second equals the first */
  /* four corners of a 2x2-spaced square: width sqrt 2 */
  clear(img);
  put(img, 4, 2, 3.0);
  put(img, 4, 4, 3.0);
  put(img, 6, 2, 3.0);
  put(img, 6, 4, 3.0);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.width, sqrt(2.0), 1e-15, 0);
  /* E1 at (0, 0), E2 at (0, 3): width 6 E1 E2 / (E1 + E2)^2 */
  clear(img);
  put(img, 0, 0, 2.0);
  put(img, 0, 3, 5.0);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.width, 6.0 * 2 * 5 / 49.0, 1e-15, 0);
  /* one crystal: width 0, R9 1 */
  clear(img);
  put(img, 9, 5, 123.0);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_true(s.width == 0.0 && s.r9 == 1.0 && s.e_max2 == 0.0 && s.n_clusters == 0);
}

static void test_r9_on_the_edge(void **state) {
  /* maximum in the corner (0, 0): the 3x3 has 4 crystals inside; ParaFlow's np.clip visits
   * rows {0, 0, 1} x cols {0, 0, 1}: (0,0) x4, (0,1) x2, (1,0) x2, (1,1) x1 */
  double img[ROWS * COLS];
  clear(img);
  for (int i = 0; i < ROWS * COLS; i++)
    img[i] = 0.5;
  put(img, 0, 0, 20.0);
  put(img, 0, 1, 3.0);
  put(img, 1, 0, 2.0);
  put(img, 1, 1, 1.0);
  double tot = 20.0 + 3 + 2 + 1 + 0.5 * (ROWS * COLS - 4);
  cnf_shower_conf conf;
  cnf_shower_conf_default(&conf);
  cnf_shower_shape s;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.r9, 26.0 / tot, 1e-15, 0);
  conf.r9_clip_edges = 1;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.r9, (4 * 20.0 + 2 * 3.0 + 2 * 2.0 + 1.0) / tot, 1e-15, 0);
  /* an interior maximum: both conventions agree */
  put(img, 8, 4, 30.0);
  tot += 29.5;
  double inner = 30.0 + 8 * 0.5;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.r9, inner / tot, 1e-15, 0);
  conf.r9_clip_edges = 0;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_close(s.r9, inner / tot, 1e-15, 0);
  assert_true(s.e_max1 == 30.0 && s.e_max2 == 20.0);
}

static void test_empty_and_bad_input(void **state) {
  double img[ROWS * COLS];
  clear(img);
  cnf_shower_conf conf;
  cnf_shower_conf_default(&conf);
  cnf_shower_shape s;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_true(s.e_total == 0.0 && isnan(s.width) && isnan(s.r9) && s.n_clusters == 0);
  /* a 1x1 image has no second crystal */
  double one = 500.0;
  assert_int_equal(cnf_shower_shape_compute(&one, 1, 1, &conf, &s), 0);
  assert_true(isnan(s.e_max2) && s.r9 == 1.0 && s.n_clusters == 1);
  assert_int_equal(cnf_shower_shape_compute(img, 0, COLS, &conf, &s), CNF_ERR_ARG);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, -1, &conf, &s), CNF_ERR_ARG);
  conf.cluster_eps = 0.0;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), CNF_ERR_ARG);
  conf.cluster_eps = 1e300; /* huge but valid: everything within reach */
  put(img, 0, 0, 900.0);
  put(img, ROWS - 1, COLS - 1, 900.0);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), 0);
  assert_int_equal(s.n_clusters, 1);
  cnf_shower_conf_default(&conf);
  conf.cluster_min_pts = 0;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), CNF_ERR_ARG);
  cnf_shower_conf_default(&conf);
  conf.cluster_e_min = NAN;
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), CNF_ERR_ARG);
  cnf_shower_conf_default(&conf);
  put(img, 3, 3, INFINITY);
  assert_int_equal(cnf_shower_shape_compute(img, ROWS, COLS, &conf, &s), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "(3, 3)"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_dbscan_blobs_and_threshold),
      cmocka_unit_test(test_dbscan_diagonal),
      cmocka_unit_test(test_dbscan_min_pts_noise),
      cmocka_unit_test(test_dbscan_border_point_does_not_bridge),
      cmocka_unit_test(test_energies_r9_width),
      cmocka_unit_test(test_r9_on_the_edge),
      cmocka_unit_test(test_empty_and_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
