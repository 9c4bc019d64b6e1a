# analysis/ (Python, no cnflow binary): the numeric helpers of cnflow_plot.py against closed forms
# (tests/check_analysis_units.py), and plot_metrics.py + make_report.py on synthetic metrics.h5,
# bias and training outputs (tests/check_analysis_figures.py: every PNG valid and non-blank, the
# reports reference every figure, the headline numbers are the files' values).
add_test(NAME analysis_units
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_SOURCE_DIR}/tests/check_analysis_units.py)
set_tests_properties(analysis_units PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 120
                     PASS_REGULAR_EXPRESSION "PASS: analysis_units")
add_test(NAME analysis_figures
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_SOURCE_DIR}/tests/check_analysis_figures.py
                 ${CMAKE_CURRENT_BINARY_DIR}/analysis_figures_work)
set_tests_properties(analysis_figures PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 300
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "PASS: analysis_figures")
