#!/usr/bin/env bash
# Copies an install tree made by //tools/dist (headers, libpicos.so,
# picos.pc, picosConfig.cmake) under PREFIX. tools/install runs it after the
# build; //tools/dist:install_test runs it on the tree of its own build.
#   install_tree.sh DIST_DIR PREFIX
set -euo pipefail
dist="$1"; prefix="$2"
[ -f "$dist/lib/libpicos.so" ] || { echo "install: $dist holds no picos build" >&2; exit 1; }
mkdir -p "$prefix"
# Replace, never merge, the headers of an earlier install: a header that
# left picos must not linger.
rm -rf "$prefix/include/picos"
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/picos"
cp -R "$dist/include/picos" "$prefix/include/picos"
cp "$dist/lib/libpicos.so" "$prefix/lib/libpicos.so"
cp "$dist/lib/pkgconfig/picos.pc" "$prefix/lib/pkgconfig/picos.pc"
cp "$dist/lib/cmake/picos/picosConfig.cmake" "$prefix/lib/cmake/picos/picosConfig.cmake"
# Bazel's outputs are read-only; installed files are not.
chmod -R u+w,go+rX "$prefix/include/picos"
chmod 0755 "$prefix/lib/libpicos.so"
chmod 0644 "$prefix/lib/pkgconfig/picos.pc" "$prefix/lib/cmake/picos/picosConfig.cmake"
echo "picos installed under $prefix:"
echo "  g++ -std=c++20 main.cc \$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs picos)"
