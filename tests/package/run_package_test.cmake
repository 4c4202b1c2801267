# run_package_test.cmake — install mulch and consume it as an outsider would.
#
#   cmake -DMULCH_BUILD_DIR=<built tree> -DMULCH_CONSUMER_DIR=<tests/package>
#         -DWORK_DIR=<scratch dir> [-DCONFIG=Release] [-DGENERATOR=Ninja]
#         [-DC_COMPILER=cc] [-DCXX_COMPILER=c++] [-DPKG_CONFIG=pkg-config]
#         -P run_package_test.cmake
#
# Checks, each building tests/package/consumer.c and running it:
#   1. `cmake --install` into WORK_DIR/prefix, then find_package(mulch) there;
#   2. find_package(mulch) from the build tree itself;
#   3. `cc consumer.c $(pkg-config --cflags --libs mulch)` against the install;
#   4. the same against the build tree's mulch.pc;
#   3 and 4 also link libmulch.a with `pkg-config --static --libs mulch`.
# Registered by tests/CMakeLists.txt as the ctest test `package`.
cmake_minimum_required(VERSION 3.21)

foreach(_var MULCH_BUILD_DIR MULCH_CONSUMER_DIR WORK_DIR)
    if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
        message(FATAL_ERROR "run_package_test.cmake: -D${_var}=... is required")
    endif()
endforeach()
if(NOT C_COMPILER)
    set(C_COMPILER cc)
endif()
if(NOT PKG_CONFIG)
    set(PKG_CONFIG pkg-config)
endif()

