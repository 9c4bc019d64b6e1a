# `cnflow evaluate` against numpy/scipy on hand-made samples files (tests/check_evaluate.py).
add_test(NAME evaluate_vs_numpy
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_SOURCE_DIR}/tests/check_evaluate.py $<TARGET_FILE:cnflow>
                 ${CMAKE_CURRENT_BINARY_DIR}/evaluate_work)
set_tests_properties(evaluate_vs_numpy PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 300
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR} PASS_REGULAR_EXPRESSION "PASS: evaluate")
