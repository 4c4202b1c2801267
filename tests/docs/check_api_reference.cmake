# check_api_reference.cmake — keeps docs/api.md complete: every public name
# has an entry.
#
# Collected from the public headers (comments stripped):
#   C headers (include/mulch/*.h): every function (a mulch_, pool_, gc_ or rc_
#     identifier followed by '('), every type (such an identifier ending in
#     _t or _fn), and the macros MULCH_VERSION*, POOL_* and GC_COMPACT_*;
#   include/mulch/allocator.hpp: every class, alias, constant and make_*
#     function declared at namespace scope outside `namespace detail`.
# Functions, types and C++ names must appear inside backticks in a heading
# line ("### `name`...", or "`name<T>`" for a template) of api.md; macros
# anywhere in it. Fails listing
# what is missing.
#
#   cmake -DINCLUDE_DIR=<src>/include -DAPI_DOC=<src>/docs/api.md -P check_api_reference.cmake
cmake_minimum_required(VERSION 3.21)

foreach(_var INCLUDE_DIR API_DOC)
    if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
        message(FATAL_ERROR "check_api_reference: -D${_var}=... is required")
    endif()
endforeach()

file(READ "${API_DOC}" _doc)
# Heading lines only, with their backticked names.
string(REGEX MATCHALL "\n#+ [^\n]*" _headings "\n${_doc}")
string(REPLACE ";" " " _headings "${_headings}")

set(_functions "")
set(_types "")
set(_macros "")
file(GLOB _headers "${INCLUDE_DIR}/mulch/*.h")
foreach(_header IN LISTS _headers)
    file(READ "${_header}" _text)
    string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " _text "${_text}")
    string(REGEX REPLACE "//[^\n]*" " " _text "${_text}")
    string(REGEX MATCHALL "(mulch|pool|gc|rc)_[a-z0-9_]*[ \t]*\\(" _calls "${_text}")
    foreach(_call IN LISTS _calls)
        string(REGEX REPLACE "[ \t]*\\($" "" _name "${_call}")
        if(NOT _name MATCHES "_$")         # trailing '_': inline internals, not API
            list(APPEND _functions "${_name}")
        endif()
    endforeach()
    string(REGEX MATCHALL "(mulch|pool|gc|rc)_[a-z0-9_]*_(t|fn)[^a-z0-9_]" _type_uses "${_text}")
    foreach(_use IN LISTS _type_uses)   # a ';' after the name splits it off: skip ""
        string(REGEX MATCH "^[a-z0-9_]+" _name "${_use}")
        if(NOT _name STREQUAL "")
            list(APPEND _types "${_name}")
        endif()
    endforeach()
    string(REGEX MATCHALL "(MULCH_VERSION[A-Z_]*|POOL_[A-Z_]+|GC_COMPACT_[A-Z]+)" _macro_uses "${_text}")
    foreach(_name IN LISTS _macro_uses)
        if(NOT _name MATCHES "_H$")        # header guards
            list(APPEND _macros "${_name}")
        endif()
    endforeach()
endforeach()

# allocator.hpp: namespace-scope declarations outside namespace detail, read
# line by line (';', '[' and ']' hidden so that the lines survive as a list).
set(_cxx "")
file(READ "${INCLUDE_DIR}/mulch/allocator.hpp" _text)
string(REPLACE ";" "<S>" _text "${_text}")
string(REPLACE "[" "<L>" _text "${_text}")
string(REPLACE "]" "<R>" _text "${_text}")
string(REPLACE "\n" ";" _lines "${_text}")
set(_in_detail OFF)
foreach(_line IN LISTS _lines)
    if(_line MATCHES "^namespace detail")
        set(_in_detail ON)
    elseif(_line MATCHES "^} // namespace detail")
        set(_in_detail OFF)
    elseif(NOT _in_detail)
        # one pattern at a time: a failed MATCHES clears CMAKE_MATCH_1
        foreach(_pattern "^class ([a-z_]+)" "^using ([a-z_]+) =" "^inline constexpr [a-z:_ ]+ ([a-z_]+) ="
                         "^[A-Za-z_:<>]+ (make_[a-z_]+)\\(")
            if(_line MATCHES "${_pattern}")
                list(APPEND _cxx "${CMAKE_MATCH_1}")
            endif()
        endforeach()
    endif()
endforeach()

foreach(_list _functions _types _macros _cxx)
    list(REMOVE_DUPLICATES ${_list})
endforeach()
list(LENGTH _functions _nf)
list(LENGTH _cxx _nc)
if(_nf LESS 50 OR _nc LESS 10)
    message(FATAL_ERROR "check_api_reference: found only ${_nf} C functions and ${_nc} C++ names: "
                        "the header parsing is broken")
endif()

set(_missing "")
foreach(_name IN LISTS _functions _types _cxx)
    string(FIND "${_headings}" "`${_name}`" _at)
    string(FIND "${_headings}" "`${_name}<" _at_template)   # `rc_ptr<T>`
    if(_at EQUAL -1 AND _at_template EQUAL -1)
        list(APPEND _missing "${_name} (no heading)")
    endif()
endforeach()
foreach(_name IN LISTS _macros)
    string(FIND "${_doc}" "${_name}" _at)
    if(_at EQUAL -1)
        list(APPEND _missing "${_name} (not mentioned)")
    endif()
endforeach()
list(LENGTH _types _nt)
list(LENGTH _macros _nm)
if(_missing)
    list(JOIN _missing "\n  " _msg)
    message(FATAL_ERROR "check_api_reference: docs/api.md lacks an entry for:\n  ${_msg}")
endif()
message(STATUS "check_api_reference: ${_nf} functions, ${_nt} types, ${_nm} macros, "
               "${_nc} C++ names: all in ${API_DOC}")
