/* cnflow: conditional normalizing flows for detector simulation and calibration.
 * main reads as a table of contents: init MPI/PETSc -> common options -> run subcommand ->
 * report -> finalize.  Every option comes from PETSc's options database. */
#include "cli.h"
#include "cnflow/data.h"

#include <errno.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const cnf_command commands[] = {
    {"demo", "train a flow on the built-in toy density and print its held-out NLL", cmd_demo, 1},
    {"generate", "generate a dataset (hgg | calo-photon | calo-pion) into parallel HDF5", cmd_generate, 1},
    {"train", "train a flow (or an ensemble) on a dataset file, with checkpoint/resume", cmd_train, 1},
    {"scan", "per-shower maximum-likelihood calibration over a trained ensemble", cmd_scan, 1},
    {"sample", "draw events from a trained ensemble at a dataset's conditions (samples.h5)", cmd_sample, 1},
    {"evaluate", "metrics of generated vs reference events (samples.h5 -> metrics.h5)", cmd_evaluate, 1},
    {"regress", "direct-regression baseline: predict E_inc with a regression ensemble (scan.h5 layout)", cmd_regress, 1},
    {"bias", "bias and resolution table (KDE mode of E_pred/E_true) from scan files", cmd_bias, 1},
    {"fit", "joint maximum-likelihood fit of conditions shared by a set of showers (material d, b)", cmd_fit, 1},
    {"bench", "benchmark the flow engine against the PyTorch peer", cmd_bench, 1},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(void) {
  printf("cnflow %s (%s): conditional normalizing flows for detector response and calibration\n"
         "usage: cnflow <command> [options]    (cnflow <command> -help lists its options)\n"
         "commands:\n", CNFLOW_VERSION, cnf_git_rev());
  for (int i = 0; i < n_commands; i++)
    printf("  %-10s %s\n", commands[i].name, commands[i].summary);
  printf("common options: -options_file FILE, -blas_threads N (1), -log_level 0|1|2, "
         "-watchdog SECONDS (0 = off)\n");
}

/* PETSc reports a missing or unreadable -options_file from inside PetscInitialize, as a
 * multi-line trace followed by its configure dump.  Rank 0 checks the files first (PETSc also
 * reads them on rank 0 only) so that the user gets one line instead. */
static int check_options_files(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-options_file") != 0)
      continue;
    if (i + 1 >= argc || argv[i + 1][0] == '-')
      return cnf_error_set(CNF_ERR_ARG, "-options_file needs a file name");
    FILE *fp = fopen(argv[i + 1], "r");
    if (!fp)
      return cnf_error_set(CNF_ERR_IO, "cannot read options file '%s': %s", argv[i + 1],
                           strerror(errno));
    fclose(fp);
  }
  return 0;
}

/* PetscFinalize leaves MPI to us because main() initialised it. */
static int finish(int rc) {
  cnf_watchdog_stop(); /* the shutdown below has no beats and may wait for slow ranks */
  if (cnf_data_hdf5_unusable()) {
    /* HDF5 would crash closing a file whose close already failed (full disk): the error is
     * printed and the temporary output removed, so leave without HDF5's or MPI's shutdown.
     * _exit, since HDF5 also shuts down from an atexit handler. */
    fflush(stdout);
    fflush(stderr);
    _exit(rc ? rc : 1);
  }
  PetscFinalize();
  MPI_Finalize();
  return rc;
}

