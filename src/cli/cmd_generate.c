/* `cnflow generate <name>`: run a generator (sim.h) through the parallel writer (data.h).
 * Generic options (-o, -seed, -n, -split_fractions, -batch, -progress) plus every option of the
 * generator's table, read from PETSc options by name so -help lists them all. */
#include "cli.h"
#include "cnflow/data.h"
#include "cnflow/sim.h"

#include <stdlib.h>
#include <string.h>

static const cnf_generator *find_generator(const char *name) {
  if (strcmp(name, cnf_gen_testgen.name) == 0)
    return &cnf_gen_testgen;
  return cnf_generator_find(name);
}

static void generator_names(char *buf, size_t len) {
  buf[0] = '\0';
  const cnf_generator *g;
  for (int i = 0; (g = cnf_generator_at(i)) != NULL; i++) {
    strncat(buf, g->name, len - strlen(buf) - 1);
    strncat(buf, ", ", len - strlen(buf) - 1);
  }
  strncat(buf, cnf_gen_testgen.name, len - strlen(buf) - 1);
}

/* Read one table option from the PETSc database into opts (default: its current value). */
static int read_table_option(const cnf_option *o, void *opts) {
  char *field = (char *)opts + o->offset;
  switch (o->type) {
  case CNF_OPT_INT: {
    int v;
    memcpy(&v, field, sizeof v);
    CNF_CALL(cli_get_int(o->name, v, o->help, &v));
    memcpy(field, &v, sizeof v);
    return 0;
  }
  case CNF_OPT_INT64: {
    int64_t v;
    memcpy(&v, field, sizeof v);
    CNF_CALL(cli_get_int64(o->name, v, o->help, &v));
    memcpy(field, &v, sizeof v);
    return 0;
  }
  case CNF_OPT_REAL: {
    double v;
    memcpy(&v, field, sizeof v);
    CNF_CALL(cli_get_real(o->name, v, o->help, &v));
    memcpy(field, &v, sizeof v);
    return 0;
  }
  case CNF_OPT_BOOL: {
    int v;
    memcpy(&v, field, sizeof v);
    CNF_CALL(cli_get_bool(o->name, v, o->help, &v));
    memcpy(field, &v, sizeof v);
    return 0;
  }
  case CNF_OPT_STRING: {
    char def[CNF_OPT_STRLEN];
    memcpy(def, field, CNF_OPT_STRLEN);
    def[CNF_OPT_STRLEN - 1] = '\0';
    return cli_get_string(o->name, def, o->help, field, CNF_OPT_STRLEN);
  }
  }
  return cnf_error_set(CNF_ERR_STATE, "option -%s has an unknown type", o->name);
}

/* Generic options into cfg, then the generator's own table into opts. */
static int read_options(const cnf_generator *gen, void *opts, cnf_data_gen_config *cfg,
                        char *path, size_t path_len) {
  const cnf_option *seed_opt = cnf_gen_seed_option(gen), *n_opt = cnf_gen_nevents_option(gen);
  char def_path[300], fractions[128];
  snprintf(def_path, sizeof def_path, "%s.h5", gen->name);
  CNF_CALL(cli_get_string("o", def_path, "output HDF5 file", path, path_len));
  int64_t seed_def = seed_opt ? cnf_option_get_int64(seed_opt, opts) : 1;
  CNF_CALL(cli_get_int64("seed", seed_def, "random seed (event i uses stream (seed, i))",
                         &cfg->seed));
  int64_t n_def = n_opt ? cnf_option_get_int64(n_opt, opts) : 0;
  CNF_CALL(cli_get_int64("n", n_def, "number of events (0: the generator's default)",
                         &cfg->n_events));
  CNF_CALL(cli_get_string("split_fractions", "0.8,0.1,0.1",
                          "train,val,test fractions (contiguous row ranges)", fractions,
                          sizeof fractions));
  CNF_CALL(cli_get_int64("batch", cfg->batch_rows,
                         "rows per rank between collective writes (0: ~8 MiB)", &cfg->batch_rows));
  CNF_CALL(cli_get_real("progress", cfg->progress_interval_s,
                        "seconds between progress lines (0: none)", &cfg->progress_interval_s));
  for (int i = 0; i < gen->n_options; i++)
    if (&gen->options[i] != seed_opt && &gen->options[i] != n_opt)
      CNF_CALL(read_table_option(&gen->options[i], opts));
  if (cli_help_requested())
    return 0;
  if (cfg->n_events < 0)
    return cnf_error_set(CNF_ERR_ARG, "-n must be >= 0, got %lld", (long long)cfg->n_events);
  if (cfg->batch_rows < 0)
    return cnf_error_set(CNF_ERR_ARG, "-batch must be >= 0, got %lld", (long long)cfg->batch_rows);
  CNF_CALL(cnf_data_parse_fractions(fractions, cfg->split_fractions));
  cfg->path = path;
  return 0;
}

static void print_summary(const cnf_data_gen_config *cfg, const cnf_data_gen_report *r, int size) {
  double s = r->seconds > 0 ? r->seconds : 1e-9, mb = (double)r->bytes / 1e6;
  cnf_log_info("wrote %s: %llu rows, %.2f MB in %.3f s on %d rank(s): %.4g rows/s "
               "(%.4g rows/s per rank), %.4g MB/s; event() %.3f s, writes %.3f s",
               cfg->path, (unsigned long long)r->n_events, mb, r->seconds, size,
               (double)r->n_events / s, (double)r->n_events / s / size, mb / s, r->seconds_event,
               r->seconds_write);
  if (r->independent_writes > 0 && cnf_log_rank() == 0)
    cnf_log_warn("%llu writes fell back to independent I/O (slow on parallel file systems)",
                 (unsigned long long)r->independent_writes);
}

int cmd_generate(int argc, char **argv) {
  char names[256];
  generator_names(names, sizeof names);
  if (argc < 2 || argv[1][0] == '-') {
    if (cli_help_requested()) {
      char text[512];
      snprintf(text, sizeof text,
               "generate a dataset into parallel HDF5 (generators: %s);\n"
               "`cnflow generate <generator> -help` lists the generator's options",
               names);
      cli_help_header("cnflow generate <generator> [options]", text);
      return 0;
    }
    return cnf_error_set(CNF_ERR_ARG, "usage: cnflow generate <generator> [options] (generators: %s)",
                         names);
  }
  const cnf_generator *gen = find_generator(argv[1]);
  if (!gen)
    return cnf_error_set(CNF_ERR_ARG, "unknown generator '%s' (valid: %s)", argv[1], names);
  if (!gen->setup || !gen->opts_default || gen->opts_size == 0)
    return cnf_error_set(CNF_ERR_STATE, "generator '%s' is not implemented yet", gen->name);

  char usage[128];
  snprintf(usage, sizeof usage, "cnflow generate %s [options]", gen->name);
  cli_help_header(usage, gen->help);
  void *opts = cnf_calloc(1, gen->opts_size);
  if (!opts)
    return CNF_ERR_NOMEM;
  gen->opts_default(opts);
  cnf_data_gen_config cfg;
  cnf_data_gen_config_default(&cfg);
  char path[4096];
  int rc = read_options(gen, opts, &cfg, path, sizeof path);
  if (rc == 0)
    rc = cli_check_unused_options();
  if (rc == 0 && !cli_help_requested()) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    cnf_data_gen_report report;
    rc = cnf_data_generate(gen, opts, &cfg, MPI_COMM_WORLD, &report);
    if (rc == 0)
      print_summary(&cfg, &report, size);
  }
  free(opts);
  return rc;
}
