/* Private to src/flow: float exp/log/log1p/sqrt as inline polynomials (Cephes expf/logf, ~1 ulp)
 * for the float library's element loops.  libm calls do not vectorise (and sqrtf keeps an errno
 * branch); these do, which is most of the speed of the RQS, MAF and tanh element passes.  The
 * double library uses libm (it serves the finite-difference tests, where exactness matters). */
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cnflow/core.h"

#if !CNF_REAL_IS_DOUBLE
static inline float cnf_fm_bits_to_float(int32_t i) {
  float f;
  memcpy(&f, &i, sizeof f);
  return f;
}
static inline int32_t cnf_fm_float_to_bits(float f) {
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return i;
}

/* exp for v <= 88.  Below -87 the result is clamped to e^-87 ~ 1.6e-38 (no subnormals); every
 * use adds it to O(1) quantities. */
static inline float cnf_fm_exp(float v) {
  v = v < -87.0f ? -87.0f : (v > 88.0f ? 88.0f : v);
  /* n = round(v / ln2) by the 1.5 * 2^23 trick (exact for |n| < 2^22, no rounding-mode call) */
  const float shift = 12582912.0f;
  const float n = (v * 1.44269504088896341f + shift) - shift;
  /* NaN input (a non-finite parameter upstream) passes the clamp and stays NaN through r and
   * p; the exponent bits must still come from a defined conversion ((int32_t)NaN is UB) */
  const float n_exp = n == n ? n : 0.0f;
  const float r = (v - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * cnf_fm_bits_to_float(((int32_t)n_exp + 127) << 23);
}

/* log(v) for every float: the polynomial covers positive normal v; subnormals are scaled by
 * 2^23 first, and the special cases come out as libm's (log 0 = -inf, log +inf = +inf, NaN for
 * v < 0 or NaN), so an underflowed or invalid quantity surfaces instead of a finite value.
 * Selects, not branches: the loops still vectorise. */
static inline float cnf_fm_log_normal(float v);
static inline float cnf_fm_log(float v) {
  const int subnormal = v < 1.17549435e-38f; /* also 0 and negatives: scaled, then replaced */
  const float r = cnf_fm_log_normal(subnormal ? v * 8388608.0f : v);
  const float rs = subnormal ? r - 15.9423851528f : r; /* 23 ln 2 */
  const float pos = v == INFINITY ? INFINITY : rs;
  return v > 0.0f ? pos : (v == 0.0f ? -INFINITY : NAN);
}

/* log for positive normal v (the Cephes polynomial). */
static inline float cnf_fm_log_normal(float v) {
  const int32_t bits = cnf_fm_float_to_bits(v);
  float e = (float)(((bits >> 23) & 0xff) - 126);
  const float m = cnf_fm_bits_to_float((bits & 0x007fffff) | 0x3f000000); /* v = m 2^e, m in [0.5, 1) */
  const int small = m < 0.707106781186547524f;
  const float e1 = e - 1.0f, f2 = m + m - 1.0f, f1 = m - 1.0f;
  e = small ? e1 : e;
  const float f = small ? f2 : f1;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return (f + y) + 0.693359375f * e;
}

/* log(1 + v) for v > -1, accurate for small v: log(w) v / (w - 1) with w = fl(1 + v)
 * (Goldberg).  Both branches computed, then selected: a conditional division would block
 * vectorising. */
static inline float cnf_fm_log1p(float v) {
  const float w = 1.0f + v;
  const float d = w - 1.0f;
  const float r = cnf_fm_log(w) * (v / (d == 0.0f ? 1.0f : d));
  return d == 0.0f ? v : r;
}

/* sqrt for v >= 0 (normal or 0), within 1.5 ulp: the reciprocal root from the classic
 * bit-level guess and two Newton steps (relative error 1e-5), then one correction of
 * s = v y. */
static inline float cnf_fm_sqrt(float v) {
  float y = cnf_fm_bits_to_float(0x5f3759df - (cnf_fm_float_to_bits(v) >> 1));
  const float h = 0.5f * v;
  y = y * (1.5f - h * y * y);
  y = y * (1.5f - h * y * y);
  const float s = v * y;
  return s + 0.5f * y * (v - s * s);
}
#endif
