"""picos's repositories, declared in one call: what a workspace needs to build picos.

In the WORKSPACE of a project that depends on picos (README.md, "Depending on picos"):

    local_repository(
        name = "picos",
        path = "third_party/picos",  # a clone of picos
    )

    load("@picos//tools/bazel:deps.bzl", "picos_dependencies")

    picos_dependencies()

picos's own WORKSPACE makes the same call. Paths are found from this file's
own location, so they hold wherever picos is cloned and whatever the
repository that holds it is called; nothing is downloaded.

Declared, each unless the workspace already has a repository of that name
(a project with its own stand-ins keeps them):
  * rules_cc, rules_java, remote_coverage_tools: offline stand-ins for what
    Bazel 4.2.3's default WORKSPACE suffix would fetch over HTTP
    (tools/bazel/README.md).
  * system: the Debian libraries under /usr (tools/bazel/system/system.BUILD),
    which picos's BUILD files name as @system.

Compiler flags travel with picos's targets (//tools:build_defs.bzl adds
-std=c++20 and -foptimize-sibling-calls); a project's own targets that
include picos headers use picos_cc_binary / picos_cc_library from
@picos//tools:build_defs.bzl, or import tools/bazel/picos.bazelrc.
"""

def _shim_repository_impl(rctx):
    # tools/bazel/<shim>/ beside this file: each entry is linked into the new
    # repository, so the shim's files are read where they are.
    shims = rctx.path(Label("//tools/bazel:BUILD")).dirname
    source = shims.get_child(rctx.attr.shim)
    if not source.exists:
        fail("picos: offline stand-in %s is missing" % source)
    for entry in source.readdir():
        rctx.symlink(entry, entry.basename)

_shim_repository = repository_rule(
    implementation = _shim_repository_impl,
    attrs = {"shim": attr.string(mandatory = True)},
    local = True,
    doc = "A repository made of one folder under tools/bazel/, wherever picos lives.",
)

def _maybe(rule, name, **kwargs):
    if name not in native.existing_rules():
        rule(name = name, **kwargs)

def picos_dependencies():
    """Declares every repository picos's BUILD files use. Call it from WORKSPACE."""
    for shim in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        _maybe(_shim_repository, shim, shim = shim)
    _maybe(
        native.new_local_repository,
        "system",
        path = "/usr",
        build_file = str(Label("//tools/bazel/system:system.BUILD")),
    )
