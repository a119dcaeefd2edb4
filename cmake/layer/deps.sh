#!/usr/bin/env bash
# The steps of the static layer build that layer.mk runs, one per call:
#   deps.sh setup   ARCH          Debian packages the build needs, a deb-src entry, apt lists
#   deps.sh fetch   NAME          apt-get source NAME (Debian's patches applied) into build/layer-src
#   deps.sh build   ARCH NAME     build NAME for ARCH into build/layer-ARCH/prefix (static only)
#   deps.sh versions ARCH         the .versions file of the layer, on stdout
# layer.mk keeps a stamp per step, so each runs once; a cached rebuild runs none of them.
# Every C file (musl for arm64, each library, our code) is compiled with the same flags:
# frame pointers for the self-profiler, sections so that --gc-sections drops what we don't use.
set -euo pipefail

# make passes its command line (ARCH=arm64) on, in the environment and in MAKEFLAGS; musl's
# configure and Makefile have an ARCH of their own (aarch64). Keep only make's flags.
unset ARCH MAKEOVERRIDES
case " ${MAKEFLAGS:-}" in *" -- "*) MAKEFLAGS=" ${MAKEFLAGS}"; export MAKEFLAGS="${MAKEFLAGS%% -- *}" ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
src_dir="$root/build/layer-src"
jobs=$(nproc)

PLE_CFLAGS="-O2 -fno-omit-frame-pointer -ffunction-sections -fdata-sections"
# Source packages: the Debian (bookworm) name of each dependency.
declare -A SOURCE=([musl]=musl [wolfssl]=wolfssl [nghttp2]=nghttp2 [cares]=c-ares [uv]=libuv1
                   [jansson]=jansson [curl]=curl)

die() { echo "layer: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# make's jobserver reaches us when layer.mk runs this with '+'; then our makes join it.
sub_make() {
  case " ${MAKEFLAGS:-} " in
    *jobserver*) make "$@" ;;
    *) make -j"$jobs" "$@" ;;
  esac
}

arch_vars() {
  arch=$1
  build="${PLE_LAYER_DIR:-$root/build/layer-$arch}"
  prefix="$build/prefix"
  musl=${PLE_MUSL:-debian}
  case "$arch" in
    x86_64)
      host=x86_64-linux-musl
      cross=""
      musl_target=x86_64-linux-gnu
      cc=musl-gcc                          # Debian's musl-tools
      # musl-tools' libc is built without frame pointers; MUSL=source builds it with ours.
      [ "$musl" = source ] && cc="$prefix/musl/bin/musl-gcc"
      kernel_headers=(/usr/include/linux /usr/include/asm-generic /usr/include/x86_64-linux-gnu/asm)
      ;;
    arm64)
      host=aarch64-linux-musl
      cross=aarch64-linux-gnu-
      musl_target=aarch64-linux-gnu
      musl=source                          # Debian has musl-tools for the build architecture only
      cc="$prefix/musl/bin/musl-gcc"
      kernel_headers=(/usr/aarch64-linux-gnu/include/linux /usr/aarch64-linux-gnu/include/asm-generic
                      /usr/aarch64-linux-gnu/include/asm)
      ;;
    *) die "ARCH must be x86_64 or arm64, not '$arch'" ;;
  esac
  # musl's headers do not include the kernel's; libuv and curl need linux/*.h and asm/*.h.
  cflags="$PLE_CFLAGS -isystem $prefix/kernel/include"
  ldflags="-static -Wl,--gc-sections"
}

packages_for() {
  local p=(musl-tools dpkg-dev xz-utils patch zip binutils cmake make node-llhttp
           autoconf automake libtool)
  [ "$1" = arm64 ] && p+=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu linux-libc-dev-arm64-cross
                          qemu-user-static)
  echo "${p[@]}"
}

# A deb-src entry with the URIs of the deb entries of debian.sources, unless one exists.
ensure_deb_src() {
  if grep -rqsE '^[[:space:]]*(Types:.*deb-src|deb-src[[:space:]])' \
      /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  local out=/etc/apt/sources.list.d/ple-src.sources
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -E 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | as_root tee "$out" >/dev/null
  else
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n%s\n%s\n' \
      'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | as_root tee "$out" >/dev/null
  fi
  echo "layer: added $out"
  return 1
}

