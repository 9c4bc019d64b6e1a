# Element-wise check of the float MADE kernels against the double build (tests/made_kernels_dump.c,
# tests/made_kernels_compare.c): the same parameters and inputs through the double library
# (reference) and through the float library on the generic BLAS path and on the AVX-512 path;
# every value of out, parameter gradients, dx, dc (single MADEs of architectures A, B, C and
# odd widths) and of log p, parameter and condition gradients (flows A, C and two blocks of B)
# must satisfy |f - d| <= atol + rtol |d|.  The SIMD test is skipped (exit 77) where the kernels
# are not compiled in or the CPU lacks AVX-512F.
foreach(variant 64 32)
  if(variant STREQUAL "64")
    set(lib cnflow_lib_f64)
  else()
    set(lib cnflow_lib)
  endif()
  add_executable(made_kernels_dump${variant} ${CMAKE_CURRENT_SOURCE_DIR}/made_kernels_dump.c)
  target_link_libraries(made_kernels_dump${variant} PRIVATE ${lib})
endforeach()
add_executable(made_kernels_compare ${CMAKE_CURRENT_SOURCE_DIR}/made_kernels_compare.c)
target_link_libraries(made_kernels_compare PRIVATE m)

set(dir ${CMAKE_CURRENT_BINARY_DIR}/made_kernels)
add_test(NAME made_kernels_ref64
         COMMAND sh -c "mkdir -p '${dir}' && '$<TARGET_FILE:made_kernels_dump64>' '${dir}/ref64.bin' generic")
set_tests_properties(made_kernels_ref64 PROPERTIES FIXTURES_SETUP made_kernels_ref
                     ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 120)
foreach(path generic simd)
  add_test(NAME made_kernels_f32_${path}
           COMMAND sh -c "rm -f '${dir}/f32_${path}.bin'; '$<TARGET_FILE:made_kernels_dump32>' '${dir}/f32_${path}.bin' ${path}; rc=$?; [ $rc -eq 0 ] || exit $rc; '$<TARGET_FILE:made_kernels_compare>' '${dir}/ref64.bin' '${dir}/f32_${path}.bin'")
  set_tests_properties(made_kernels_f32_${path} PROPERTIES FIXTURES_REQUIRED made_kernels_ref
                       SKIP_RETURN_CODE 77 ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 120)
endforeach()
