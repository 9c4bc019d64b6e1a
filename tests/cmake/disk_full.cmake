# A full disk (a 1 MiB tmpfs, root only): every writer (generate, sample, evaluate, scan, scan
# -merge, regress, train checkpoints and model files) fails up front with one line, leaves nothing
# behind and the previous file intact, and does not hang.
add_test(NAME disk_full COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_disk_full.sh $<TARGET_FILE:cnflow>)
set_tests_properties(disk_full PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE}"
                     PROCESSORS 2 TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS hardening
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
