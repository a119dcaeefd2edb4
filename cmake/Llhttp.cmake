# llhttp 8.1: prefer an installed library; otherwise compile the sources that Debian's
# node-llhttp package ships into a static library.
find_path(LLHTTP_INCLUDE_DIR NAMES llhttp.h
  PATHS /usr/share/include/llhttp PATH_SUFFIXES llhttp)
find_library(LLHTTP_LIBRARY NAMES llhttp)
set(LLHTTP_SOURCE_DIR /usr/share/llhttp CACHE PATH "directory holding llhttp.c, api.c and http.c")

if(LLHTTP_INCLUDE_DIR AND LLHTTP_LIBRARY)
  add_library(ple::llhttp UNKNOWN IMPORTED)
  set_target_properties(ple::llhttp PROPERTIES
    IMPORTED_LOCATION "${LLHTTP_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LLHTTP_INCLUDE_DIR}")
  message(STATUS "llhttp: ${LLHTTP_LIBRARY}")
elseif(LLHTTP_INCLUDE_DIR AND EXISTS "${LLHTTP_SOURCE_DIR}/llhttp.c"
       AND EXISTS "${LLHTTP_SOURCE_DIR}/api.c" AND EXISTS "${LLHTTP_SOURCE_DIR}/http.c")
  add_library(llhttp_static STATIC
    ${LLHTTP_SOURCE_DIR}/llhttp.c ${LLHTTP_SOURCE_DIR}/api.c ${LLHTTP_SOURCE_DIR}/http.c)
  target_include_directories(llhttp_static SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
  # Generated code: our warning flags are not its business.
  target_compile_options(llhttp_static PRIVATE -w)
  set_target_properties(llhttp_static PROPERTIES POSITION_INDEPENDENT_CODE ON)
  add_library(ple::llhttp ALIAS llhttp_static)
  message(STATUS "llhttp: building from ${LLHTTP_SOURCE_DIR}")
else()
  message(FATAL_ERROR
    "llhttp 8.1 not found (neither a library nor the sources in ${LLHTTP_SOURCE_DIR}). Install it with:\n"
    "  apt-get install -y --no-install-recommends node-llhttp")
endif()
