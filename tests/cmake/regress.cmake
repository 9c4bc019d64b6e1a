# `cnflow regress` end to end through the real binary and mpiexec (src/infer/regress.c,
# cmd_regress.c, -prep regress of src/train/prep.c): tests/check_regress.sh trains a 2-member
# regression ensemble on a small calo-pion sample, predicts a 50 GeV file on 1 and 2 ranks
# (identical files), recomputes the predictions with numpy from the model files, runs bias on
# the output and checks the bad-input errors.
add_test(NAME regress_end_to_end
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_regress.sh $<TARGET_FILE:cnflow>
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(regress_end_to_end PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: regress")
