# calo-pion (G3) through the real binary (generator: src/sim/calo_pion*.c).
set(CALO_PION_ENV "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE}")

# byte-identical files with 1, 2 and 3 ranks (row i depends only on (seed, i)); small -batch so
# every rank does several collective writes; log-uniform and the Bock profile exercise the
# other code paths
add_test(NAME generate_rank_identical_calo-pion
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_rank_identical.sh $<TARGET_FILE:cnflow>
                 calo-pion -n 3001 -batch 256 -seed 7 -pion_energy_mode loguniform)
set_tests_properties(generate_rank_identical_calo-pion PROPERTIES
                     ENVIRONMENT "${CALO_PION_ENV}" PROCESSORS 2 TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "PASS: calo-pion byte-identical")
add_test(NAME generate_rank_identical_calo-pion_fixed_bock
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_rank_identical.sh $<TARGET_FILE:cnflow>
                 calo-pion -n 1000 -batch 100 -seed 3 -pion_energy_mode fixed -pion_energy 30
                 -pion_profile bock)
set_tests_properties(generate_rank_identical_calo-pion_fixed_bock PROPERTIES
                     ENVIRONMENT "${CALO_PION_ENV}" PROCESSORS 2 TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "PASS: calo-pion byte-identical")

# bad options: non-zero exit, one error line naming the problem, no file left behind
function(calo_pion_error_test name nranks regex)
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_cli_error.sh ${nranks} "${regex}"
                   ${name}.h5 $<TARGET_FILE:cnflow> generate calo-pion -o ${name}.h5 ${ARGN})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${CALO_PION_ENV}" PROCESSORS 2
                       TIMEOUT 60 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endfunction()
calo_pion_error_test(generate_error_calo-pion_range 2 "need -pion_emin < -pion_emax"
                     -n 100 -pion_emin 50 -pion_emax 5)
calo_pion_error_test(generate_error_calo-pion_mode 1 "unknown -pion_energy_mode 'gauss'"
                     -n 100 -pion_energy_mode gauss)
calo_pion_error_test(generate_error_calo-pion_fixed 1 "fixed needs -pion_energy > 0"
                     -n 100 -pion_energy_mode fixed -pion_energy -10)

# the study's eleven files on a tiny -n: names, energies, seeds, splits
add_test(NAME make_pion_samples_small
         COMMAND bash -c "rm -rf pion_samples && bash ${CMAKE_SOURCE_DIR}/jobs/make_pion_samples.sh -n 200 -np 2 -o pion_samples && ${CNFLOW_PYTHON} ${CMAKE_SOURCE_DIR}/tests/check_pion_samples.py pion_samples 200")
set_tests_properties(make_pion_samples_small PROPERTIES
                     ENVIRONMENT "${CALO_PION_ENV}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
