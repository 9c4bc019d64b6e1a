# Evaluation statistics (src/stats/metrics.c, src/stats/shower.c) against scipy/numpy and
# independent Python formulations: metrics_dump prints the C results, check_metrics_scipy.py
# recomputes them (scipy.stats.wasserstein_distance, numpy.histogram, mannwhitneyu, ParaFlow's
# numpy shower shapes, DBSCAN counted as connected components of the core-point graph).
add_executable(metrics_dump ${CMAKE_CURRENT_SOURCE_DIR}/metrics_dump.c)
target_link_libraries(metrics_dump PRIVATE cnflow_lib)
add_test(NAME stats_metrics_scipy
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_metrics_scipy.py
                 $<TARGET_FILE:metrics_dump> ${CMAKE_CURRENT_BINARY_DIR}/metrics_scipy)
set_tests_properties(stats_metrics_scipy PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "PASS: evaluation statistics")
