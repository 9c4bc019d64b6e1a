/* Plain driver for the fuzz harnesses (builds without libFuzzer): runs every file named on the
 * command line, or every regular file in a named directory, through LLVMFuzzerTestOneInput
 * once.  A harness finding a bug aborts (or a sanitizer reports it), so a zero exit means every
 * input was handled.  Used by the fuzz_replay_* ctests. */
#include "fuzz_common.h"

#include <dirent.h>
#include <sys/stat.h>

static int run_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    fprintf(stderr, "fuzz driver: cannot open %s\n", path);
    return -1;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, fp)) > 0;) {
    n += got;
    if (n == cap) {
      uint8_t *b = realloc(buf, cap *= 2);
      if (!b)
        free(buf);
      buf = b;
    }
  }
  fclose(fp);
  if (!buf) {
    fprintf(stderr, "fuzz driver: out of memory reading %s\n", path);
    return -1;
  }
  /* an exact-size copy, so that ASan sees a read past the input's end */
  uint8_t *exact = malloc(n ? n : 1);
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  int files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "fuzz driver: no such file or directory: %s\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) < 0)
        return 1;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) {
      fprintf(stderr, "fuzz driver: cannot list %s\n", argv[i]);
      return 1;
    }
    for (struct dirent *e; (e = readdir(d));) {
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
      if (e->d_name[0] == '.' || stat(p, &st) != 0 || !S_ISREG(st.st_mode))
        continue;
      if (run_file(p) < 0)
        return 1;
      files++;
    }
    closedir(d);
  }
  printf("fuzz driver: %d input(s) handled\n", files);
  return 0;
}
