# CLI runs of `cnflow demo` (2 ranks, small) and `cnflow bench` (a seconds-long smoke run of
# model C without the peer; the real measurement is `cnflow bench` on a quiet machine).
cnflow_mpi_test(cli_demo_mpi2 2 $<TARGET_FILE:cnflow> demo -demo_train_events 6000
                -demo_val_events 2000 -demo_epochs 2 -demo_out cli_demo_model.h5)
set_tests_properties(cli_demo_mpi2 PROPERTIES
                     PASS_REGULAR_EXPRESSION "difference \\(flow - true\\) *: [+-][0-9]"
                     FAIL_REGULAR_EXPRESSION "error")
add_test(NAME cli_demo_help COMMAND $<TARGET_FILE:cnflow> demo -help)
set_tests_properties(cli_demo_help PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}"
                     PASS_REGULAR_EXPRESSION "-demo_epochs.*-demo_out")
add_test(NAME cli_bench_smoke
         COMMAND sh -c "'$<TARGET_FILE:cnflow>' bench -bench_models C -bench_batches 64,128 -bench_logprob_batch 256 -bench_sample_batch 256 -bench_seconds 0.05 -bench_peer false -bench_out bench_smoke.json && '${CNFLOW_PYTHON}' -c 'import json; d = json.load(open(\"bench_smoke.json\")); r = d[\"results\"]; assert [x[\"kind\"] for x in r] == [\"train\", \"train\", \"logprob\", \"sample\"], r; assert all(x[\"events_per_s\"] > 0 and x[\"gemm_bound_events_per_s\"] > 0 for x in r), r; print(\"bench json ok\")'")
set_tests_properties(cli_bench_smoke PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 120
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "bench json ok")