int main(int argc, char **argv) {
  /* find the subcommand before PETSc sees argv (PETSc ignores non-dash arguments) */
  const cnf_command *cmd = NULL;
  int cmd_index = -1;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-')
      continue;
    for (int k = 0; k < n_commands; k++)
      if (strcmp(argv[i], commands[k].name) == 0) {
        cmd = &commands[k];
        cmd_index = i;
      }
    break;
  }
  /* PETSc's own -help would print its whole option list: rename it, we print our own. */
  static char help_flag[] = "-cnflow_help";
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "-help") == 0 || strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
      argv[i] = help_flag;
  /* MPI first (the thread level PETSc would request), so that the options files can be
   * checked on rank 0 before PETSc reads them */
  int provided = 0;
  /* Open MPI's shared-memory transport copies large messages with process_vm_readv (CMA) by
   * default; on the VMs measured here each such system call is so slow that the gradient
   * allreduce of a 0.2 M-parameter flow takes 185 us with it and 90 us without (8 M parameters:
   * 6.2 vs 4.8 ms), which is most of the gap to linear scaling.  A value set by the user or
   * the site (environment, mca-params.conf via this variable) wins. */
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
  /* OMPIO's "lockedfile" shared-file-pointer component probes every file it opens by creating
   * and removing <file>.locktest.<rank> beside it: a read of a dataset would write into the
   * dataset's directory (and fail in a read-only one).  cnflow never uses shared file pointers. */
  setenv("OMPI_MCA_sharedfp", "^lockedfile", 0);
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "cnflow: error: MPI initialisation failed\n");
    return 1;
  }
  /* MPI errors are returned, not fatal, so every call's status is real and a failure becomes
   * cnflow's one-line error (communicators split later inherit the handler) */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  cnf_log_set_rank(rank, size);
  int rc = rank == 0 ? check_options_files(argc, argv) : 0;
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rc < 0) {
    if (rank == 0)
      fprintf(stderr, "cnflow: error: %s\n", cnf_error_message());
    MPI_Finalize();
    return 1;
  }
  if (PetscInitialize(&argc, &argv, NULL, NULL)) {
    fprintf(stderr, "cnflow: error: PETSc initialisation failed\n");
    MPI_Finalize();
    return 1;
  }

  if (!cmd) {
    if (rank == 0) {
      usage();
      if (argc > 1 && !cli_help_requested()) {
        const char *bad = NULL;
        for (int i = 1; i < argc; i++)
          if (argv[i][0] != '-') {
            bad = argv[i];
            break;
          }
        const char *later = NULL; /* a command after options: say where it goes */
        for (int i = 1; i < argc && !later; i++)
          for (int k = 0; k < n_commands; k++)
            if (strcmp(argv[i], commands[k].name) == 0)
              later = commands[k].name;
        if (later)
          fprintf(stderr, "cnflow: error: the command comes first: cnflow %s [options]\n", later);
        else if (bad)
          fprintf(stderr, "cnflow: error: unknown command '%s'\n", bad);
        else
          fprintf(stderr, "cnflow: error: no command given\n");
        rc = 1;
      } else if (argc <= 1) {
        rc = 1;
      }
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return finish(rc);
  }

  int collective = 1; /* option errors of the common setup are the same on every rank */
  if (cli_help_requested()) {
    /* the command prints its usage header and options first; the common options follow */
    rc = cmd->run(argc - cmd_index, argv + cmd_index);
    if (rc == 0)
      rc = cli_common_setup();
  } else {
    rc = cli_common_setup();
    if (rc == 0) {
      collective = cmd->collective_errors;
      rc = cmd->run(argc - cmd_index, argv + cmd_index);
    }
  }
  if (rc < 0 && collective) {
    if (rank == 0)
      fprintf(stderr, "cnflow: error: %s\n", cnf_error_message()[0] ? cnf_error_message()
                                                                   : cnf_status_string(rc));
    /* 75 = EX_TEMPFAIL: stopped by a signal with a checkpoint written (SLURM requeue) */
    return finish(rc == CNF_ERR_INTERRUPTED ? 75 : 1);
  }
  if (rc < 0) {
    fprintf(stderr, "cnflow: error: %s\n", cnf_error_message()[0] ? cnf_error_message()
                                                                 : cnf_status_string(rc));
    fflush(stderr);
    if (size > 1)
      MPI_Abort(MPI_COMM_WORLD, 1);
    return finish(1);
  }
  return finish(0);
}
