# check_doc_env.cmake — keeps docs/tuning.md's table of environment
# variables equal to what the library reads.
#
# From the library's sources (pool/, gc/, runtime/, preload/; *.c and *.h,
# comments stripped): every string literal "MULCH_..." — the library has
# no other such literals: each is passed to getenv, to an env_* helper
# that calls getenv, or names the variable in a report. Every getenv call
# must take such a literal or `name` (the helpers' parameter), so that a
# variable read through some other expression cannot slip past unseen.
# From docs/tuning.md: the first cell ("| `MULCH_...` |") of each row of
# the tables under "## Environment variables" (up to the next "## ").
# Fails unless the two sets are equal, naming what is on one side only.
#
#   cmake -DSOURCE_ROOT=<src> -P check_doc_env.cmake
cmake_minimum_required(VERSION 3.21)

if(NOT DEFINED SOURCE_ROOT OR "${SOURCE_ROOT}" STREQUAL "")
    message(FATAL_ERROR "check_doc_env: -DSOURCE_ROOT=... is required")
endif()

set(_read "")
set(_opaque "")
file(GLOB_RECURSE _sources
     "${SOURCE_ROOT}/pool/*.[ch]" "${SOURCE_ROOT}/gc/*.[ch]"
     "${SOURCE_ROOT}/runtime/*.[ch]" "${SOURCE_ROOT}/preload/*.[ch]")
foreach(_source IN LISTS _sources)
    file(READ "${_source}" _text)
    string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " _text "${_text}")
    string(REGEX REPLACE "//[^\n]*" " " _text "${_text}")
    string(REGEX MATCHALL "\"MULCH_[A-Z0-9_]+\"" _names "${_text}")
    foreach(_name IN LISTS _names)
        string(REPLACE "\"" "" _name "${_name}")
        list(APPEND _read "${_name}")
    endforeach()
    string(REGEX MATCHALL "[^a-z_]getenv[ \t]*\\([^)]*\\)" _calls "${_text}")
    foreach(_call IN LISTS _calls)
        if(NOT _call MATCHES "\\([ \t]*(\"MULCH_[A-Z0-9_]+\"|name)[ \t]*\\)$")
            file(RELATIVE_PATH _rel "${SOURCE_ROOT}" "${_source}")
            list(APPEND _opaque "${_rel}: ${_call}")
        endif()
    endforeach()
endforeach()
if(_opaque)
    list(JOIN _opaque "\n  " _msg)
    message(FATAL_ERROR "check_doc_env: getenv of something other than a \"MULCH_...\" literal or a "
                        "helper's `name` (extend this check):\n  ${_msg}")
endif()
list(REMOVE_DUPLICATES _read)
list(LENGTH _read _nr)
if(_nr LESS 10)
    message(FATAL_ERROR "check_doc_env: found only ${_nr} variables in the sources: the parsing is broken")
endif()

file(READ "${SOURCE_ROOT}/docs/tuning.md" _doc)
string(FIND "${_doc}" "\n## Environment variables\n" _start)
if(_start EQUAL -1)
    message(FATAL_ERROR "check_doc_env: docs/tuning.md has no \"## Environment variables\" section")
endif()
string(SUBSTRING "${_doc}" ${_start} -1 _section)
string(SUBSTRING "${_section}" 1 -1 _section)
string(FIND "${_section}" "\n## " _end)
if(NOT _end EQUAL -1)
    string(SUBSTRING "${_section}" 0 ${_end} _section)
endif()
string(REGEX MATCHALL "\n\\| `MULCH_[A-Z0-9_]+` \\|" _rows "${_section}")
set(_documented "")
foreach(_row IN LISTS _rows)
    string(REGEX MATCH "MULCH_[A-Z0-9_]+" _name "${_row}")
    list(APPEND _documented "${_name}")
endforeach()
list(REMOVE_DUPLICATES _documented)

set(_problems "")
foreach(_name IN LISTS _read)
    if(NOT _name IN_LIST _documented)
        list(APPEND _problems "${_name}: read by the library, no row in docs/tuning.md's table")
    endif()
endforeach()
foreach(_name IN LISTS _documented)
    if(NOT _name IN_LIST _read)
        list(APPEND _problems "${_name}: a row in docs/tuning.md's table, never read by the library")
    endif()
endforeach()
if(_problems)
    list(JOIN _problems "\n  " _msg)
    message(FATAL_ERROR "check_doc_env: docs/tuning.md's environment variables differ from the code:\n  ${_msg}")
endif()
message(STATUS "check_doc_env: ${_nr} variables, each read by the library and in docs/tuning.md's table")
