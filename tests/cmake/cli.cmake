# What a user sees from `cnflow` itself (src/cli/main.c, options.c): usage, unknown commands,
# -help, -options_file, and malformed common or command options.  Every error case checks the
# exit status AND that stderr is exactly one "cnflow: error: ..." line (tests/cli_expect.sh).
set(CLI_TEST_ENV ${CNFLOW_TEST_ENV}) # with the sanitizer options of tests/CMakeLists.txt

# cli_test(<name> <checks...> -- <cnflow arguments...>): one run of the binary
function(cli_test name)
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli_expect.sh ${ARGN})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${CLI_TEST_ENV}" TIMEOUT 60
                       WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                       PASS_REGULAR_EXPRESSION "^PASS")
endfunction()
set(CLI_BIN $<TARGET_FILE:cnflow>)
set(CLI_ERROR_1 --exit 1 --stderr-lines 1)

# usage: no command lists the commands on stdout and fails; an unknown one adds one error line
cli_test(cli_no_command --exit 1 --stderr-lines 0
         --stdout "^usage: cnflow <command>" --stdout "^  generate " --stdout "^  demo "
         -- ${CLI_BIN})
cli_test(cli_unknown_command ${CLI_ERROR_1}
         --stderr "^cnflow: error: unknown command 'frobnicate'$" --stdout "^usage: cnflow"
         -- ${CLI_BIN} frobnicate -n 5)

# a command's -help lists its options (and the common ones), exits 0 and does no work
cli_test(cli_generate_help --exit 0 --stderr-lines 0
         --stdout "^usage: cnflow generate calo-pion" --stdout "^  -pion_energy_mode +<uniform>"
         --stdout "^  -pion_emin +<1>" --stdout "^  -blas_threads +<1>"
         --absent cli_help.h5
         -- ${CLI_BIN} generate calo-pion -help -o cli_help.h5 -n 10)

# -options_file: values reach the generator, later command-line options win (h5py check)
add_test(NAME cli_options_file
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli_options_file.sh ${CLI_BIN} ${CNFLOW_PYTHON})
set_tests_properties(cli_options_file PROPERTIES ENVIRONMENT "${CLI_TEST_ENV}" TIMEOUT 120
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: -options_file")

# a missing or unnamed options file: one line from main() instead of PETSc's trace
cli_test(cli_options_file_missing ${CLI_ERROR_1}
         --stderr "^cnflow: error: cannot read options file 'cli_no_such.opts': No such file"
         --absent cli_missing.h5
         -- ${CLI_BIN} generate calo-pion -o cli_missing.h5 -n 10 -options_file cli_no_such.opts)
cli_test(cli_options_file_no_name ${CLI_ERROR_1}
         --stderr "^cnflow: error: -options_file needs a file name$" --absent cli_noname.h5
         -- ${CLI_BIN} generate calo-pion -o cli_noname.h5 -n 10 -options_file)
# with 2 ranks rank 0 alone reports it (mpiexec adds its own lines)
cli_test(cli_options_file_missing_mpi2 --exit fail --error-lines 1
         --stderr "^cnflow: error: cannot read options file 'cli_no_such.opts'" --absent cli_missing2.h5
         -- ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe --bind-to none
         ${CLI_BIN} generate calo-pion -o cli_missing2.h5 -n 10 -options_file cli_no_such.opts)
set_tests_properties(cli_options_file_missing_mpi2 PROPERTIES PROCESSORS 2)

# malformed values: one line naming the option, exit 1, no output file
cli_test(cli_blas_threads_zero ${CLI_ERROR_1}
         --stderr "^cnflow: error: -blas_threads must be in \\[1, 256\\], got 0$"
         --absent cli_blas.h5
         -- ${CLI_BIN} generate calo-pion -o cli_blas.h5 -n 10 -blas_threads 0)
cli_test(cli_blas_threads_not_int ${CLI_ERROR_1}
         --stderr "^cnflow: error: option -blas_threads expects an integer, got '2.5'$"
         -- ${CLI_BIN} generate calo-pion -o cli_blas.h5 -n 10 -blas_threads 2.5)
cli_test(cli_real_nan ${CLI_ERROR_1}
         --stderr "^cnflow: error: option -pion_emin is NaN$" --absent cli_nan.h5
         -- ${CLI_BIN} generate calo-pion -o cli_nan.h5 -n 10 -pion_emin nan)
cli_test(cli_real_garbage ${CLI_ERROR_1}
         --stderr "^cnflow: error: option -pion_emin expects a real number, got '3GeV'$"
         --absent cli_garbage.h5
         -- ${CLI_BIN} generate calo-pion -o cli_garbage.h5 -n 10 -pion_emin 3GeV)
cli_test(cli_bool_garbage ${CLI_ERROR_1}
         --stderr "^cnflow: error: option -pion_sampling expects true/false, got 'maybe'$"
         --absent cli_bool.h5
         -- ${CLI_BIN} generate calo-pion -o cli_bool.h5 -n 10 -pion_sampling maybe)
cli_test(cli_int64_nan ${CLI_ERROR_1}
         --stderr "^cnflow: error: option -n expects an integer, got 'nan'$"
         --absent cli_n.h5
         -- ${CLI_BIN} generate calo-pion -o cli_n.h5 -n nan)

# a mistyped option must not run the job with defaults: one error line naming it, no output
cli_test(cli_unknown_option ${CLI_ERROR_1}
         --stderr "^cnflow: error: unknown option\\(s\\) for this command: -n_events"
         --absent cli_unknown_opt.h5
         -- ${CLI_BIN} generate calo-pion -o cli_unknown_opt.h5 -n_events 10)
# ... unless the user says an options file carries other commands' options too
cli_test(cli_unknown_option_ignored --exit 0 --stderr "ignoring unused option\\(s\\): -train_epochs"
         -- ${CLI_BIN} generate calo-pion -o cli_unknown_opt_ok.h5 -n 10 -train_epochs 3
         -ignore_unused_options)
# options before the command: say where the command goes
cli_test(cli_command_not_first ${CLI_ERROR_1}
         --stderr "^cnflow: error: the command comes first: cnflow generate \\[options\\]$"
         -- ${CLI_BIN} -log_level 2 generate calo-pion -n 10)
