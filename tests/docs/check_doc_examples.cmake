# check_doc_examples.cmake — keeps the examples in docs/*.md honest.
#
# Every fenced block (in docs/*.md and the top-level README.md) whose
# opening fence line is exactly "```c main" is a
# complete program: it is written to WORK_DIR, compiled as C11 with the
# public headers (warnings are errors), linked against the static library,
# and run; it must exit 0. "```cpp main" blocks are the same for C++17
# programs (<mulch/allocator.hpp>), compiled with CXX_COMPILER. Blocks
# fenced any other way ("```c", "```cpp", "```sh"...) are fragments and are
# not compiled. A "#line" directive maps compiler messages back to the
# Markdown file and line.
#
#   cmake -DDOCS_DIR=<src>/docs -DWORK_DIR=<dir> -DINCLUDE_DIR=<src>/include
#         -DMULCH_LIB=<libmulch.a> -DC_COMPILER=<cc> [-DCXX_COMPILER=<c++>]
#         [-DLINK_LIBS="a|b|c"] [-DEXTRA_FLAGS="x|y"] [-DSOURCE_ROOT=<src>]
#         [-DONLY=<substring of a block name>] [-DTHREADED_ONLY=ON]
#         -P check_doc_examples.cmake
#
# THREADED_ONLY=ON (the ThreadSanitizer build) compiles and runs only the
# programs that call pthread_create: a data race needs a second thread.
# LINK_LIBS and EXTRA_FLAGS are '|'-separated (a ';' would be split by
# add_test). Fails when no "```c main" block exists at all, when a fence is
# left open, when a "```cpp main" block exists but no CXX_COMPILER was
# given, or when any program fails to compile or run.
cmake_minimum_required(VERSION 3.21)

# The examples print and check what the documented defaults give: the
# caller's overrides of the heap policy (docs/tuning.md) would change it.
foreach(_var MULCH_GC_HEAP_GROWTH MULCH_GC_HEAP_KEEP MULCH_GC_INITIAL_HEAP MULCH_GC_MAX_HEAP
             MULCH_GC_STRESS MULCH_GC_EVACUATE_BELOW MULCH_GC_GENERATIONAL MULCH_GC_COMPACT)
    unset(ENV{${_var}})
endforeach()

foreach(_var DOCS_DIR WORK_DIR INCLUDE_DIR MULCH_LIB C_COMPILER)
    if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
        message(FATAL_ERROR "check_doc_examples: -D${_var}=... is required")
    endif()
endforeach()
if(NOT EXISTS "${MULCH_LIB}")
    message(FATAL_ERROR "check_doc_examples: library ${MULCH_LIB} does not exist (build first)")
endif()
if(NOT DEFINED SOURCE_ROOT)
    get_filename_component(SOURCE_ROOT "${DOCS_DIR}" DIRECTORY)
endif()
string(REPLACE "|" ";" _link_libs "${LINK_LIBS}")
string(REPLACE "|" ";" _extra_flags "${EXTRA_FLAGS}")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

file(GLOB _docs "${DOCS_DIR}/*.md")
list(SORT _docs)
# The top-level README's API tour is the first code a user copies.
if(EXISTS "${SOURCE_ROOT}/README.md")
    list(APPEND _docs "${SOURCE_ROOT}/README.md")
endif()

