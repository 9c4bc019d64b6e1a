# `cnflow fit` (joint material fit, src/infer/fit*.c, cmd_fit.c) through the real binary.
add_test(NAME fit_ranks_and_errors
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_fit.sh $<TARGET_FILE:cnflow>)
set_tests_properties(fit_ranks_and_errors PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: fit")
