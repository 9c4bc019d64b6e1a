# `cnflow scan` through the real binary and mpiexec (src/infer, cmd_scan.c).
add_test(NAME scan_ranks_identical_and_errors
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_scan.sh $<TARGET_FILE:cnflow>)
set_tests_properties(scan_ranks_identical_and_errors PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: scan")
