#!/usr/bin/env bash
# picos from an install tree, as a project outside Bazel uses it.
#   install_test.sh DIST_DIR INSTALL_TREE_SH HELLO_PICOS_CC
set -uo pipefail
dist="$1"; install_tree="$2"; hello="$3"
tmp="${TEST_TMPDIR:-$(mktemp -d)}/install"
rm -rf "$tmp"
mkdir -p "$tmp"
prefix="$tmp/prefix"
fail() { echo "FAIL: $*"; exit 1; }

"$install_tree" "$dist" "$prefix" || fail "install_tree.sh failed"
for f in include/picos/core/kernel/task.h include/picos/core/wire/value.capnp.h \
         include/picos/transports/socket.h lib/libpicos.so lib/pkgconfig/picos.pc \
         lib/cmake/picos/picosConfig.cmake; do
  [ -f "$prefix/$f" ] || fail "$f is not installed"
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# Under `bazel test --config=asan` the library is instrumented: a program
# linking it needs the ASan runtime too.
san=""
if grep -q " U __asan_init" <<<"$(nm -D "$prefix/lib/libpicos.so")"; then
  # As picos.bazelrc builds it: what keeps symmetric transfer a tail call.
  san="-fsanitize=address -fno-sanitize-address-use-after-scope --param=asan-use-after-return=0 --param=asan-stack=0"
fi

# 1. Plain g++ and pkg-config, as README.md shows.
cp "$hello" "$tmp/hello.cc"
cd "$tmp"
echo "g++ -o hello hello.cc $(pkg-config --cflags --libs picos) $san"
# shellcheck disable=SC2046
g++ -o hello hello.cc $(pkg-config --cflags --libs picos) $san || fail "g++ with pkg-config failed"
out=$(timeout 60 ./hello 2>&1) || fail "hello exited with status $?: $out"
echo "$out"
grep -q 'hello from picos: 1000000 sub-task awaits, reply {"twice": 2000000}' <<<"$out" ||
    fail "hello did not say hello"

# 2. A compiler left at C++17 stops at picos's own message, not at pages of
# errors from the coroutine headers.
# shellcheck disable=SC2046
out=$(g++ $(pkg-config --cflags picos) -std=c++17 -fsyntax-only hello.cc 2>&1) &&
    fail "hello.cc compiled as C++17"
grep -m1 'error' <<<"$out"
grep -m1 'error' <<<"$out" | grep -q 'picos needs C++20' || fail "the first error is not picos's: $out"

# 3. The tree can move: the .pc file finds its prefix from where it lies.
mv "$prefix" "$tmp/moved"
PKG_CONFIG_PATH="$tmp/moved/lib/pkgconfig" pkg-config --cflags picos | grep -q -- "-I$tmp/moved/lib/pkgconfig/../../include/picos" ||
    fail "picos.pc does not follow the tree"
mv "$tmp/moved" "$prefix"

# 4. CMake's find_package, where CMake is installed.
if command -v cmake >/dev/null; then
  mkdir -p "$tmp/cmake_project"
  cp hello.cc "$tmp/cmake_project/hello.cc"
  cat >"$tmp/cmake_project/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(hello_picos CXX)
find_package(picos REQUIRED)
add_executable(hello hello.cc)
target_link_libraries(hello PRIVATE picos::picos)
CMAKE
  cmake -S "$tmp/cmake_project" -B "$tmp/cmake_build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_EXE_LINKER_FLAGS="$san" >"$tmp/cmake.log" 2>&1 ||
      { cat "$tmp/cmake.log"; fail "cmake configure failed"; }
  cmake --build "$tmp/cmake_build" >>"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "cmake build failed"; }
  out=$(timeout 60 "$tmp/cmake_build/hello" 2>&1) || fail "the CMake-built hello exited with status $?: $out"
  grep -q 'hello from picos' <<<"$out" || fail "the CMake-built hello did not say hello"
  echo "cmake: $out"
else
  echo "cmake is not installed: picosConfig.cmake not exercised"
fi
echo PASS
