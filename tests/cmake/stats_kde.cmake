# Bootstrap-KDE helpers (src/stats/kde.c) against scipy/numpy, the implementation the
# calibration study used (flows-reference.md 5.5): kde_dump prints the C results for a sample,
# check_kde_scipy.py recomputes them with gaussian_kde / percentile / percentileofscore.
add_executable(kde_dump ${CMAKE_CURRENT_SOURCE_DIR}/kde_dump.c)
target_link_libraries(kde_dump PRIVATE cnflow_lib)
add_test(NAME stats_kde_scipy
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_kde_scipy.py
                 $<TARGET_FILE:kde_dump> ${CMAKE_CURRENT_BINARY_DIR}/kde_scipy)
set_tests_properties(stats_kde_scipy PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "PASS: KDE mode")
