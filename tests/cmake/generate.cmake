# `cnflow generate` through the real binary and mpiexec (data layer: src/data, cmd_generate.c).
set(CNFLOW_GEN_ENV "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE}")

# byte-identical files with 1, 2 and 3 ranks (uneven blocks, several batches per rank)
add_test(NAME generate_rank_identical_testgen
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_rank_identical.sh $<TARGET_FILE:cnflow>
                 testgen -n 20011 -batch 777 -seed 5)
set_tests_properties(generate_rank_identical_testgen PROPERTIES
                     ENVIRONMENT "${CNFLOW_GEN_ENV}" PROCESSORS 2 TIMEOUT 120
                     PASS_REGULAR_EXPRESSION "PASS: testgen byte-identical")

# bad invocations: non-zero exit, one error line, nothing left on disk
function(cnflow_generate_error_test name nranks regex)
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_cli_error.sh ${nranks} "${regex}"
                   ${name}.h5 $<TARGET_FILE:cnflow> generate ${ARGN})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${CNFLOW_GEN_ENV}" PROCESSORS 2
                       TIMEOUT 60 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endfunction()
cnflow_generate_error_test(generate_error_negative_n 1 "-n must be >= 0"
                           testgen -n -5 -o generate_error_negative_n.h5)
cnflow_generate_error_test(generate_error_unknown_generator 1 "unknown generator 'nope' \\(valid: .*testgen\\)"
                           nope -o generate_error_unknown_generator.h5)
cnflow_generate_error_test(generate_error_no_generator 1 "usage: cnflow generate <generator>"
                           -n 10)
cnflow_generate_error_test(generate_error_split_sum 1 "do not sum to 1"
                           testgen -split_fractions 0.5,0.6,0.1 -o generate_error_split_sum.h5)
cnflow_generate_error_test(generate_error_split_syntax 1 "expected three numbers"
                           testgen -split_fractions 0.9,0.1 -o generate_error_split_syntax.h5)
cnflow_generate_error_test(generate_error_bad_option 1 "testgen_sigma and -testgen_cut must be > 0"
                           testgen -testgen_sigma -1 -o generate_error_bad_option.h5)
# failures in the middle of a 2-rank run, on one rank only: shared error, files removed
cnflow_generate_error_test(generate_error_event_2ranks 2 "injected failure at event 1500"
                           testgen -n 2000 -batch 100 -testgen_fail_event 1500
                           -o generate_error_event_2ranks.h5)
cnflow_generate_error_test(generate_error_setup_2ranks 2 "injected setup failure"
                           testgen -n 2000 -testgen_fail_setup 5 -o generate_error_setup_2ranks.h5)
cnflow_generate_error_test(generate_error_bad_dir 1 "cannot create '/nonexistent_dir/x.h5'"
                           testgen -n 10 -o /nonexistent_dir/x.h5)

# h5py reads what 2 ranks wrote
cnflow_mpi_test(generate_testgen_2ranks 2 $<TARGET_FILE:cnflow> generate testgen -n 4321 -seed 11
                -o generate_testgen_2ranks.h5)
set_tests_properties(generate_testgen_2ranks PROPERTIES FIXTURES_SETUP generate_testgen_file
                     PASS_REGULAR_EXPRESSION "wrote generate_testgen_2ranks.h5: 4321 rows")
add_test(NAME generate_h5py_read
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_SOURCE_DIR}/tests/check_testgen_h5py.py
                 generate_testgen_2ranks.h5 4321 11)
set_tests_properties(generate_h5py_read PROPERTIES FIXTURES_REQUIRED generate_testgen_file
                     ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 60
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
add_test(NAME generate_testgen_cleanup
         COMMAND ${CMAKE_COMMAND} -E rm -f generate_testgen_2ranks.h5)
set_tests_properties(generate_testgen_cleanup PROPERTIES FIXTURES_CLEANUP generate_testgen_file
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})

# -help lists the generic options and every option of the generator's table
add_test(NAME generate_help_lists_options
         COMMAND $<TARGET_FILE:cnflow> generate testgen -help)
set_tests_properties(generate_help_lists_options PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}"
                     TIMEOUT 60
                     PASS_REGULAR_EXPRESSION "-split_fractions.*-testgen_sigma.*-testgen_fail_setup")
