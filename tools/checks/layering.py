#!/usr/bin/python3
"""Checks that includes run one way between picos's packages.

    kernel <- io <- net <- transports <- remote <- discovery <- compute
    kernel <- io <- wire <- remote
    core <- metrics <- compute

Bazel already refuses an include of a header that no dependency provides;
this check also catches the includes that reach a layer above through a
dependency's dependency, and internal headers (*_internal.h) used outside
the code allowed to use them. Run by //tools/checks:layering_test; run it by
hand as `tools/checks/layering.py` from the repository's root.
"""
import os
import re
import sys

# For each package (a path prefix), the packages its files may include.
# The longest matching prefix wins.
ALLOWED = {
    "core/cli/": ["core/cli/"],
    "core/kernel/": ["core/kernel/"],
    "core/io/": ["core/kernel/", "core/io/"],
    "core/net/": ["core/kernel/", "core/io/", "core/net/"],
    # Values as messages on byte streams (value_stream.h) read through io.
    "core/wire/": ["core/kernel/", "core/io/", "core/wire/"],
    "core/remote/": ["core/kernel/", "core/io/", "core/net/", "core/wire/", "core/remote/"],
    "transports/": ["core/kernel/", "core/io/", "core/net/", "transports/"],
    "discovery/": ["core/", "transports/", "discovery/"],
    # Metrics and their HTTP endpoint: the runtime and the remote layer's
    # figures, never the compute layer's (compute registers its own).
    "metrics/": ["core/", "transports/", "metrics/"],
    "compute/": ["core/", "transports/", "discovery/", "metrics/", "compute/"],
    # The web dashboard: a computation's status events and actions, served
    # beside its /metrics. Nothing below depends on it.
    "dashboard/": ["core/", "transports/", "metrics/", "compute/", "dashboard/"],
    # examples/tasks.cc reports its memory with the benchmarks' RSS helpers.
    "examples/": ["core/", "transports/", "discovery/", "metrics/", "compute/", "dashboard/", "examples/", "testing/bench/"],
    "testing/": ["core/", "transports/", "discovery/", "metrics/", "compute/", "dashboard/", "testing/"],
    "tools/": ["core/", "transports/", "discovery/", "metrics/", "compute/", "dashboard/", "testing/", "tools/"],
}
# Tests may also use the shared test helpers.
TEST_EXTRA = ["testing/"]
# Who may include an internal header of a package (besides that package).
INTERNAL_USERS = {
    "core/kernel/": ["core/"],
    "core/io/": ["core/", "transports/"],
    "core/net/": ["core/", "transports/"],
    "core/wire/": ["core/"],
    # testing/fuzz: the decoders its fuzz targets run (handshake_internal.h,
    # frames_internal.h).
    # metrics/: kj's event loop on libuv (kj_on_uv_internal.h) for kj's HTTP
    # server.
    "core/remote/": ["core/remote/", "discovery/", "metrics/", "compute/", "dashboard/", "testing/fuzz/"],
    # dashboard/: more paths on the /metrics server (http_routes_internal.h).
    "metrics/": ["metrics/", "dashboard/"],
}
SOURCE = re.compile(r"\.(h|cc)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
PROJECT_ROOTS = ("core/", "transports/", "discovery/", "metrics/", "compute/", "dashboard/", "examples/", "testing/", "tools/")


def package_of(path, table):
    best = None
    for prefix in table:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def check(root):
    errors = []
    checked = 0
    for top in PROJECT_ROOTS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = [d for d in dirnames if not d.startswith("bazel-")]
            for name in filenames:
                if not SOURCE.search(name):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                pkg = package_of(path, ALLOWED)
                if pkg is None:
                    continue
                checked += 1
                allowed = list(ALLOWED[pkg])
                if name.endswith("_test.cc") or "/testing/" in path or path.startswith("testing/"):
                    allowed += TEST_EXTRA
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for inc in INCLUDE.findall(text):
                    if not inc.startswith(PROJECT_ROOTS):
                        continue  # a system or third-party header
                    if not any(inc.startswith(a) for a in allowed):
                        errors.append(f"{path}: includes {inc}, above its layer ({pkg} may use {', '.join(allowed)})")
                        continue
                    if inc.endswith("_internal.h"):
                        owner = package_of(inc, INTERNAL_USERS)
                        if owner and not path.startswith(owner) and not any(
                                path.startswith(u) for u in INTERNAL_USERS[owner]):
                            errors.append(f"{path}: includes {inc}, internal to {owner}")
    return checked, errors


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    checked, errors = check(root)
    for e in errors:
        print("layering:", e)
    if checked == 0:
        print("layering: no source files found under", os.path.abspath(root))
        return 1
    print(f"layering: {checked} files checked, {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
