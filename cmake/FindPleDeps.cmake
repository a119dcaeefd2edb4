# Finds the real dependencies, each from its Debian 12 package, and fails with a message that
# names the package to install. Defines imported targets ple::uv, ple::curl, ple::jansson and
# ple::llhttp.

function(ple_find_lib target header lib_names package)
  find_path(${target}_INCLUDE_DIR NAMES ${header} PATH_SUFFIXES ${ARGN})
  find_library(${target}_LIBRARY NAMES ${lib_names})
  if(NOT ${target}_INCLUDE_DIR OR NOT ${target}_LIBRARY)
    message(FATAL_ERROR
      "${header} / lib${lib_names} not found. Install it with:\n"
      "  apt-get install -y --no-install-recommends ${package}")
  endif()
  add_library(ple::${target} UNKNOWN IMPORTED)
  set_target_properties(ple::${target} PROPERTIES
    IMPORTED_LOCATION "${${target}_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${${target}_INCLUDE_DIR}")
  message(STATUS "${target}: ${${target}_LIBRARY}")
endfunction()

ple_find_lib(uv uv.h uv libuv1-dev)
ple_find_lib(jansson jansson.h jansson libjansson-dev)
ple_find_lib(curl curl/curl.h curl libcurl4-openssl-dev)

# The static layer build (layer.mk with cmake/layer/toolchain.cmake) finds everything in
# PLE_STATIC_PREFIX only; its libcurl.a needs the TLS library and the resolver it was built with.
if(PLE_STATIC_PREFIX)
  foreach(l nghttp2 wolfssl cares)
    find_library(PLE_STATIC_${l}_LIBRARY NAMES ${l} REQUIRED)
    set_property(TARGET ple::curl APPEND PROPERTY INTERFACE_LINK_LIBRARIES "${PLE_STATIC_${l}_LIBRARY}")
  endforeach()
  # src/upstream.c shares one parsed CA store between wolfSSL's per-connection contexts.
  set_property(TARGET ple::curl APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS PLE_CURL_WOLFSSL)
else()
  # The dev build: Debian's libcurl4 uses OpenSSL 3. src/upstream.c parses the CA bundle into one
  # store ahead of the first connection and keeps HTTP/2 reconnects resumable, through OpenSSL.
  find_package(OpenSSL 3)
  if(NOT OPENSSL_FOUND)
    message(FATAL_ERROR "openssl/ssl.h / libssl not found. Install it with:\n"
      "  apt-get install -y --no-install-recommends libssl-dev")
  endif()
  set_property(TARGET ple::curl APPEND PROPERTY INTERFACE_LINK_LIBRARIES OpenSSL::SSL OpenSSL::Crypto)
  set_property(TARGET ple::curl APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS PLE_CURL_OPENSSL)
endif()

include(${CMAKE_CURRENT_LIST_DIR}/Llhttp.cmake)
