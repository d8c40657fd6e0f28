#!/bin/bash
# Builds the Value codec fuzz target (value_codec_fuzz.cc) with clang and
# libFuzzer + AddressSanitizer against the system libraries, writes the seed
# corpus, and fuzzes for FUZZ_SECONDS (60 by default).
#
#   testing/fuzz/run_value_fuzz.sh            # from anywhere in the repository
#   FUZZ_SECONDS=600 OUT=/tmp/vf testing/fuzz/run_value_fuzz.sh -jobs=2
#
# Extra arguments go to libFuzzer. Needs clang-14 and libfuzzer-14-dev
# (tools/setup installs them). Only picos sources are instrumented: capnp and
# kj come from Debian's shared libraries, so libFuzzer's coverage stops at
# their boundary; ASan still checks every access our code makes through them.
# New interesting inputs land in $OUT/corpus; crashes in $OUT/crash-*.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:-/tmp/picos_value_fuzz}"
seconds="${FUZZ_SECONDS:-60}"
cxx="${CXX_FUZZ:-clang++-14}"

command -v "$cxx" >/dev/null || { echo "$cxx not found: install clang-14" >&2; exit 1; }
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
  { echo "libFuzzer not found: install libfuzzer-14-dev" >&2; exit 1; }

mkdir -p "$out/gen/core/wire" "$out/seeds" "$out/corpus" "$out/obj"

# The generated schema code, as the Bazel genrule makes it.
capnp compile -I/usr/include --src-prefix="$repo/core/wire" -oc++:"$out/gen/core/wire" "$repo/core/wire/value.capnp"

# Every Abseil library the Bazel build links, from the one list of them.
absl_libs=$(grep -o '"-labsl_[a-z0-9_]*"' "$repo/tools/bazel/system/system.BUILD" | tr -d '"' | tr '\n' ' ')
libs="-lcapnp -lkj -luv -lspdlog -lfmt $absl_libs -lpthread"
common=(-std=c++20 -g -O1 -I"$repo" -I"$out/gen"
        -DSPDLOG_FMT_EXTERNAL -DSPDLOG_COMPILED_LIB -DSPDLOG_SHARED_LIB
        -Wno-unused-parameter -Wno-deprecated-declarations)
# The Value codec and the kernel under it, the kernel whole (a list of
# files broke when the kernel gained capacity.cc and clock.cc), less tests
# and programs.
sources=($(cd "$repo" && ls core/kernel/*.cc core/wire/value_codec.cc | grep -v -e '_test\.cc$' -e 'no_sibling_calls\.cc$'))

objs=()
compile() {  # compile SOURCE FLAGS...: builds an object (in parallel) and records it
  local src="$1"; shift
  local obj="$out/obj/$(echo "$src" | tr '/' '_').o"
  "$cxx" "${common[@]}" "$@" -c "$src" -o "$obj" &
  objs+=("$obj")
}

cd "$repo"
for s in "${sources[@]}" testing/fuzz/value_codec_seeds.cc; do
  compile "$s" -fsanitize=fuzzer-no-link,address
done
compile "$out/gen/core/wire/value.capnp.c++" -fsanitize=fuzzer-no-link,address
compile testing/fuzz/value_codec_fuzz.cc -fsanitize=fuzzer,address
compile testing/fuzz/write_value_seeds.cc -fsanitize=address
wait

lib_objs=()
for o in "${objs[@]}"; do
  case "$o" in
    *value_codec_fuzz.cc.o|*write_value_seeds.cc.o|*value_codec_seeds.cc.o) ;;
    *) lib_objs+=("$o") ;;
  esac
done
"$cxx" -fsanitize=fuzzer,address "${lib_objs[@]}" "$out/obj/testing_fuzz_value_codec_fuzz.cc.o" \
  $libs -o "$out/value_codec_fuzzer"
"$cxx" -fsanitize=address "${lib_objs[@]}" "$out/obj/testing_fuzz_value_codec_seeds.cc.o" \
  "$out/obj/testing_fuzz_write_value_seeds.cc.o" $libs -o "$out/write_value_seeds"

"$out/write_value_seeds" "$out/seeds"
echo "fuzzing for ${seconds}s: $out/value_codec_fuzzer $out/corpus $out/seeds"
cd "$out"
exec ./value_codec_fuzzer -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
  "$@" "$out/corpus" "$out/seeds"
