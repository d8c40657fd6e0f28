"""Build macros for picos: copts, link options and test dependencies change here, once."""

PICOS_COPTS = [
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
            "//testing:status_matchers",
            "@system//:gtest_main",
        ],
        **kwargs
    )
