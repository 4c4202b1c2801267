# compare_output.cmake — runs one Scheme program and compares what it
# prints with the expected file.
#
#   cmake -DPROGRAM=<mulch-lisp> -DSCRIPT=<x.scm> -DEXPECTED=<x.out>
#         -DWORK_DIR=<dir> [-DREPL=ON] [-DNOFILE=<n>] -P compare_output.cmake
#
# With NOFILE the program runs under `ulimit -n <n>` (at most n open files).
# With REPL=ON the program runs without arguments (the REPL) and SCRIPT is
# its standard input instead.
# The program runs in WORK_DIR (fresh each time: programs may write files
# there), on a copy of SCRIPT named as the original. Its stdout, then its stderr (if any) after a line "--- stderr",
# then "--- exit <status>" when the status is not 0, must equal EXPECTED
# line for line — except lines starting with "gc:", dropped from both:
# they show collector figures that differ between runs and backends. Any
# unexpected stderr output (a sanitizer or a mulch misuse report) fails.
cmake_minimum_required(VERSION 3.21)

foreach(_var PROGRAM SCRIPT EXPECTED WORK_DIR)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "compare_output: -D${_var}=... is required")
    endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
# Run a copy by its bare name, so that error messages (which name the
# script) do not depend on where the source tree is.
get_filename_component(_script_name "${SCRIPT}" NAME)
file(COPY "${SCRIPT}" DESTINATION "${WORK_DIR}")
set(_args "${_script_name}")
set(_input "")
if(REPL)
    set(_args "")
    set(_input INPUT_FILE "${WORK_DIR}/${_script_name}")
endif()
set(_command "${PROGRAM}" ${_args})
if(DEFINED NOFILE)
    set(_command sh -c "ulimit -n ${NOFILE} && exec \"$0\" \"$@\"" "${PROGRAM}" ${_args})
endif()
# RUN_TIMEOUT: seconds the program may take (100 unless the test says)
if(NOT DEFINED RUN_TIMEOUT)
    set(RUN_TIMEOUT 100)
endif()
execute_process(
    COMMAND ${_command}
    ${_input}
    WORKING_DIRECTORY "${WORK_DIR}"
    TIMEOUT ${RUN_TIMEOUT}
    RESULT_VARIABLE _status
    OUTPUT_VARIABLE _out
    ERROR_VARIABLE _err)

set(_actual "${_out}")
if(NOT _err STREQUAL "")
    string(APPEND _actual "--- stderr\n${_err}")
endif()
if(NOT _status STREQUAL "0")
    string(APPEND _actual "--- exit ${_status}\n")
endif()

file(READ "${EXPECTED}" _expected)
# Drop "gc:" lines from both sides.
foreach(_side _actual _expected)
    string(REGEX REPLACE "\ngc:[^\n]*" "" ${_side} "\n${${_side}}")
    string(REGEX REPLACE "^\n" "" ${_side} "${${_side}}")
endforeach()

if(NOT _actual STREQUAL _expected)
    file(WRITE "${WORK_DIR}/actual.out" "${_actual}")
    file(WRITE "${WORK_DIR}/expected.out" "${_expected}")
    execute_process(COMMAND diff -u "${WORK_DIR}/expected.out" "${WORK_DIR}/actual.out"
                    OUTPUT_VARIABLE _diff)
    message(FATAL_ERROR "compare_output: ${SCRIPT}: output differs from ${EXPECTED}\n${_diff}")
endif()
message(STATUS "compare_output: ${SCRIPT}: ok")
