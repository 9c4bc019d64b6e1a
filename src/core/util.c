/* Small numeric helpers shared by every module. */
#include "cnflow/core.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

int cnf_all_finite(size_t n, const cnf_real *x) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return 0;
  return 1;
}

int cnf_all_finite_d(size_t n, const double *x) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return 0;
  return 1;
}

void cnf_partition(uint64_t total, int size, int rank, uint64_t *first, uint64_t *count) {
  uint64_t base = total / (uint64_t)size, rem = total % (uint64_t)size;
  uint64_t r = (uint64_t)rank;
  *count = base + (r < rem ? 1 : 0);
  *first = r * base + (r < rem ? r : rem);
}

int cnf_parse_int_list(const char *s, int *out, int max) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < INT_MIN || v > INT_MAX)
      return cnf_error_set(CNF_ERR_ARG, "cannot parse integer list '%s'", s);
    if (n >= max)
      return cnf_error_set(CNF_ERR_ARG, "integer list '%s' has more than %d entries", s, max);
    out[n++] = (int)v;
    p = end;
    if (*p == ',')
      p++;
    else if (*p)
      return cnf_error_set(CNF_ERR_ARG, "cannot parse integer list '%s'", s);
  }
  return n;
}

static int is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int cnf_mkdir_p(const char *dir) {
  char path[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof path)
    return cnf_error_set(CNF_ERR_ARG, "output directory name empty or too long (%zu)", n);
  memcpy(path, dir, n + 1);
  /* Create each prefix ending before a '/', then the whole path. */
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    char keep = path[i];
    path[i] = '\0';
    if (!is_dir(path) && mkdir(path, 0777) != 0 && errno != EEXIST) {
      int e = errno;
      return cnf_error_set(CNF_ERR_IO, "%s: cannot create the output directory (%s): %s", dir,
                           path, strerror(e));
    }
    if (!is_dir(path))
      return cnf_error_set(CNF_ERR_IO, "%s: cannot create the output directory: %s exists and "
                           "is not a directory", dir, path);
    path[i] = keep;
  }
  return 0;
}

int cnf_mkdir_parent(const char *file_path) {
  const char *slash = strrchr(file_path, '/');
  if (!slash || slash == file_path) /* a bare name, or a file in / */
    return 0;
  char dir[4096];
  size_t n = (size_t)(slash - file_path);
  if (n >= sizeof dir)
    return cnf_error_set(CNF_ERR_ARG, "output path too long (%zu)", strlen(file_path));
  memcpy(dir, file_path, n);
  dir[n] = '\0';
  return cnf_mkdir_p(dir);
}

int cnf_check_free_space(const char *path, uint64_t need_bytes) {
  char dir[4200];
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, sizeof dir, ".");
  } else if (slash == path) {
    snprintf(dir, sizeof dir, "/");
  } else {
    const size_t n = (size_t)(slash - path);
    if (n >= sizeof dir)
      return cnf_error_set(CNF_ERR_ARG, "output path too long (%zu)", strlen(path));
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  struct statvfs sv;
  if (statvfs(dir, &sv) != 0)
    return 0; /* not knowable here (the create reports a missing directory) */
  /* f_bavail, not f_bfree: the blocks reserved for root are not ours to count on */
  const uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
  if (avail < need_bytes)
    return cnf_error_set(CNF_ERR_IO, "%s: not enough space on the file system of '%s': the "
                         "file needs %.1f MB, %.1f MB are free", path, dir,
                         need_bytes / 1048576.0, avail / 1048576.0);
  return 0;
}
