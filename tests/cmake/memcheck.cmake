# valgrind memcheck of every serial test (label "memcheck"), registered only in a build
# configured with -DCNFLOW_MEMCHECK=ON (jobs/test.sh makes one with -DCNFLOW_NATIVE=OFF: valgrind
# 3.19 cannot decode AVX-512).  Any invalid access, use of uninitialised memory or definitely
# lost block fails the test (exit status 99).
option(CNFLOW_MEMCHECK "register valgrind memcheck runs of the serial tests (label memcheck)" OFF)
if(CNFLOW_MEMCHECK)
  if(CNFLOW_NATIVE)
    message(WARNING "CNFLOW_MEMCHECK with CNFLOW_NATIVE=ON: valgrind may not decode the "
                    "AVX-512 instructions of -march=native (configure with -DCNFLOW_NATIVE=OFF)")
  endif()
  find_program(CNFLOW_VALGRIND valgrind REQUIRED)
  # Long statistical loops that ASan/UBSan already cover, 140-290 s each under valgrind: left
  # out to keep CI within its budget (they exercise no code the other tests do not).
  set(CNFLOW_MEMCHECK_SKIP test_toy_density test_sim_calo_photon)
  foreach(src ${CNFLOW_SERIAL_TESTS} ${CNFLOW_F64_TESTS})
    get_filename_component(name ${src} NAME_WE)
    if(name IN_LIST CNFLOW_MEMCHECK_SKIP)
      continue()
    endif()
    add_test(NAME memcheck_${name}
             COMMAND ${CNFLOW_VALGRIND} -q --error-exitcode=99 --leak-check=full
                     --errors-for-leak-kinds=definite
                     --suppressions=${CMAKE_SOURCE_DIR}/tests/valgrind.supp $<TARGET_FILE:${name}>)
    set_tests_properties(memcheck_${name} PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}"
                         LABELS memcheck TIMEOUT 1800 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  endforeach()
endif()
