# calo-photon through the real binary (generator: src/sim/calo_photon*.c).
set(CALO_PHOTON_ENV "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE}")

# the file written with 1, 2 and 3 ranks must be byte-identical (row i depends only on
# (seed, i)); small -n and -batch so that every rank does several collective writes
add_test(NAME generate_rank_identical_calo-photon
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_rank_identical.sh $<TARGET_FILE:cnflow>
                 calo-photon -n 600 -batch 64 -seed 7)
set_tests_properties(generate_rank_identical_calo-photon PROPERTIES
                     ENVIRONMENT "${CALO_PHOTON_ENV}" PROCESSORS 2 TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "PASS: calo-photon byte-identical")

# bad options: non-zero exit, one error line naming the problem, no file left behind
function(calo_photon_error_test name nranks regex)
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_cli_error.sh ${nranks} "${regex}"
                   ${name}.h5 $<TARGET_FILE:cnflow> generate calo-photon -o ${name}.h5 ${ARGN})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${CALO_PHOTON_ENV}" PROCESSORS 2
                       TIMEOUT 60 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endfunction()
calo_photon_error_test(generate_error_calo-photon_d_inverted 2 "thickness .* range inverted"
                       -n 100 -photon_d_min 1.5 -photon_d_max 0.5)
calo_photon_error_test(generate_error_calo-photon_gflash 1 "-photon_gflash: unknown value 'geant3'"
                       -n 100 -photon_gflash geant3)

# a 2-rank file read back with h5py: layout, units, window = max-sum crop of the full image +
# noise, per-shower energy bookkeeping (tests/check_calo_photon_h5py.py)
cnflow_mpi_test(generate_calo_photon_2ranks 2 $<TARGET_FILE:cnflow> generate calo-photon -n 400
                -batch 64 -progress 0 -o generate_calo_photon_2ranks.h5)
set_tests_properties(generate_calo_photon_2ranks PROPERTIES FIXTURES_SETUP calo_photon_file
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     PASS_REGULAR_EXPRESSION "wrote generate_calo_photon_2ranks.h5: 400 rows")
add_test(NAME generate_calo_photon_h5py_read
         COMMAND ${CNFLOW_PYTHON} ${CMAKE_SOURCE_DIR}/tests/check_calo_photon_h5py.py
                 generate_calo_photon_2ranks.h5 400)
set_tests_properties(generate_calo_photon_h5py_read PROPERTIES FIXTURES_REQUIRED calo_photon_file
                     ENVIRONMENT "${CNFLOW_TEST_ENV}" TIMEOUT 60
                     PASS_REGULAR_EXPRESSION "PASS: calo-photon file"
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
