# check_doc_messages.cmake — keeps the documented error messages true: the
# docs never name a message the library does not print.
#
# Documented messages: in docs/*.md, every table whose header row has a
# column containing "`what`" (the error handler's argument: docs/gc.md's
# and docs/pool.md's "message (`what`)", docs/rc.md's "`what` (after
# ...)"); each backticked text in that column of the table's rows is a
# message. A leading "<function>: " or "<fn>: " stands for any function's
# name and is dropped; "..." stands for text left out, so the message is
# split there into fragments. Texts without a space (`ptr`, `pool_trim`)
# are names, not messages, and are skipped.
#
# Each fragment must be printed by the library: it occurs within one of the
# string literals of pool/, gc/, runtime/ and preload/ (comments stripped,
# literals that continue on the next line joined), or matches a literal
# that is a printf format (each conversion standing for any text). Messages
# the code builds from pieces ("%s: slot is NULL" with the function's name,
# "gc_heap_create: %s (%s)" with a problem and a replacement) are split
# once more, at ": ", " (" and ")", and then each piece must pass the same
# test. A reworded message fails: its new text is in no literal.
#
# The other way round, for gc_verify: each text gc/verify.c reports must
# be in a documented message (see "gc_verify's messages" below).
#
#   cmake -DSOURCE_ROOT=<src> -P check_doc_messages.cmake
cmake_minimum_required(VERSION 3.21)
include("${CMAKE_CURRENT_LIST_DIR}/doc_text.cmake")

if(NOT DEFINED SOURCE_ROOT OR "${SOURCE_ROOT}" STREQUAL "")
    message(FATAL_ERROR "check_doc_messages: -DSOURCE_ROOT=... is required")
endif()

# ---- the library's string literals -------------------------------------
# ';', '[' and ']' are hidden (CMake list syntax); the literals are kept
# one per line in _corpus, and those with a printf conversion also as
# regular expressions in _formats.
set(_corpus "\n")
set(_formats "")
file(GLOB_RECURSE _sources
     "${SOURCE_ROOT}/pool/*.[ch]" "${SOURCE_ROOT}/gc/*.[ch]"
     "${SOURCE_ROOT}/runtime/*.[ch]" "${SOURCE_ROOT}/preload/*.[ch]")
foreach(_source IN LISTS _sources)
    file(READ "${_source}" _text)
    doc_text_hide(_text)
    string(REPLACE "'\"'" "'?'" _text "${_text}")          # a quote as a character
    string(REPLACE "'\\\"'" "'?'" _text "${_text}")
    string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " _text "${_text}")
    string(REGEX REPLACE "\n[ \t]*//[^\n]*" "\n" _text "${_text}")   # whole-line // comments
    string(REGEX REPLACE "\"[ \t]*\n[ \t]*\"" "" _text "${_text}")   # "a "\n"b" is "a b"
    string(REGEX MATCHALL "\"([^\"\\\\\n]|\\\\.)*\"" _literals "${_text}")
    foreach(_literal IN LISTS _literals)
        string(REGEX REPLACE "^\"(.*)\"$" "\\1" _literal "${_literal}")
        string(APPEND _corpus "${_literal}\n")
        if(_literal MATCHES "%[-0-9.]*(l|ll|z|j|t|h)?[sdiuxXpc]")
            # as a regular expression: specials escaped, conversions = any text
            string(REGEX REPLACE "([][.*+?()^$|\\\\{}])" "\\\\\\1" _regex "${_literal}")
            string(REGEX REPLACE "%[-0-9.]*(l|ll|z|j|t|h)?[sdiuxXpc]" "<ANY>" _regex "${_regex}")
            string(REGEX REPLACE "<ANY>" "" _fixed "${_regex}")
            string(LENGTH "${_fixed}" _fixed_length)
            if(_fixed_length GREATER 11)    # "%s: %s" alone would match anything
                string(REPLACE "<ANY>" ".+" _regex "${_regex}")
                list(APPEND _formats "${_regex}")
            endif()
        endif()
    endforeach()
endforeach()
list(LENGTH _formats _nformats)
string(LENGTH "${_corpus}" _corpus_length)
if(_corpus_length LESS 5000)
    message(FATAL_ERROR "check_doc_messages: only ${_corpus_length} characters of literals: the parsing is broken")
endif()

# Whether the library prints `text`: within a literal, or matching a format.
function(printed text out_var)
    string(FIND "${_corpus}" "${text}" _at)
    if(NOT _at EQUAL -1)
        set(${out_var} ON PARENT_SCOPE)
        return()
    endif()
    foreach(_regex IN LISTS _formats)
        if(text MATCHES "${_regex}")
            set(${out_var} ON PARENT_SCOPE)
            return()
        endif()
    endforeach()
    set(${out_var} OFF PARENT_SCOPE)
endfunction()

