# SIGKILL train and scan at seeded random points, resume, compare bit for bit with an
# uninterrupted run; nothing on disk is ever half-written (tests/check_kill_anywhere.sh).
add_test(NAME kill_anywhere_resume
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_kill_anywhere.sh $<TARGET_FILE:cnflow> 1)
set_tests_properties(kill_anywhere_resume PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 600 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     LABELS "hardening" PASS_REGULAR_EXPRESSION "PASS: kill-anywhere")
