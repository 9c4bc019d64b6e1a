# The slurm/ layer on a SLURM cluster the test starts itself (tests/check_slurm.sh): the demo
# study through slurm/submit-pipeline, a SIGTERM'd training job requeued and bit-identical, the
# job-array scan merged equal to the single-job scan, daemons stopped.  Runs alone (it uses both
# cores through SLURM); skips (77) when not root or without slurm-wlm / munge.
add_test(NAME slurm_pipeline
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_slurm.sh $<TARGET_FILE:cnflow> ${CMAKE_SOURCE_DIR})
set_tests_properties(slurm_pipeline PROPERTIES
                     ENVIRONMENT "${CNFLOW_TEST_ENV};CNFLOW_PYTHON=${CNFLOW_PYTHON}"
                     RUN_SERIAL TRUE PROCESSORS 2 TIMEOUT 900 SKIP_RETURN_CODE 77
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
# ctest shows no output of a skipped test, so say it here too
find_program(CNFLOW_SLURMCTLD slurmctld PATHS /usr/sbin)
execute_process(COMMAND id -u OUTPUT_VARIABLE CNFLOW_UID OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT CNFLOW_SLURMCTLD)
  message(STATUS "slurmctld not found: the slurm_pipeline test will skip (bash jobs/setup.sh installs slurm-wlm and munge)")
elseif(NOT CNFLOW_UID STREQUAL "0")
  message(STATUS "not root: the slurm_pipeline test will skip (it runs munged, slurmctld and slurmd as root)")
endif()
