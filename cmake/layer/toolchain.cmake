# Toolchain of the static layer build (layer.mk): musl, static, everything found only in the
# prefix the dependencies were built into, never in the glibc system's /usr.
#   -DPLE_LAYER_ARCH=x86_64|arm64  -DPLE_STATIC_PREFIX=<build/layer-ARCH/prefix>
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PLE_LAYER_ARCH PLE_STATIC_PREFIX)
if(NOT PLE_STATIC_PREFIX OR NOT PLE_LAYER_ARCH)
  message(FATAL_ERROR "toolchain.cmake needs -DPLE_LAYER_ARCH and -DPLE_STATIC_PREFIX (see layer.mk)")
endif()

set(CMAKE_SYSTEM_NAME Linux)
if(PLE_LAYER_ARCH STREQUAL "arm64")
  set(CMAKE_SYSTEM_PROCESSOR aarch64)
  set(CMAKE_C_COMPILER ${PLE_STATIC_PREFIX}/musl/bin/musl-gcc)
  set(ple_cross aarch64-linux-gnu-)
elseif(EXISTS ${PLE_STATIC_PREFIX}/musl/bin/musl-gcc)  # MUSL=source
  set(CMAKE_SYSTEM_PROCESSOR x86_64)
  set(CMAKE_C_COMPILER ${PLE_STATIC_PREFIX}/musl/bin/musl-gcc)
  set(ple_cross "")
else()
  set(CMAKE_SYSTEM_PROCESSOR x86_64)
  set(CMAKE_C_COMPILER musl-gcc)
  set(ple_cross "")
endif()
find_program(CMAKE_AR ${ple_cross}ar REQUIRED)
find_program(CMAKE_RANLIB ${ple_cross}ranlib REQUIRED)
find_program(CMAKE_STRIP ${ple_cross}strip REQUIRED)

# The same flags for every dependency and for our code: frame pointers for the self-profiler,
# one section per function and object so that the linker drops the unused ones.
set(CMAKE_C_FLAGS_INIT
  "-O2 -fno-omit-frame-pointer -ffunction-sections -fdata-sections -isystem ${PLE_STATIC_PREFIX}/kernel/include")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH ${PLE_STATIC_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