# ---- the documented messages -------------------------------------------
set(_missing "")
set(_count 0)
set(_documented "\n")
file(GLOB _docs "${SOURCE_ROOT}/docs/*.md")
list(SORT _docs)
foreach(_doc IN LISTS _docs)
    file(RELATIVE_PATH _doc_rel "${SOURCE_ROOT}" "${_doc}")
    file(READ "${_doc}" _text)
    doc_text_hide(_text)
    string(REPLACE "\\" "<BS>" _text "${_text}")
    string(REPLACE "\n" ";" _lines "${_text}")
    set(_column -1)     # the "`what`" column of the table being read, or -1
    set(_lineno 0)
    foreach(_line IN LISTS _lines)
        math(EXPR _lineno "${_lineno} + 1")
        if(NOT _line MATCHES "^\\|")
            set(_column -1)
            continue()
        endif()
        string(REGEX REPLACE "^\\|(.*)\\|[ \t]*$" "\\1" _row "${_line}")
        string(REPLACE "|" ";" _cells "${_row}")
        if(_column EQUAL -1)
            set(_index 0)
            foreach(_cell IN LISTS _cells)
                if(_cell MATCHES "`what`" AND _column EQUAL -1)
                    set(_column ${_index})
                endif()
                math(EXPR _index "${_index} + 1")
            endforeach()
            if(_column EQUAL -1)
                set(_column -2)   # a table of something else: skip it
            endif()
            continue()
        endif()
        if(_column LESS 0 OR _line MATCHES "^[|: -]+$")
            continue()
        endif()
        list(GET _cells ${_column} _cell)
        string(REGEX MATCHALL "`[^`]+`" _quoted "${_cell}")
        foreach(_message IN LISTS _quoted)
            string(REGEX REPLACE "^`(.*)`$" "\\1" _message "${_message}")
            string(REPLACE "<BS>" "\\" _message "${_message}")   # ('[', ']' and ';' stay hidden, as in the corpus)
            string(APPEND _documented "${_message}\n")
            if(NOT _message MATCHES " ")
                continue()
            endif()
            math(EXPR _count "${_count} + 1")
            string(REGEX REPLACE "^<(function|fn)>: " "" _stripped "${_message}")
            string(REPLACE "..." ";" _fragments "${_stripped}")
            foreach(_fragment IN LISTS _fragments)
                string(STRIP "${_fragment}" _fragment)
                if(_fragment STREQUAL "")
                    continue()
                endif()
                printed("${_fragment}" _ok)
                if(NOT _ok)
                    # built from pieces: each piece printed
                    string(REGEX REPLACE "(: | \\(|\\))" ";" _pieces "${_fragment}")
                    set(_ok ON)
                    foreach(_piece IN LISTS _pieces)
                        string(STRIP "${_piece}" _piece)
                        if(NOT _piece STREQUAL "")
                            printed("${_piece}" _piece_ok)
                            if(NOT _piece_ok)
                                set(_ok OFF)
                            endif()
                        endif()
                    endforeach()
                endif()
                if(NOT _ok)
                    list(APPEND _missing "${_doc_rel}:${_lineno}: `${_message}`")
                    break()
                endif()
            endforeach()
        endforeach()
    endforeach()
endforeach()

# ---- gc_verify's messages, the other way round --------------------------
# gc_verify reports each problem it finds (docs/gc.md, "gc_verify's
# messages"); every text gc/verify.c passes to problem() or check_slot(),
# and every kind of bad slot value it names (slot_value_problem's
# returns), must be in a documented message, so that a user can look up
# any report gc_verify makes.
file(READ "${SOURCE_ROOT}/gc/verify.c" _verify)
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " _verify "${_verify}")
string(REGEX REPLACE "\"[ \t]*\n[ \t]*\"" "" _verify "${_verify}")
string(REGEX MATCHALL "(problem|check_slot)\\([^\"\n]*\"[^\"]+\"" _verify_calls "${_verify}")
string(REGEX MATCHALL "return \"[^\"]+\"" _verify_returns "${_verify}")
set(_verify_count 0)
foreach(_call IN LISTS _verify_calls _verify_returns)
    string(REGEX REPLACE "^[^\"]*\"([^\"]+)\"$" "\\1" _text "${_call}")
    math(EXPR _verify_count "${_verify_count} + 1")
    string(FIND "${_documented}" "${_text}" _at)
    if(_at EQUAL -1)
        list(APPEND _missing "gc/verify.c: `gc_verify: ${_text}` is in no documented message")
    endif()
endforeach()
if(_verify_count LESS 25)
    message(FATAL_ERROR "check_doc_messages: found only ${_verify_count} gc_verify messages: the parsing is broken")
endif()

if(_count LESS 60)
    message(FATAL_ERROR "check_doc_messages: found only ${_count} documented messages: the table parsing is broken")
endif()
if(_missing)
    doc_text_fail("check_doc_messages: documented messages the library never prints" _missing)
endif()
message(STATUS "check_doc_messages: ${_count} documented messages, all printed by the library "
               "(${_nformats} format strings); ${_verify_count} gc_verify texts, all documented")
