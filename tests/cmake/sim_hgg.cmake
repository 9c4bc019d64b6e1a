# hgg (G1) through `cnflow generate`: byte-identical files with 1, 2 and 3 ranks (internal truth
# with several collective writes per rank, and LHEF truth where every rank parses the file and
# keeps its own block), and one-line errors for bad options.
set(CNFLOW_HGG_ENV "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE}")

add_test(NAME generate_rank_identical_hgg
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_rank_identical.sh $<TARGET_FILE:cnflow>
                 hgg -n 3001 -batch 256 -seed 7 -hgg_process ttH)
set_tests_properties(generate_rank_identical_hgg PROPERTIES ENVIRONMENT "${CNFLOW_HGG_ENV}"
                     PROCESSORS 2 TIMEOUT 300 PASS_REGULAR_EXPRESSION "PASS: hgg byte-identical")

add_test(NAME generate_rank_identical_hgg_lhef
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_rank_identical.sh $<TARGET_FILE:cnflow>
                 hgg -batch 1 -seed 3 -hgg_truth_lhef ${CMAKE_SOURCE_DIR}/tests/data/hgg_sample.lhe)
set_tests_properties(generate_rank_identical_hgg_lhef PROPERTIES ENVIRONMENT "${CNFLOW_HGG_ENV}"
                     PROCESSORS 2 TIMEOUT 300 PASS_REGULAR_EXPRESSION "PASS: hgg byte-identical")

# name nranks regex args...
function(cnflow_hgg_error_test name nranks regex)
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_cli_error.sh ${nranks} "${regex}"
                   ${name}.h5 $<TARGET_FILE:cnflow> generate hgg -o ${name}.h5 ${ARGN})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${CNFLOW_HGG_ENV}" PROCESSORS 2
                       TIMEOUT 60 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endfunction()
cnflow_hgg_error_test(generate_error_hgg_missing_lhef 2
                      "hgg: cannot open LHEF truth file '/nonexistent/events.lhe'"
                      -n 100 -hgg_truth_lhef /nonexistent/events.lhe)
cnflow_hgg_error_test(generate_error_hgg_process 1 "hgg: unknown -hgg_process 'qqH'"
                      -n 100 -hgg_process qqH)
cnflow_hgg_error_test(generate_error_hgg_mu_range 1 "hgg: pile-up range needs 0 <= mu_min"
                      -n 100 -hgg_mu_min -5)

# a 2-rank file read back with h5py: layout, units, reco = truth + target, and the rejected
# fractions finalize stored (counts summed over the ranks) against a recount from the file
cnflow_mpi_test(generate_hgg_2ranks 2 $<TARGET_FILE:cnflow> generate hgg -n 20000 -seed 4
                -progress 0 -o generate_hgg_2ranks.h5)
set_tests_properties(generate_hgg_2ranks PROPERTIES FIXTURES_SETUP generate_hgg_file
                     PASS_REGULAR_EXPRESSION "wrote generate_hgg_2ranks.h5: 20000 rows")
add_test(NAME generate_hgg_h5py_read
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_SOURCE_DIR}/tests/data/hgg_check_h5py.py
                 generate_hgg_2ranks.h5 20000)
set_tests_properties(generate_hgg_h5py_read PROPERTIES FIXTURES_REQUIRED generate_hgg_file
                     ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 60
                     PASS_REGULAR_EXPRESSION "PASS: hgg file"
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
add_test(NAME generate_hgg_cleanup COMMAND ${CMAKE_COMMAND} -E rm -f generate_hgg_2ranks.h5)
set_tests_properties(generate_hgg_cleanup PROPERTIES FIXTURES_CLEANUP generate_hgg_file
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
