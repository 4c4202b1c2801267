# check_doc_links.cmake — keeps the cross-references in the documentation
# working: every relative Markdown link in README.md and docs/*.md names a
# file or directory that exists, and its #anchor (if any) names a heading
# of that file.
#
# A link is "](target)" outside fenced blocks and inline code; absolute
# ones (http:, https:, mailto:) are not checked. "(#anchor)" is an anchor
# of the file itself. Anchors follow GitHub's rules: the heading's text
# with link targets and backticks dropped, lower-cased, every character
# other than a letter, digit, '_', '-' or space removed, each space turned
# into '-'; the second heading with the same anchor gets "-1", the third
# "-2". Characters outside ASCII are dropped (the headings use only "—"
# and "×", which GitHub drops as punctuation and symbols; a heading with a
# non-ASCII letter would need this rule refined). Fails listing every
# broken link with its file and line.
#
#   cmake -DSOURCE_ROOT=<src> -P check_doc_links.cmake
cmake_minimum_required(VERSION 3.21)
include("${CMAKE_CURRENT_LIST_DIR}/doc_text.cmake")

if(NOT DEFINED SOURCE_ROOT OR "${SOURCE_ROOT}" STREQUAL "")
    message(FATAL_ERROR "check_doc_links: -DSOURCE_ROOT=... is required")
endif()

# The lines of a Markdown file, with ';', '[', ']' and '\' hidden behind
# placeholders (a CMake list would split or group on them), outside fenced
# blocks only: fenced lines come back empty so that line numbers hold.
function(doc_lines path out_var)
    file(READ "${path}" _text)
    string(REPLACE "\\" "<BS>" _text "${_text}")
    doc_text_hide(_text)
    string(REPLACE "\r" "" _text "${_text}")
    string(REPLACE "\n" ";" _lines "${_text}")
    set(_out "")
    set(_fenced OFF)
    foreach(_line IN LISTS _lines)
        if(_line MATCHES "^[ ]*```")
            if(_fenced)
                set(_fenced OFF)
            else()
                set(_fenced ON)
            endif()
            list(APPEND _out "")
        elseif(_fenced)
            list(APPEND _out "")
        else()
            list(APPEND _out "${_line}")
        endif()
    endforeach()
    set(${out_var} "${_out}" PARENT_SCOPE)
endfunction()

# The anchors of a Markdown file's headings, GitHub style (see the top).
function(doc_anchors path out_var)
    doc_lines("${path}" _lines)
    set(_anchors "")
    foreach(_line IN LISTS _lines)
        if(NOT _line MATCHES "^#+[ \t]+(.*)$")
            continue()
        endif()
        set(_title "${CMAKE_MATCH_1}")
        string(REGEX REPLACE "[ \t]+#+[ \t]*$" "" _title "${_title}")
        # [text](target) -> text
        string(REGEX REPLACE "<LB>([^<]*)<RB>\\([^)]*\\)" "\\1" _title "${_title}")
        string(REPLACE "<LB>" "" _title "${_title}")
        string(REPLACE "<RB>" "" _title "${_title}")
        string(REPLACE "<SC>" "" _title "${_title}")
        string(REPLACE "<BS>" "" _title "${_title}")
        string(TOLOWER "${_title}" _title)
        string(REGEX REPLACE "[^a-z0-9_ -]" "" _slug "${_title}")
        string(REPLACE " " "-" _slug "${_slug}")
        set(_anchor "${_slug}")
        set(_n 0)
        list(FIND _anchors "${_anchor}" _at)
        while(NOT _at EQUAL -1)
            math(EXPR _n "${_n} + 1")
            set(_anchor "${_slug}-${_n}")
            list(FIND _anchors "${_anchor}" _at)
        endwhile()
        list(APPEND _anchors "${_anchor}")
    endforeach()
    set(${out_var} "${_anchors}" PARENT_SCOPE)
endfunction()

file(GLOB _docs "${SOURCE_ROOT}/docs/*.md")
list(SORT _docs)
list(PREPEND _docs "${SOURCE_ROOT}/README.md")

set(_broken "")
set(_checked 0)
set(_anchor_files "")   # files whose anchors are computed, as variables _anchors_<n>
foreach(_doc IN LISTS _docs)
    file(RELATIVE_PATH _doc_rel "${SOURCE_ROOT}" "${_doc}")
    get_filename_component(_doc_dir "${_doc}" DIRECTORY)
    doc_lines("${_doc}" _lines)
    set(_lineno 0)
    foreach(_line IN LISTS _lines)
        math(EXPR _lineno "${_lineno} + 1")
        string(REGEX REPLACE "`[^`]*`" "" _line "${_line}")   # inline code
        string(REGEX MATCHALL "<RB>\\([^) ]+\\)" _links "${_line}")
        foreach(_link IN LISTS _links)
            string(REGEX REPLACE "^<RB>\\((.*)\\)$" "\\1" _target "${_link}")
            if(_target MATCHES "^(https?|mailto|ftp):")
                continue()
            endif()
            math(EXPR _checked "${_checked} + 1")
            string(FIND "${_target}" "#" _hash)
            if(_hash EQUAL -1)
                set(_file_part "${_target}")
                set(_anchor "")
            else()
                string(SUBSTRING "${_target}" 0 ${_hash} _file_part)
                math(EXPR _after "${_hash} + 1")
                string(SUBSTRING "${_target}" ${_after} -1 _anchor)
            endif()
            if(_file_part STREQUAL "")
                set(_path "${_doc}")
            else()
                get_filename_component(_path "${_doc_dir}/${_file_part}" ABSOLUTE)
            endif()
            if(NOT EXISTS "${_path}")
                list(APPEND _broken "${_doc_rel}:${_lineno}: ${_target}: no such file")
                continue()
            endif()
            if(_anchor STREQUAL "")
                continue()
            endif()
            if(NOT _path MATCHES "\\.md$")
                list(APPEND _broken "${_doc_rel}:${_lineno}: ${_target}: an anchor into a file that is not Markdown")
                continue()
            endif()
            list(FIND _anchor_files "${_path}" _index)
            if(_index EQUAL -1)
                list(LENGTH _anchor_files _index)
                list(APPEND _anchor_files "${_path}")
                doc_anchors("${_path}" _anchors_${_index})
            endif()
            list(FIND _anchors_${_index} "${_anchor}" _found)
            if(_found EQUAL -1)
                list(APPEND _broken "${_doc_rel}:${_lineno}: ${_target}: no heading with that anchor")
            endif()
        endforeach()
    endforeach()
endforeach()

if(_checked LESS 100)
    message(FATAL_ERROR "check_doc_links: found only ${_checked} relative links: the parsing is broken")
endif()
if(_broken)
    doc_text_fail("check_doc_links: broken links" _broken)
endif()
list(LENGTH _docs _nd)
message(STATUS "check_doc_links: ${_checked} relative links in ${_nd} files: all resolve")
