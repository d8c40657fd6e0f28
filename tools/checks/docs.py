#!/usr/bin/python3
"""Checks that the README and docs stay true to the repository.

1. Code quoted in the README is the compiled code: a block announced by
   `<!-- quote: FILE REGION -->` must equal the lines of FILE between
   `// [readme:REGION]` and `// [/readme:REGION]` (CAF's manual does the same;
   `# [readme:REGION]` in Starlark and .bazelrc files).
2. The README's layout table lists exactly the folders that exist: every
   folder it names exists, and every top-level folder and every package under
   core/ is named.
3. The repository is self-contained: no file points at notes outside it.
Run by //tools/checks:docs_test; by hand: `tools/checks/docs.py` from the root.
`tools/checks/docs.py --update` copies every quoted region into README.md again.
"""
import os
import re
import sys

QUOTE = re.compile(r"<!-- quote: (\S+) (\S+) -->\s*\n```[a-z]*\n(.*?)```", re.S)
OUTSIDE = re.compile(r"\.\./shared|notes/(pitfalls|bazel-offline|operations)\.md|\bSTYLE\.md")
TEXT_SUFFIXES = (".h", ".cc", ".md", ".sh", ".bzl", ".py", ".capnp", "BUILD", "WORKSPACE", ".bazelrc")


def region(path, name):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # C++ files mark regions with //, Starlark and .bazelrc files with #.
    starts = (f"// [readme:{name}]", f"# [readme:{name}]")
    ends = (f"// [/readme:{name}]", f"# [/readme:{name}]")
    out, inside, found = [], False, False
    for line in lines:
        if line.strip() in starts:
            inside, found = True, True
            continue
        if line.strip() in ends:
            inside = False
            continue
        if inside:
            out.append(line)
    return ("\n".join(out) + "\n") if found else None


def check_quotes(root, readme, errors):
    quotes = QUOTE.findall(readme)
    if not quotes:
        errors.append("README.md quotes no compiled code (expected <!-- quote: FILE REGION --> blocks)")
    for path, name, block in quotes:
        full = os.path.join(root, path)
        if not os.path.exists(full):
            errors.append(f"README.md quotes {path}, which does not exist")
            continue
        want = region(full, name)
        if want is None:
            errors.append(f"README.md quotes region '{name}' of {path}, which has no such region")
        elif want != block:
            errors.append(f"README.md's quote of {path} [{name}] differs from the file: copy the region again")


def check_layout(root, readme, errors):
    m = re.search(r"^## Layout\n(.*?)(?=^## )", readme, re.S | re.M)
    if not m:
        errors.append("README.md has no '## Layout' section")
        return
    listed = set(re.findall(r"^\| `([a-z_/]+)/` \|", m.group(1), re.M))
    for folder in sorted(listed):
        if not os.path.isdir(os.path.join(root, folder)):
            errors.append(f"README.md's layout lists {folder}/, which does not exist")
    present = set()
    for name in os.listdir(root):
        if os.path.isdir(os.path.join(root, name)) and not name.startswith((".", "bazel-")):
            present.add(name)
    core = os.path.join(root, "core")
    if os.path.isdir(core):
        for name in os.listdir(core):
            if os.path.exists(os.path.join(core, name, "BUILD")):
                present.add("core/" + name)
    for folder in sorted(present - listed):
        if folder == "core" and any(p.startswith("core/") for p in listed):
            continue
        errors.append(f"{folder}/ exists but README.md's layout does not list it")


def check_self_contained(root, errors):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".git", "bazel-"))]
        for name in filenames:
            if not name.endswith(TEXT_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            if os.path.abspath(path) == os.path.abspath(__file__):
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    if OUTSIDE.search(line):
                        errors.append(f"{os.path.relpath(path, root)}:{n}: points outside the repository: {line.strip()}")


def update(root, readme):
    def fill(m):
        want = region(os.path.join(root, m.group(1)), m.group(2))
        if want is None:
            return m.group(0)
        head = m.group(0)[: m.group(0).index("```")]
        lang = re.match(r"```([a-z]*)", m.group(0)[len(head):]).group(1)
        return f"{head}```{lang}\n{want}```"
    return QUOTE.sub(fill, readme)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else "."
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    if "--update" in sys.argv:
        with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
            f.write(update(root, readme))
        return 0
    errors = []
    check_quotes(root, readme, errors)
    check_layout(root, readme, errors)
    check_self_contained(root, errors)
    for e in errors:
        print("docs:", e)
    print(f"docs: {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
