# `cnflow bias` through the real binary and mpiexec (src/stats/bias.c, cmd_bias.c):
# bias_fixture writes scan.h5 files with serial HDF5, check_bias.sh runs the command on 1 and
# 2 ranks, recomputes the non-bootstrap columns with numpy and checks the bad-input errors.
add_executable(bias_fixture ${CMAKE_CURRENT_SOURCE_DIR}/bias_fixture.c)
target_link_libraries(bias_fixture PRIVATE cnflow_lib)
add_test(NAME bias_ranks_identical_and_errors
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_bias.sh $<TARGET_FILE:cnflow>
                 $<TARGET_FILE:bias_fixture>)
set_tests_properties(bias_ranks_identical_and_errors PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: bias")
