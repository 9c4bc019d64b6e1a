# `cnflow sample` through the real binary and mpiexec (src/infer/sample.c, cmd_sample.c).
add_test(NAME sample_ranks_identical_and_errors
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_sample.sh $<TARGET_FILE:cnflow>)
set_tests_properties(sample_ranks_identical_and_errors PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: sample")
