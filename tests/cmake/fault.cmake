# Faults injected on one of 2 ranks (CNFLOW_FAULT: I/O and allocation errors, a NaN loss, a
# killed or exiting rank) in `cnflow train` and `cnflow scan`: the job ends promptly with one
# error line and a non-zero exit on every rank, checkpoints stay whole, -resume is bit-identical
# (tests/check_fault.sh).
add_test(NAME fault_one_rank
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_fault.sh $<TARGET_FILE:cnflow>)
set_tests_properties(fault_one_rank PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     LABELS "hardening" PASS_REGULAR_EXPRESSION "PASS: fault injection")
