"""Build macros for picos: copts, link options and test dependencies change here, once.

A project that depends on picos uses them too, for its own targets that
include picos headers (README.md, "Depending on picos"):

    load("@picos//tools:build_defs.bzl", "picos_cc_binary")

    picos_cc_binary(
        name = "hello",
        srcs = ["hello.cc"],
        deps = ["@picos//core/kernel:task"],
    )

Labels of picos's own targets are written as Label(...) so that they name
picos's targets whichever workspace calls the macro.
"""

# What every translation unit that includes a picos header must be compiled
# with. They are copts of each target, not only lines of .bazelrc, so that
# they travel with picos when it is an external repository:
#   -std=c++20: picos is C++20 (coroutines); core/kernel/handles.h stops the
#     build with an #error under an older standard.
#   -foptimize-sibling-calls: symmetric transfer between coroutines is a
#     tail call only with it (g++ leaves it out below -O2), else every
#     co_await of a sub-task that completes at once adds a stack frame and a
#     long loop of them overflows the stack. picos aborts with a message
#     naming this flag when it sees the stack grow that way
#     (core/kernel/task.h, CallAwaiter).
PICOS_REQUIRED_COPTS = [
    "-std=c++20",
    "-foptimize-sibling-calls",
]

PICOS_COPTS = PICOS_REQUIRED_COPTS + [
    "-Werror=return-type",
    "-Wno-sign-compare",
]

def picos_cc_library(name, copts = [], **kwargs):
    native.cc_library(
        name = name,
        copts = PICOS_COPTS + copts,
        **kwargs
    )

def picos_cc_binary(name, copts = [], linkopts = [], **kwargs):
    native.cc_binary(
        name = name,
        copts = PICOS_COPTS + copts,
        linkopts = linkopts,
        **kwargs
    )

def picos_cc_test(name, copts = [], deps = [], size = "small", **kwargs):
    """A GoogleTest test with the project's matchers and gtest_main."""
    native.cc_test(
        name = name,
        copts = PICOS_COPTS + copts,
        size = size,
        deps = deps + [
            Label("//testing:status_matchers"),
            Label("@system//:gtest_main"),
        ],
        **kwargs
    )

def picos_smoke_test(name, binary, args = [], expect = [], status = None, stdin = None,
                     run_timeout_s = None, data = [], **kwargs):
    """Runs `binary` with `args` and checks its output (testing/expect_output.sh).

    Args:
      name: the test's name.
      binary: the label of the program, e.g. ":tasks".
      args: the program's arguments.
      expect: extended regular expressions that must all match the output,
        each quoted for the shell ("'done: 12 requests'").
      status: the exit status expected (default 0).
      stdin: a file label fed to the program's standard input.
      run_timeout_s: seconds before the program is killed (default 60).
      data: more files the program reads.
      **kwargs: passed to sh_test.
    """
    options = []
    if status != None:
        options += ["--status", str(status)]
    if stdin:
        options += ["--stdin", "$(location %s)" % stdin]
        data = data + [stdin]
    if run_timeout_s:
        options += ["--timeout", str(run_timeout_s)]
    native.sh_test(
        name = name,
        srcs = [Label("//testing:expect_output.sh")],
        args = options + ["$(location %s)" % binary] + args + ["--"] + expect,
        data = data + [binary],
        **kwargs
    )

def picos_package_sources(extra = []):
    """Declares `:sources`, the files of this package's folder, for the checks in //tools/checks.

    Args:
      extra: more files of the package, in its subfolders.
    """
    native.filegroup(
        name = "sources",
        srcs = native.glob(["*"]) + extra,
        visibility = [Label("//tools/checks:__pkg__")],
    )
