"""picos_dist: what tools/install puts under a prefix, built by Bazel.

    picos_dist(name = "dist", deps = [...the libraries to ship...])

gives a folder with
    include/picos/...            every picos header the deps need (generated
                                 ones too), at the paths code includes them by
    lib/libpicos.so              every picos object of the deps, in one
                                 shared library
    lib/pkgconfig/picos.pc       for `g++ main.cc $(pkg-config --cflags --libs picos)`
    lib/cmake/picos/picosConfig.cmake   for find_package(picos) and picos::picos

The compile and link flags written into picos.pc and picosConfig.cmake are
the ones Bazel itself uses for the deps (their defines, include folders and
link options), so the installed copy cannot drift from the build. Objects
must be position independent: tools/install builds with --force_pic.
"""

PICOS_VERSION = "0.1.0"

# Flags every file that includes a picos header needs (//tools:build_defs.bzl).
_REQUIRED_CFLAGS = ["-std=c++20", "-foptimize-sibling-calls"]

# @system is /usr seen from Bazel (tools/bazel/system/system.BUILD).
_SYSTEM_PREFIX = "external/system/"

def _picos_workspace():
    return Label("//:README.md").workspace_name

def _install_path(f):
    # Headers sit directly in their package's folder; generated ones (the
    # Cap'n Proto header) are owned by their genrule, in the same package.
    return f.owner.package + "/" + f.basename

def _dedupe(items):
    seen = {}
    out = []
    for i in items:
        if i not in seen:
            seen[i] = True
            out.append(i)
    return out

def _picos_dist_impl(ctx):
    ws = _picos_workspace()
    cc = cc_common.merge_cc_infos(cc_infos = [d[CcInfo] for d in ctx.attr.deps])
    comp = cc.compilation_context

    headers = [h for h in comp.headers.to_list() if h.owner.workspace_name == ws]
    include_dirs = []
    for d in comp.system_includes.to_list() + comp.includes.to_list() + comp.quote_includes.to_list():
        if d.startswith(_SYSTEM_PREFIX):
            include_dirs.append("/usr/" + d[len(_SYSTEM_PREFIX):])
    cflags = ["-I${includedir}"] + _REQUIRED_CFLAGS + ["-D" + d for d in comp.defines.to_list()]
    cflags += ["-isystem " + d for d in _dedupe(include_dirs)]

    archives = []
    link_flags = []
    for li in cc.linking_context.linker_inputs.to_list():
        link_flags += li.user_link_flags
        for lib in li.libraries:
            a = lib.pic_static_library or lib.static_library
            if a == None or a.owner.workspace_name != ws:
                continue
            if lib.pic_static_library == None:
                fail("picos_dist needs position-independent objects: build with --force_pic")
            archives.append(a)
    link_flags = _dedupe(link_flags)

    out = ctx.actions.declare_directory(ctx.label.name)
    pc = ctx.actions.declare_file(ctx.label.name + ".pc")
    ctx.actions.write(pc, "\n".join([
        "# picos " + PICOS_VERSION + ", installed by tools/install. The prefix is where this",
        "# file lies, so the installed tree can be moved.",
        "prefix=${pcfiledir}/../..",
        "includedir=${prefix}/include/picos",
        "libdir=${prefix}/lib",
        "",
        "Name: picos",
        "Description: C++20 tasks for concurrent, asynchronous, distributed programs (pycos in C++)",
        "Version: " + PICOS_VERSION,
        "Cflags: " + " ".join(cflags),
        "Libs: -L${libdir} -Wl,-rpath,${libdir} -lpicos " + " ".join(link_flags),
        "",
    ]))
    cmake = ctx.actions.declare_file(ctx.label.name + "Config.cmake")
    ctx.actions.write(cmake, "\n".join([
        "# picos " + PICOS_VERSION + ", installed by tools/install:",
        "#   find_package(picos REQUIRED)",
        "#   target_link_libraries(app PRIVATE picos::picos)",
        "get_filename_component(_picos_prefix \"${CMAKE_CURRENT_LIST_DIR}/../../..\" ABSOLUTE)",
        "set(picos_VERSION " + PICOS_VERSION + ")",
        "if(NOT TARGET picos::picos)",
        "  add_library(picos::picos SHARED IMPORTED)",
        "  set_target_properties(picos::picos PROPERTIES",
        "    IMPORTED_LOCATION \"${_picos_prefix}/lib/libpicos.so\"",
        "    IMPORTED_SONAME \"libpicos.so\"",
        "    INTERFACE_INCLUDE_DIRECTORIES \"" + ";".join(["${_picos_prefix}/include/picos"] + _dedupe(include_dirs)) + "\"",
        "    INTERFACE_COMPILE_FEATURES cxx_std_20",
        "    INTERFACE_COMPILE_OPTIONS \"" + ";".join(_REQUIRED_CFLAGS) + "\"",
        "    INTERFACE_COMPILE_DEFINITIONS \"" + ";".join(comp.defines.to_list()) + "\"",
        "    INTERFACE_LINK_LIBRARIES \"" + ";".join(link_flags) + "\")",
        "endif()",
        "unset(_picos_prefix)",
        "",
    ]))

    # The script gets everything through an argument file: the headers as
    # "source destination" pairs, then the archives.
    manifest = ctx.actions.declare_file(ctx.label.name + ".manifest")
    lines = ["header %s %s" % (h.path, _install_path(h)) for h in headers]
    lines += ["archive %s" % a.path for a in archives]
    lines += ["linkflag %s" % f for f in link_flags]
    ctx.actions.write(manifest, "\n".join(lines) + "\n")

    cc_toolchain = ctx.attr._cc_toolchain[cc_common.CcToolchainInfo]
    ctx.actions.run(
        executable = ctx.executable._make_dist,
        arguments = [out.path, manifest.path, pc.path, cmake.path, cc_toolchain.compiler_executable],
        inputs = depset([manifest, pc, cmake] + headers + archives, transitive = [cc_toolchain.all_files]),
        outputs = [out],
        # PATH, for the compiler driver to find the linker.
        use_default_shell_env = True,
        mnemonic = "PicosDist",
        progress_message = "Assembling the picos install tree %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

picos_dist = rule(
    implementation = _picos_dist_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo], doc = "The libraries to install."),
        "_make_dist": attr.label(
            default = Label("//tools/dist:make_dist"),
            executable = True,
            cfg = "host",
        ),
        "_cc_toolchain": attr.label(default = Label("@bazel_tools//tools/cpp:current_cc_toolchain")),
    },
    doc = "The install tree of picos: headers, libpicos.so, picos.pc, picosConfig.cmake.",
)
