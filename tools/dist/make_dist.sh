#!/usr/bin/env bash
# Assembles the install tree for picos_dist (dist.bzl), as one Bazel action.
#   make_dist.sh OUT_DIR MANIFEST PICOS_PC PICOS_CONFIG_CMAKE CC
# MANIFEST lines: "header SRC DEST", "archive PATH.pic.a", "linkflag FLAG".
set -euo pipefail
out="$1"; manifest="$2"; pc="$3"; cmake="$4"; cc="$5"
mkdir -p "$out/include/picos" "$out/lib/pkgconfig" "$out/lib/cmake/picos"
archives=()
flags=()
while read -r kind a b; do
  case "$kind" in
    header)
      mkdir -p "$out/include/picos/$(dirname "$b")"
      cp "$a" "$out/include/picos/$b"
      chmod 0644 "$out/include/picos/$b"
      ;;
    archive) archives+=("$a") ;;
    linkflag) flags+=("$a") ;;
  esac
done <"$manifest"
[ ${#archives[@]} -gt 0 ] || { echo "make_dist: no picos archive to link" >&2; exit 1; }
# Every object of every archive, whether or not something refers to it yet:
# the library is for programs not written yet.
"$cc" -shared -o "$out/lib/libpicos.so" -Wl,-soname,libpicos.so \
    -Wl,--whole-archive "${archives[@]}" -Wl,--no-whole-archive \
    "${flags[@]}" -lstdc++ -lm
cp "$pc" "$out/lib/pkgconfig/picos.pc"
cp "$cmake" "$out/lib/cmake/picos/picosConfig.cmake"
chmod 0644 "$out/lib/pkgconfig/picos.pc" "$out/lib/cmake/picos/picosConfig.cmake"
