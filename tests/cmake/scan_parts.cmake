# `cnflow scan -part i -parts n` and `cnflow scan -merge` (job-array scans, slurm/scan-array.sbatch)
add_test(NAME scan_parts_merge_identical
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_scan_parts.sh $<TARGET_FILE:cnflow>)
set_tests_properties(scan_parts_merge_identical PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: scan parts")
