#!/bin/bash
# Builds the discovery packet decoder's fuzz target (discovery_packet_fuzz.cc,
# over discovery/packet.h) with clang and libFuzzer + AddressSanitizer against
# the system libraries, writes the seed corpus (discovery_packet_seeds.h), and
# fuzzes for FUZZ_SECONDS (60 by default).
#
#   testing/fuzz/run_discovery_fuzz.sh        # from anywhere in the repository
#   FUZZ_SECONDS=600 OUT=/tmp/df testing/fuzz/run_discovery_fuzz.sh -jobs=2
#
# Extra arguments go to libFuzzer. Needs clang-14 and libfuzzer-14-dev
# (tools/setup installs them). Only picos sources are instrumented: capnp,
# kj and BoringSSL come from Debian's shared libraries, so coverage stops at
# their boundary (the HMAC is computed, not fuzzed: the target signs the
# bodies it makes, so the decoder behind the MAC check is reached). New
# interesting inputs land in $OUT/corpus; crashes in $OUT/crash-*.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:-/tmp/picos_discovery_fuzz}"
seconds="${FUZZ_SECONDS:-60}"
cxx="${CXX_FUZZ:-clang++-14}"

command -v "$cxx" >/dev/null || { echo "$cxx not found: install clang-14" >&2; exit 1; }
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
  { echo "libFuzzer not found: install libfuzzer-14-dev" >&2; exit 1; }

mkdir -p "$out/gen/discovery" "$out/gen/core/remote" "$out/gen/core/wire" "$out/seeds" "$out/corpus" "$out/obj"

# The generated schema code, as the Bazel genrules make it.
for schema in discovery/packet.capnp core/remote/protocol.capnp core/wire/value.capnp; do
  capnp compile -I/usr/include --src-prefix="$repo/$(dirname "$schema")" -oc++:"$out/gen/$(dirname "$schema")" \
    "$repo/$schema"
done

# Every Abseil library the Bazel build links, from the one list of them.
absl_libs=$(grep -o '"-labsl_[a-z0-9_]*"' "$repo/tools/bazel/system/system.BUILD" | tr -d '"' | tr '\n' ' ')
boringssl="-L/usr/lib/x86_64-linux-gnu/android -l:libssl.so.0 -l:libcrypto.so.0 -Wl,-rpath,/usr/lib/x86_64-linux-gnu/android"
libs="-lcapnp -lkj -luv -lspdlog -lfmt $absl_libs $boringssl -lpthread"
common=(-std=c++20 -g -O1 -I"$repo" -I"$out/gen" -I/usr/include/android
        -DSPDLOG_FMT_EXTERNAL -DSPDLOG_COMPILED_LIB -DSPDLOG_SHARED_LIB
        -Wno-unused-parameter -Wno-deprecated-declarations)
# packet.cc and what it links: the handshake (ProtocolVersion) and the
# Value codec (ProcessId), with the kernel and I/O under them, each package
# whole (a list of files would break each time the kernel gains one), less
# tests and programs.
cd "$repo"
sources=(discovery/packet.cc core/remote/handshake.cc
         $(ls core/kernel/*.cc core/io/*.cc core/wire/*.cc | grep -v -e '_test\.cc$' -e 'no_sibling_calls\.cc$')
         "$out/gen/discovery/packet.capnp.c++" "$out/gen/core/remote/protocol.capnp.c++"
         "$out/gen/core/wire/value.capnp.c++")

objs=()
compile() {  # compile SOURCE FLAGS...: builds an object (in the background) and records it
  local src="$1"; shift
  local obj="$out/obj/$(echo "${src#$out/}" | tr '/' '_').o"
  "$cxx" "${common[@]}" "$@" -c "$src" -o "$obj" &
  objs+=("$obj")
}

for s in "${sources[@]}"; do compile "$s" -fsanitize=fuzzer-no-link,address; done
lib_objs=("${objs[@]}")
compile testing/fuzz/discovery_packet_seeds.cc -fsanitize=address
compile testing/fuzz/write_discovery_seeds.cc -fsanitize=address
compile testing/fuzz/discovery_packet_fuzz.cc -fsanitize=fuzzer,address
wait  # (a failed compile shows its errors; the link below then fails)

"$cxx" -fsanitize=fuzzer,address "${lib_objs[@]}" "$out/obj/testing_fuzz_discovery_packet_fuzz.cc.o" \
  $libs -o "$out/discovery_packet_fuzzer"
"$cxx" -fsanitize=address "${lib_objs[@]}" "$out/obj/testing_fuzz_discovery_packet_seeds.cc.o" \
  "$out/obj/testing_fuzz_write_discovery_seeds.cc.o" $libs -o "$out/write_discovery_seeds"

"$out/write_discovery_seeds" "$out/seeds"
echo "fuzzing for ${seconds}s: $out/discovery_packet_fuzzer $out/corpus $out/seeds"
cd "$out"
exec ./discovery_packet_fuzzer -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
  "$@" "$out/corpus" "$out/seeds"
