# The bad-input corpus (tests/bad-inputs/cases.txt) through every cnflow subcommand: one-line
# errors naming the file and problem, non-zero exit on every rank, no hang, no output left,
# nothing written outside the named outputs (tests/check_bad_inputs.sh).
add_test(NAME bad_inputs_corpus
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_bad_inputs.sh $<TARGET_FILE:cnflow>)
set_tests_properties(bad_inputs_corpus PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 900 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     LABELS "hardening" PASS_REGULAR_EXPRESSION "PASS: bad-input corpus")
