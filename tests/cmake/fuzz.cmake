# Fuzz harnesses (tests/fuzz/fuzz_<name>.c; jobs/fuzz.sh runs them under libFuzzer).
# Every build: fuzz_<name> = harness + tests/fuzz/driver.c, and the ctest fuzz_replay_<name>
# replays the seed corpus tests/fuzz/corpus/<name>/ and every saved crash input
# tests/fuzz/crashes/<name>/ through it (seconds), so a bug the fuzzer found stays fixed.
# With -DCNFLOW_FUZZ=ON (clang) also fuzz_<name>_libfuzzer, linked with libFuzzer's main.
set(CNFLOW_FUZZ_HARNESSES lhef data model options)
foreach(h ${CNFLOW_FUZZ_HARNESSES})
  set(src ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${h}.c)
  add_executable(fuzz_${h} ${src} ${CMAKE_SOURCE_DIR}/tests/fuzz/driver.c)
  target_link_libraries(fuzz_${h} PRIVATE cnflow_lib)
  add_test(NAME fuzz_replay_${h}
           COMMAND fuzz_${h} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${h}
                   ${CMAKE_SOURCE_DIR}/tests/fuzz/crashes/${h})
  set_tests_properties(fuzz_replay_${h} PROPERTIES ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 120
                       LABELS fuzz WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  if(CNFLOW_FUZZ)
    add_executable(fuzz_${h}_libfuzzer ${src})
    target_link_libraries(fuzz_${h}_libfuzzer PRIVATE cnflow_lib)
    target_link_options(fuzz_${h}_libfuzzer PRIVATE -fsanitize=fuzzer)
  endif()
endforeach()
