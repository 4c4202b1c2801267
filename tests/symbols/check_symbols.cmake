# check_symbols.cmake — API.md: "every public symbol starts with pool_, gc_,
# rc_ or mulch_". Lists the global symbols each given library defines (nm)
# and fails naming those without one of the prefixes. The shared library
# hides its internals, but the static one exports every non-static
# function to the program it is linked into: an unprefixed internal name
# (os_map, huge_alloc, heap_abandon...) there collides with the embedder's
# own function of that name at link time.
#
#   cmake -DNM=<nm> -DLIBS="<lib>;<lib>" -P check_symbols.cmake
cmake_minimum_required(VERSION 3.21)

if(NOT DEFINED NM OR NM STREQUAL "" OR NOT DEFINED LIBS)
    message(FATAL_ERROR "check_symbols: -DNM=... and -DLIBS=... are required")
endif()

set(_bad "")
foreach(_lib IN LISTS LIBS)
    # --defined-only: what the library provides; -g: global (external) only
    execute_process(COMMAND "${NM}" -g --defined-only "${_lib}"
                    OUTPUT_VARIABLE _out RESULT_VARIABLE _rc ERROR_QUIET)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "check_symbols: ${NM} failed on ${_lib}")
    endif()
    string(REPLACE "\n" ";" _lines "${_out}")
    foreach(_line IN LISTS _lines)
        # "<address> <type> <name>"; archive member headers ("x.o:") have no type
        if(_line MATCHES "^[0-9a-fA-F]* *([A-Za-z]) ([^ ]+)$")
            set(_name "${CMAKE_MATCH_2}")
            # symbols the toolchain adds (a shared object's _init..., the
            # sanitizers' __odr_asan.*): names starting with "__" are the
            # implementation's, which no conforming program defines
            if(_name MATCHES "^(_init|_fini|_edata|_end)$" OR _name MATCHES "^__")
                continue()
            endif()
            if(NOT _name MATCHES "^(pool_|gc_|rc_|mulch_)")
                list(APPEND _bad "${_name}")
            endif()
        endif()
    endforeach()
endforeach()
list(REMOVE_DUPLICATES _bad)
list(LENGTH _bad _count)
if(_count GREATER 0)
    list(JOIN _bad "\n  " _text)
    message(FATAL_ERROR "check_symbols: ${_count} global symbol(s) without a pool_/gc_/rc_/mulch_ prefix:\n  ${_text}")
endif()
message(STATUS "check_symbols: every global symbol is prefixed")
