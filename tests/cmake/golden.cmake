# Golden test against the independent PyTorch peer (shared/bench/torch_flows.py):
# golden_dump writes model files + log-densities + gradients for the reference architectures,
# golden_compare.py rebuilds each model on the peer (analysis/cnflow_torch.py) and compares
# with autograd in float64.  Two builds: the double library (tight tolerances: checks the
# mathematics) and the float library (production precision).
set(CNFLOW_PEER_DIR ${CMAKE_SOURCE_DIR}/../shared/bench)
if(NOT EXISTS ${CNFLOW_PEER_DIR}/torch_flows.py)
  # A clone without the project's shared/ folder beside it: report the golden tests as skipped
  # (ctest shows them as "Not Run (Skipped)") rather than failing on a missing reference.
  foreach(variant 64 32)
    add_test(NAME golden_torch_f${variant}
             COMMAND sh -c "echo 'PyTorch peer not found at ${CNFLOW_PEER_DIR}'; exit 77")
    set_tests_properties(golden_torch_f${variant} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
  return()
endif()
foreach(variant 64 32)
  if(variant STREQUAL "64")
    set(lib cnflow_lib_f64)
  else()
    set(lib cnflow_lib)
  endif()
  add_executable(golden_dump${variant} ${CMAKE_CURRENT_SOURCE_DIR}/golden_dump.c)
  target_link_libraries(golden_dump${variant} PRIVATE ${lib})
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/golden${variant})
  add_test(NAME golden_torch_f${variant}
           COMMAND sh -c "mkdir -p '${dir}' && '$<TARGET_FILE:golden_dump${variant}>' '${dir}' && '${CNFLOW_PYTHON}' '${CMAKE_CURRENT_SOURCE_DIR}/golden_compare.py' '${dir}'")
  set_tests_properties(golden_torch_f${variant} PROPERTIES
                       ENVIRONMENT "${CNFLOW_TEST_ENV};CNFLOW_PEER_DIR=${CNFLOW_PEER_DIR}"
                       TIMEOUT 600 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endforeach()