set(_programs "")      # names of the extracted programs
set(_failures "")
foreach(_doc IN LISTS _docs)
    file(RELATIVE_PATH _doc_rel "${SOURCE_ROOT}" "${_doc}")
    # from the path, not the name: README.md and docs/README.md both exist
    string(REGEX REPLACE "\\.md$" "" _doc_stem "${_doc_rel}")
    string(REPLACE "/" "_" _doc_stem "${_doc_stem}")
    # file(STRINGS) would drop empty lines and mangle ';', '[' and backslashes: read
    # the file whole, hide those behind placeholders, split it into lines.
    file(READ "${_doc}" _text)
    string(REPLACE "\\" "<MULCH_BACKSLASH>" _text "${_text}")
    string(REPLACE ";" "<MULCH_SEMICOLON>" _text "${_text}")
    string(REPLACE "[" "<MULCH_LBRACKET>" _text "${_text}")
    string(REPLACE "]" "<MULCH_RBRACKET>" _text "${_text}")
    string(REPLACE "\n" ";" _lines "${_text}")

    set(_in_block OFF)   # inside some fence
    set(_capture OFF)    # inside a ```c main or ```cpp main fence
    set(_fence "")
    set(_lineno 0)
    set(_count 0)
    foreach(_line IN LISTS _lines)
        math(EXPR _lineno "${_lineno} + 1")
        string(REPLACE "<MULCH_LBRACKET>" "[" _line "${_line}")
        string(REPLACE "<MULCH_RBRACKET>" "]" _line "${_line}")
        string(REPLACE "<MULCH_SEMICOLON>" ";" _line "${_line}")
        string(REPLACE "<MULCH_BACKSLASH>" "\\" _line "${_line}")
        string(REGEX REPLACE "\r$" "" _line "${_line}")
        if(NOT _in_block)
            if(_line MATCHES "^(```+|~~~+)")
                set(_in_block ON)
                set(_fence "${CMAKE_MATCH_1}")
                set(_start ${_lineno})
                if(_line STREQUAL "```c main" OR _line STREQUAL "```cpp main")
                    set(_capture ON)
                    if(_line STREQUAL "```cpp main")
                        set(_ext "cpp")
                    else()
                        set(_ext "c")
                    endif()
                    math(EXPR _count "${_count} + 1")
                    math(EXPR _first "${_lineno} + 1")
                    set(_body "#line ${_first} \"${_doc_rel}\"\n")
                endif()
            endif()
        else()
            string(STRIP "${_line}" _stripped)
            if(_stripped STREQUAL "${_fence}")
                if(_capture)
                    set(_name "${_doc_stem}_${_count}_line${_start}")
                    file(WRITE "${WORK_DIR}/${_name}.${_ext}" "${_body}")
                    list(APPEND _programs "${_name}.${_ext}")
                endif()
                set(_in_block OFF)
                set(_capture OFF)
            elseif(_capture)
                string(APPEND _body "${_line}\n")
            endif()
        endif()
    endforeach()
    if(_in_block)
        list(APPEND _failures "${_doc_rel}:${_start}: fence never closed")
    endif()
endforeach()

list(LENGTH _programs _n)
if(_n EQUAL 0)
    message(FATAL_ERROR "check_doc_examples: no \"```c main\" block in ${DOCS_DIR}/*.md")
endif()
message(STATUS "check_doc_examples: ${_n} complete programs in ${DOCS_DIR}")

foreach(_file IN LISTS _programs)
    get_filename_component(_name "${_file}" NAME_WE)
    get_filename_component(_ext "${_file}" LAST_EXT)
    if(DEFINED ONLY AND NOT _name MATCHES "${ONLY}")
        continue()
    endif()
    set(_src "${WORK_DIR}/${_file}")
    set(_exe "${WORK_DIR}/${_name}")
    if(THREADED_ONLY)
        file(READ "${_src}" _source)
        if(NOT _source MATCHES "pthread_create")
            continue()
        endif()
    endif()
    if(_ext STREQUAL ".cpp")
        if(NOT DEFINED CXX_COMPILER OR CXX_COMPILER STREQUAL "")
            message("---- ${_name}: a C++ example, but no -DCXX_COMPILER was given")
            list(APPEND _failures "${_name}: no C++ compiler")
            continue()
        endif()
        set(_compile "${CXX_COMPILER}" -std=c++17)
    else()
        set(_compile "${C_COMPILER}" -std=c11)
    endif()
    execute_process(
        COMMAND ${_compile} -Wall -Wextra -Wpedantic -Werror
                -DMULCH_STATIC_DEFINE -I "${INCLUDE_DIR}" ${_extra_flags}
                -o "${_exe}" "${_src}" "${MULCH_LIB}" ${_link_libs}
        RESULT_VARIABLE _rc
        OUTPUT_VARIABLE _out
        ERROR_VARIABLE _out)
    if(NOT _rc EQUAL 0)
        message("---- ${_name}: compile FAILED (${_rc})\n${_out}")
        list(APPEND _failures "${_name}: does not compile")
        continue()
    endif()
    execute_process(
        COMMAND "${_exe}"
        WORKING_DIRECTORY "${WORK_DIR}"
        TIMEOUT 120
        RESULT_VARIABLE _rc
        OUTPUT_VARIABLE _out
        ERROR_VARIABLE _err)
    if(NOT _rc STREQUAL "0")
        message("---- ${_name}: run FAILED (exit ${_rc})\n${_out}\n-- stderr --\n${_err}")
        list(APPEND _failures "${_name}: exit ${_rc}")
    else()
        message(STATUS "${_name}: ok")
    endif()
endforeach()

if(_failures)
    list(JOIN _failures "\n  " _msg)
    message(FATAL_ERROR "check_doc_examples: failures:\n  ${_msg}")
endif()