set(_prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# run(<what> COMMAND...) — runs a command, stops the test with its output on failure.
function(run what)
    execute_process(COMMAND ${ARGN}
        RESULT_VARIABLE _rc
        OUTPUT_VARIABLE _out
        ERROR_VARIABLE _out)
    if(NOT _rc STREQUAL "0")
        string(REPLACE ";" " " _cmd "${ARGN}")
        message(FATAL_ERROR "package test: ${what} failed (${_rc})\n  command: ${_cmd}\n${_out}")
    endif()
    message(STATUS "package test: ${what}: ok")
    set(LAST_OUTPUT "${_out}" PARENT_SCOPE)
endfunction()

# 1. Install.
set(_config_args)
if(CONFIG)
    set(_config_args --config "${CONFIG}")
endif()
run("cmake --install" "${CMAKE_COMMAND}" --install "${MULCH_BUILD_DIR}" --prefix "${_prefix}" ${_config_args})

# The malloc drop-in, where it is built, is installed next to the library.
if(EXISTS "${MULCH_BUILD_DIR}/preload/libmulch-malloc.so")
    file(GLOB_RECURSE _preload_installed "${_prefix}/*/libmulch-malloc.so")
    if(NOT _preload_installed)
        message(FATAL_ERROR "package test: libmulch-malloc.so was built but not installed under ${_prefix}")
    endif()
endif()

# find_package consumers: configure, build, check where mulch came from, run.
function(consume_with_cmake label prefix_path expect_dir)
    set(_bin "${WORK_DIR}/consumer-${label}")
    set(_args -S "${MULCH_CONSUMER_DIR}" -B "${_bin}"
              "-DCMAKE_PREFIX_PATH=${prefix_path}"
              -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
              -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
    if(GENERATOR)
        list(APPEND _args -G "${GENERATOR}")
    endif()
    if(C_COMPILER)
        list(APPEND _args "-DCMAKE_C_COMPILER=${C_COMPILER}")
    endif()
    if(CXX_COMPILER)
        list(APPEND _args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
    endif()
    if(CONFIG)
        list(APPEND _args "-DCMAKE_BUILD_TYPE=${CONFIG}")
    endif()
    run("${label}: configure consumer" "${CMAKE_COMMAND}" ${_args})

    file(STRINGS "${_bin}/CMakeCache.txt" _mulch_dir REGEX "^mulch_DIR:")
    string(REGEX REPLACE "^mulch_DIR:[A-Z]*=" "" _mulch_dir "${_mulch_dir}")
    file(REAL_PATH "${_mulch_dir}" _mulch_dir)
    file(REAL_PATH "${expect_dir}" _expect)
    string(FIND "${_mulch_dir}/" "${_expect}/" _at)
    if(NOT _at EQUAL 0)
        message(FATAL_ERROR "package test: ${label}: find_package(mulch) used ${_mulch_dir}, "
                            "not the package under ${_expect}")
    endif()

    run("${label}: build consumer" "${CMAKE_COMMAND}" --build "${_bin}" ${_config_args})
    foreach(_exe consumer consumer_static consumer_cxx)
        file(GLOB_RECURSE _found "${_bin}/${_exe}" "${_bin}/${_exe}.exe")
        list(LENGTH _found _n)
        if(NOT _n EQUAL 1)
            message(FATAL_ERROR "package test: ${label}: expected one ${_exe} under ${_bin}, found: ${_found}")
        endif()
        run("${label}: run ${_exe}" "${_found}")
    endforeach()
endfunction()

consume_with_cmake(install "${_prefix}" "${_prefix}")
consume_with_cmake(build-tree "${MULCH_BUILD_DIR}" "${MULCH_BUILD_DIR}")

# pkg-config consumers. The install's .pc is in <libdir>/pkgconfig, where
# libdir is lib or lib/<multiarch> depending on GNUInstallDirs: look for it.
function(consume_with_pkg_config label pc_dir)
    set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
    run("${label}: pkg-config --cflags --libs mulch" "${PKG_CONFIG}" --cflags --libs mulch)
    string(STRIP "${LAST_OUTPUT}" _flags)
    separate_arguments(_flags UNIX_COMMAND "${_flags}")
    run("${label}: pkg-config --variable=libdir mulch" "${PKG_CONFIG}" --variable=libdir mulch)
    string(STRIP "${LAST_OUTPUT}" _libdir)
    if(NOT EXISTS "${_libdir}")
        message(FATAL_ERROR "package test: ${label}: libdir '${_libdir}' from mulch.pc does not exist")
    endif()

    set(_exe "${WORK_DIR}/consumer-pc-${label}")
    run("${label}: cc consumer.c $(pkg-config --cflags --libs mulch)"
        "${C_COMPILER}" -std=c11 -Wall -Wextra -Wpedantic -Werror
        "${MULCH_CONSUMER_DIR}/consumer.c" ${_flags} -o "${_exe}")
    run("${label}: run pkg-config consumer"
        "${CMAKE_COMMAND}" -E env "LD_LIBRARY_PATH=${_libdir}" "${_exe}")

    # Static: the archive in place of -lmulch, with the rest of
    # `pkg-config --static --libs`, whose private libraries (pthread, dl,
    # atomic_ops) must be all it needs; it runs without libmulch.so.
    if(EXISTS "${_libdir}/libmulch.a")
        run("${label}: pkg-config --cflags mulch" "${PKG_CONFIG}" --cflags mulch)
        string(STRIP "${LAST_OUTPUT}" _cflags)
        separate_arguments(_cflags UNIX_COMMAND "${_cflags}")
        run("${label}: pkg-config --static --libs mulch" "${PKG_CONFIG}" --static --libs mulch)
        string(STRIP "${LAST_OUTPUT}" _static_flags)
        separate_arguments(_static_flags UNIX_COMMAND "${_static_flags}")
        list(REMOVE_ITEM _static_flags -lmulch)
        run("${label}: cc consumer.c libmulch.a $(pkg-config --static --libs mulch)"
            "${C_COMPILER}" -std=c11 -Wall -Wextra -Wpedantic -Werror -DMULCH_STATIC_DEFINE
            "${MULCH_CONSUMER_DIR}/consumer.c" ${_cflags} "${_libdir}/libmulch.a" ${_static_flags}
            -o "${_exe}-static")
        run("${label}: run static pkg-config consumer" "${_exe}-static")
    endif()
endfunction()

file(GLOB_RECURSE _pc_files "${_prefix}/*/mulch.pc")
list(LENGTH _pc_files _n)
if(NOT _n EQUAL 1)
    message(FATAL_ERROR "package test: expected one installed mulch.pc under ${_prefix}, found: ${_pc_files}")
endif()
get_filename_component(_pc_dir "${_pc_files}" DIRECTORY)
consume_with_pkg_config(install "${_pc_dir}")

if(CONFIG AND EXISTS "${MULCH_BUILD_DIR}/${CONFIG}/mulch.pc")
    consume_with_pkg_config(build-tree "${MULCH_BUILD_DIR}/${CONFIG}")
else()
    consume_with_pkg_config(build-tree "${MULCH_BUILD_DIR}")
endif()

message(STATUS "package test: all consumers passed")
