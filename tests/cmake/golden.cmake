# Golden test against the self-contained PyTorch implementation analysis/cnflow_torch.py:
# golden_dump writes model files + log-densities + gradients (parameters and raw conditions) +
# inverse pairs for every preset, the `cnflow train` preprocessing chains and two hand-made
# chains; golden_compare.py loads each file with cnflow_torch and compares with autograd in
# float64.  Two builds: the double library (tight tolerances: checks the mathematics) and the
# float library (production precision).  Needs only /usr/bin/python3 with numpy, h5py, torch:
# it always runs (no external reference implementation).
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
           COMMAND sh -c "rm -rf '${dir}' && mkdir -p '${dir}' && '$<TARGET_FILE:golden_dump${variant}>' '${dir}' && '${CNFLOW_PYTHON}' '${CMAKE_CURRENT_SOURCE_DIR}/golden_compare.py' '${dir}'")
  set_tests_properties(golden_torch_f${variant} PROPERTIES
                       ENVIRONMENT "${CNFLOW_TEST_ENV}"
                       TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endforeach()
