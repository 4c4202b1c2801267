# doc_text.cmake — the placeholders the docs checks (check_doc_links,
# check_doc_messages) put in place of the characters a CMake list or a
# bracket argument would misread: ';' splits a list, '[' and ']' group
# its items. Text is hidden once read and shown again in a failure's
# message, so the message quotes the docs as written.
#
#   include("${CMAKE_CURRENT_LIST_DIR}/doc_text.cmake")

# ';', '[' and ']' in the variable named `var` become <SC>, <LB>, <RB>.
function(doc_text_hide var)
    set(_text "${${var}}")
    string(REPLACE ";" "<SC>" _text "${_text}")
    string(REPLACE "[" "<LB>" _text "${_text}")
    string(REPLACE "]" "<RB>" _text "${_text}")
    set(${var} "${_text}" PARENT_SCOPE)
endfunction()

# Fails with `heading` and the items of the list named `list_var`, one per
# line, their ';', '[' and ']' shown again.
function(doc_text_fail heading list_var)
    list(JOIN ${list_var} "\n  " _msg)
    string(REPLACE "<LB>" "[" _msg "${_msg}")
    string(REPLACE "<RB>" "]" _msg "${_msg}")
    string(REPLACE "<SC>" ";" _msg "${_msg}")
    message(FATAL_ERROR "${heading}:\n  ${_msg}")
endfunction()
