# `cnflow train` through the real binary and mpiexec (src/train, cmd_train.c).
set(CNFLOW_TRAIN_ENV "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};CNFLOW_PYTHON=${CNFLOW_PYTHON}")

# SIGTERM / step interruption / finished-run resume: bit-identical to an uninterrupted run
add_test(NAME train_resume_bit_identical
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_train_resume.sh $<TARGET_FILE:cnflow>)
set_tests_properties(train_resume_bit_identical PROPERTIES
                     ENVIRONMENT "${CNFLOW_TRAIN_ENV}" PROCESSORS 2 TIMEOUT 300
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: SIGTERM")
