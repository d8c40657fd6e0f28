"""picos_computation: a computation library (compute/export.h) for picos-node's workers."""

load("//tools:build_defs.bzl", "PICOS_COPTS")

def picos_computation(name, srcs, deps = [], **kwargs):
    """Builds `lib<name>.so`, a shared library of task functions a worker dlopens.

    The library depends on //compute:export (header-only) and links nothing of
    picos's implementation: a second copy of it inside the library would be a
    private one the worker never sees. Its deps may be any other libraries
    (Abseil, ...) that are linked statically into it.

    Args:
      name: the target; the file is lib<name>.so.
      srcs: sources that register functions with PICOS_COMPUTE_FUNCTION.
      deps: more libraries.
      **kwargs: passed to cc_binary (testonly, visibility, ...).
    """
    native.cc_binary(
        name = "lib%s.so" % name,
        srcs = srcs,
        deps = deps + [Label("//compute:export")],
        copts = PICOS_COPTS + ["-fPIC"],
        linkshared = True,
        **kwargs
    )
    native.filegroup(
        name = name,
        srcs = [":lib%s.so" % name],
        **{k: v for k, v in kwargs.items() if k in ("testonly", "visibility")}
    )