cmd_setup() {
  arch_vars "$1"
  local missing=() p fresh=0
  for p in $(packages_for "$arch"); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ensure_deb_src || fresh=1
  # apt-get source needs Sources lists: update when there are none or the entry is new.
  if [ $fresh = 1 ] || [ "${#missing[@]}" -gt 0 ] || ! ls /var/lib/apt/lists/*_Sources* >/dev/null 2>&1; then
    as_root apt-get update -qq
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "layer: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # The kernel headers, alone, for -isystem: the glibc headers beside them must stay unseen.
  rm -rf "$prefix/kernel"
  mkdir -p "$prefix/kernel/include"
  for p in "${kernel_headers[@]}"; do
    [ -d "$p" ] || die "kernel headers missing: $p"
    ln -s "$p" "$prefix/kernel/include/$(basename "$p")"
  done
  # llhttp.h for our CMake: the find root is the prefix, so the header must be in it.
  mkdir -p "$prefix/include/llhttp"
  cp /usr/share/include/llhttp/llhttp.h "$prefix/include/llhttp/"
}

# Fetches a source package into build/layer-src/NAME with Debian's patches applied, and records
# the version fetched in build/layer-src/NAME.version.
cmd_fetch() {
  local name=$1 pkg=${SOURCE[$1]:-}
  [ -n "$pkg" ] || die "unknown dependency '$name'"
  mkdir -p "$src_dir/dl-$name"
  rm -rf "$src_dir/$name" "$src_dir/dl-$name"/*
  # Stale apt lists name a version the archive has replaced: update them once and try again.
  (cd "$src_dir/dl-$name" && { apt-get source -qq --download-only --only-source "$pkg" ||
     { as_root apt-get update -qq && apt-get source -qq --download-only --only-source "$pkg"; }; } 2>&1 |
     grep -v "unsandboxed as root" || true)
  local dsc
  dsc=$(ls "$src_dir/dl-$name"/*.dsc 2>/dev/null | head -1)
  [ -n "$dsc" ] || die "apt-get source $pkg fetched nothing (is there a deb-src entry? run: $0 setup ARCH)"
  dpkg-source --no-check -q -x "$dsc" "$src_dir/$name" >/dev/null
  local version
  version=$(sed -n 's/^Version: //p' "$dsc")
  if [ "$name" = curl ]; then
    # Debian's series ends with two patches that rename the library for its GnuTLS and NSS
    # flavours; its rules pop them to build the OpenSSL one. So do we.
    (cd "$src_dir/curl" && patch -s -R -p1 < debian/patches/99_nss.patch &&
       patch -s -R -p1 < debian/patches/90_gnutls.patch)
  fi
  echo "$pkg $version" > "$src_dir/$name.version"
  # Ours, after Debian's: each says why in its header.
  local p
  for p in "$here"/patches/"$name"-*.patch; do
    [ -f "$p" ] || continue
    patch -s -p1 -d "$src_dir/$name" < "$p" || die "$name: $(basename "$p") does not apply"
    echo "# $pkg: + cmake/layer/patches/$(basename "$p")" >> "$src_dir/$name.version"
  done
  echo "layer: $pkg $version"
}

# Builds with CMake and the layer's toolchain file: our flags, static, the prefix as find root.
cmake_dep() {
  local name=$1; shift
  local b="$build/deps/$name"
  rm -rf "$b"
  mkdir -p "$b"
  cmake -S "$src_dir/$name" -B "$b" -G "Unix Makefiles" \
    -DCMAKE_TOOLCHAIN_FILE="$here/toolchain.cmake" -DPLE_LAYER_ARCH="$arch" \
    -DPLE_STATIC_PREFIX="$prefix" -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_BUILD_TYPE=None -DBUILD_SHARED_LIBS=OFF "$@" >"$b.log" 2>&1 ||
    { tail -40 "$b.log"; die "$name: cmake configure failed (log: $b.log)"; }
}

# musl from Debian's source package, for arm64 (cross) and for x86_64 with MUSL=source. Its
# configure adds -fomit-frame-pointer, but our CFLAGS come after it on each command line.
# oldmalloc, not mallocng: mallocng hands every freed 16-64 KiB block back to the kernel
# (munmap/madvise), and a relay allocates and frees such blocks for every upload (its body,
# curl's upload buffer); the self-profiler showed half of the static relay's CPU there.
build_musl() {
  local b="$build/deps/musl"
  rm -rf "$b" "$prefix/musl"
  mkdir -p "$b"
  (cd "$b" && CC="${cross}gcc" CFLAGS="$PLE_CFLAGS" "$src_dir/musl/configure" \
      --target="$musl_target" --prefix="$prefix/musl" --disable-shared --enable-wrapper=gcc \
      --with-malloc=oldmalloc \
      >"$b.log" 2>&1 && sub_make >>"$b.log" 2>&1 && make install >>"$b.log" 2>&1) ||
    { tail -40 "$b.log"; die "musl build failed (log: $b.log)"; }
}

cmd_build() {
  arch_vars "$1"
  local name=$2
  case "$name" in
    musl) build_musl ;;
    wolfssl) build_wolfssl ;;
    nghttp2)
      # The library only (no tools, no Python, no libev), static.
      cmake_dep nghttp2 -DENABLE_LIB_ONLY=ON -DENABLE_STATIC_LIB=ON -DENABLE_SHARED_LIB=OFF \
        -DENABLE_DOC=OFF -DENABLE_FAILMALLOC=OFF -DWITH_JEMALLOC=OFF
      ;;
    cares)
      cmake_dep cares -DCARES_STATIC=ON -DCARES_SHARED=OFF -DCARES_BUILD_TOOLS=OFF \
        -DCARES_BUILD_TESTS=OFF -DCARES_STATIC_PIC=OFF
      ;;
    uv)
      cmake_dep uv -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF
      ;;
    jansson)
      cmake_dep jansson -DJANSSON_BUILD_DOCS=OFF -DJANSSON_EXAMPLES=OFF -DJANSSON_WITHOUT_TESTS=ON \
        -DJANSSON_BUILD_SHARED_LIBS=OFF -DJANSSON_INSTALL=ON
      ;;
    curl) build_curl ;;
    *) die "unknown dependency '$name'" ;;
  esac
  case "$name" in
    musl|curl|wolfssl) ;;
    uv)
      # libuv installs its shared library too; build and install the static one by hand.
      (cd "$build/deps/uv" && sub_make uv_a >>"$build/deps/uv.log" 2>&1) ||
        { tail -40 "$build/deps/uv.log"; die "uv: build failed"; }
      mkdir -p "$prefix/lib" "$prefix/include/uv"
      cp "$build/deps/uv/libuv_a.a" "$prefix/lib/libuv.a"
      cp "$src_dir/uv/include/uv.h" "$prefix/include/"
      cp "$src_dir/uv/include/uv/"*.h "$prefix/include/uv/"
      ;;
    *)
      (cd "$build/deps/$name" && sub_make >>"$build/deps/$name.log" 2>&1 &&
         make install >>"$build/deps/$name.log" 2>&1) ||
        { tail -40 "$build/deps/$name.log"; die "$name: build failed (log: $build/deps/$name.log)"; }
      ;;
  esac
  cp "$src_dir/$name.version" "$build/deps/$name.version"
}

# wolfSSL with what a TLS 1.2/1.3 client needs and no more: session tickets (TLS 1.3
# resumption), ALPN (HTTP/2), SNI, IP addresses in subjectAltName (a remote given by address),
# X25519 and P-256. The single-precision maths with its assembly for x86_64 and aarch64 for P-256
# and RSA-2048 only, the keys a handshake meets (several times faster than the generic maths,
# which still does every other size); SP's tables for P-384 and P-521 alone weigh 1 MB. The
# OpenSSL compatibility layer: curl 7.88 reaches wolfSSL's SHA-256 and MD5 (SigV4, digest auth)
# through it. No threads (--enable-singlethreaded: the loop is our only thread). The random seed
# comes from getrandom(), not /dev/urandom, which an empty root or a sandbox may lack. The source
# package ships no configure script: autoreconf makes it, as Debian's build does.
build_wolfssl() {
  local b="$build/deps/wolfssl"
  rm -rf "$b"
  cp -a "$src_dir/wolfssl" "$b"   # autoreconf writes into the tree; keep the fetched one clean
  local opts=(
    --host="$host" --prefix="$prefix" --disable-shared --enable-static --with-pic=no
    --disable-dependency-tracking --disable-silent-rules
    --enable-tls13 --enable-tlsv12 --disable-oldtls --enable-session-ticket --enable-alpn
    --enable-sni --enable-ip-alt-name --enable-supportedcurves --enable-curve25519 --enable-ecc
    --enable-sp=ec256,rsa2048 --enable-sp-asm --enable-singlethreaded --enable-opensslextra
    --disable-examples --disable-crypttests --disable-benchmark --disable-des3 --disable-sys-ca-certs
  )
  (cd "$b" && autoreconf -fi >"$b.log" 2>&1 &&
     CC="$cc" AR="${cross}ar" RANLIB="${cross}ranlib" CFLAGS="$cflags -DWOLFSSL_GETRANDOM" \
       LDFLAGS="$ldflags" ./configure "${opts[@]}" >>"$b.log" 2>&1) ||
    { tail -40 "$b.log"; die "wolfssl: configure failed (log: $b.log)"; }
  (cd "$b" && sub_make >>"$b.log" 2>&1 && make install >>"$b.log" 2>&1) ||
    { tail -40 "$b.log"; die "wolfssl: build failed (log: $b.log)"; }
}

# curl: HTTP/1.1 and HTTP/2 (nghttp2), HTTPS (wolfSSL), proxies, IPv6, AWS SigV4; c-ares
# resolves on the loop's thread (no threaded resolver). No compiled-in CA bundle or path: the
# extension finds the bundle of the system it runs on and sets CURLOPT_CAINFO.
build_curl() {
  local b="$build/deps/curl"
  rm -rf "$b"
  mkdir -p "$b"
  local opts=(
    --host="$host" --prefix="$prefix" --disable-shared --enable-static --with-pic=no
    --disable-dependency-tracking --disable-silent-rules --disable-debug --disable-curldebug
    --with-wolfssl="$prefix" --with-nghttp2="$prefix" --without-mbedtls --without-openssl --without-gnutls --without-bearssl
    --without-rustls --without-nss
    --enable-ares="$prefix" --disable-threaded-resolver --disable-pthreads
    --enable-http --enable-proxy --enable-ipv6 --enable-http-auth --enable-dateparse
    --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp --disable-dict
    --disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp
    --disable-gopher --disable-mqtt --disable-websockets --disable-manual --disable-libcurl-option
    --disable-cookies --disable-ntlm --disable-ntlm-wb --disable-tls-srp --disable-unix-sockets
    --disable-doh --disable-mime --disable-netrc --disable-progress-meter --disable-alt-svc
    --disable-hsts --disable-headers-api --disable-get-easy-options --disable-sspi
    --without-libpsl --without-brotli --without-zstd --without-zlib
    --without-ngtcp2 --without-nghttp3 --without-quiche --without-msh3 --without-hyper
    --without-libidn2 --without-librtmp --without-libssh2 --without-libssh --without-wolfssh
    --without-libgsasl --without-gssapi --without-zsh-functions-dir --without-fish-functions-dir
    --without-ca-bundle --without-ca-path --without-ca-fallback
  )
  (cd "$b" && CC="$cc" AR="${cross}ar" RANLIB="${cross}ranlib" CFLAGS="$cflags" \
      CPPFLAGS="-I$prefix/include" LDFLAGS="-L$prefix/lib $ldflags" \
      "$src_dir/curl/configure" "${opts[@]}" >"$b.log" 2>&1) ||
    { tail -40 "$b.log"; die "curl: configure failed (log: $b.log, config.log beside it)"; }
  (cd "$b" && sub_make -C lib >>"$b.log" 2>&1 && make -C lib install >>"$b.log" 2>&1 &&
     make -C include install >>"$b.log" 2>&1) ||
    { tail -40 "$b.log"; die "curl: build failed (log: $b.log)"; }
}

cmd_versions() {
  arch_vars "$1"
  echo "# pyroscope-lambda-extension ($arch): statically linked; built from these Debian 12"
  echo "# (bookworm) source packages, with Debian's patches, by layer.mk."
  if [ "$musl" = debian ]; then
    echo "musl $(dpkg-query -W -f='${Version}' musl-dev) (binary package musl-dev, musl-tools)"
  else
    cat "$build/deps/musl.version"
    echo "# musl: configured --with-malloc=oldmalloc"
  fi
  local n
  for n in wolfssl nghttp2 cares uv jansson curl; do cat "$build/deps/$n.version"; done
  echo "node-llhttp $(dpkg-query -W -f='${Version}' node-llhttp) (llhttp sources from the binary package)"
  echo "# compiler: $(${cross:-x86_64-linux-gnu-}gcc --version | head -1)"
  echo "# extension: $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
}

case "${1:-}" in
  setup) cmd_setup "$2" ;;
  fetch) cmd_fetch "$2" ;;
  build) cmd_build "$2" "$3" ;;
  versions) cmd_versions "$2" ;;
  *) die "usage: $0 setup ARCH | fetch NAME | build ARCH NAME | versions ARCH" ;;
esac
