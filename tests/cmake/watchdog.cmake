# The hang watchdog on 2 ranks (tests/check_watchdog.sh): a rank that hangs in train or scan
# (CNFLOW_FAULT kind=hang) or is SIGSTOPped ends the job promptly with the watchdog's line; a
# stopped-and-continued job and an ensemble group waiting for the other group are not hangs.
add_test(NAME watchdog_hang
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_watchdog.sh $<TARGET_FILE:cnflow>)
set_tests_properties(watchdog_hang PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE}"
                     PROCESSORS 2 TIMEOUT 300 WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                     LABELS "hardening" PASS_REGULAR_EXPRESSION "PASS: watchdog")
