#!/usr/bin/python3
"""Checks tools/deploy/container/Dockerfile as far as a machine without a
container runtime can.

1. Syntax: instructions joined over continuation lines, each one Docker
   knows, FROM first, JSON arrays well formed, COPY --from naming an
   earlier stage.
2. Debian only: every FROM is debian:12 (or -slim) or an earlier stage;
   every package an `apt-get install` names is one this machine's Debian
   index knows (apt-cache policy, no network).
3. The runtime stage (the last) installs every Debian package that owns a
   shared library the built binaries load (ldd), besides what debian:12-slim
   already has.

    dockerfile_check.py Dockerfile BINARY...
"""
import json
import os
import re
import shlex
import subprocess
import sys

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
DEBIAN_IMAGES = {"debian:12", "debian:12-slim", "debian:bookworm", "debian:bookworm-slim"}
# In debian:12-slim already (apt needs them).
SLIM_BASE = {"libc6", "libgcc-s1", "libstdc++6"}


def instructions(text):
    out, buf, start = [], "", 0
    for n, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        out.append((start, buf))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def apt_packages(run):
    pkgs = []
    for m in re.finditer(r"apt-get install((?:\s+(?!&&)\S+)+)", run):
        for tok in m.group(1).split():
            if tok in ("&&", ";", "|"):
                break
            if not tok.startswith("-"):
                pkgs.append(tok)
    return pkgs


def known_to_apt(pkgs):
    """The packages of `pkgs` this machine's Debian index can install (one
    `apt-cache policy` call: `apt-cache show` of an unknown name takes a
    minute)."""
    r = subprocess.run(["apt-cache", "policy"] + sorted(pkgs), capture_output=True, text=True)
    known, current = set(), None
    for line in r.stdout.splitlines():
        m = re.match(r"^(\S+):$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^\s+Candidate: (\S+)$", line)
        if m and current and m.group(1) != "(none)":
            known.add(current)
    return known


def library_packages(binary):
    """The Debian packages owning the shared libraries `binary` loads (one
    dpkg -S call for all of them, by path and by real path: /lib is a link
    to /usr/lib)."""
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    errors, paths = [], []
    for line in r.stdout.splitlines():
        if "not found" in line:
            errors.append(f"{binary}: {line.strip()}")
        m = re.search(r"=>\s+(/\S+)", line)
        if m:
            paths.append(m.group(1))
    real = {p: os.path.realpath(p) for p in paths}
    s = subprocess.run(["dpkg", "-S"] + sorted(set(paths) | set(real.values())),
                       capture_output=True, text=True)
    owner = {}
    for line in s.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        owner[path.strip()] = pkg.split(":")[0].strip()
    pkgs = set()
    for p in paths:
        o = owner.get(p) or owner.get(real[p])
        if o is None:
            errors.append(f"{binary}: {p} belongs to no Debian package")
        else:
            pkgs.add(o)
    return pkgs, errors


def main():
    path, binaries = sys.argv[1], sys.argv[2:]
    with open(path, encoding="utf-8") as f:
        insts = instructions(f.read())
    errors, stages, stage_pkgs = [], [], []
    for n, (line, inst) in enumerate(insts):
        word = inst.split(None, 1)[0]
        rest = inst[len(word):].strip()
        if word.upper() not in INSTRUCTIONS:
            errors.append(f"line {line}: unknown instruction {word}")
            continue
        if word != word.upper():
            errors.append(f"line {line}: {word} is not upper case")
        word = word.upper()
        if n == 0 and word not in ("FROM", "ARG"):
            errors.append(f"line {line}: the first instruction must be FROM")
        if word == "FROM":
            parts = rest.split()
            image = parts[0]
            if image not in DEBIAN_IMAGES and image not in stages:
                errors.append(f"line {line}: FROM {image}: not Debian 12 nor an earlier stage")
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.append(parts[2])
            elif len(parts) != 1:
                errors.append(f"line {line}: FROM {rest}: expected 'image [AS name]'")
            stage_pkgs.append(set())
        elif not stage_pkgs:
            errors.append(f"line {line}: {word} before any FROM")
            continue
        if word == "RUN":
            for p in apt_packages(rest):
                stage_pkgs[-1].add(p)
        if word in ("CMD", "ENTRYPOINT") and rest.startswith("["):
            try:
                v = json.loads(rest)
                assert isinstance(v, list) and all(isinstance(x, str) for x in v)
            except (ValueError, AssertionError):
                errors.append(f"line {line}: {word}: not a JSON array of strings")
        if word == "COPY":
            m = re.match(r"--from=(\S+)", rest)
            if m and m.group(1) not in stages:
                errors.append(f"line {line}: COPY --from={m.group(1)}: no such stage")
        if word in ("ENV", "LABEL") and "=" not in rest:
            errors.append(f"line {line}: {word} without key=value")
        if word == "USER" and rest.split(":")[0] in ("root", "0"):
            errors.append(f"line {line}: runs as root")
    if not stage_pkgs:
        errors.append("no FROM")
    named = set().union(*stage_pkgs) if stage_pkgs else set()
    known = known_to_apt(named) if named else set()
    for p in sorted(named - known):
        errors.append(f"apt-get install {p}: not a Debian package this machine knows")
    if stage_pkgs and binaries:
        runtime = stage_pkgs[-1] | SLIM_BASE
        for b in binaries:
            needed, errs = library_packages(b)
            errors += errs
            for p in sorted(needed - runtime):
                errors.append(f"the runtime stage lacks {p}, which {b.rsplit('/', 1)[-1]} loads")
    for e in errors:
        print("dockerfile_check:", e)
    print(f"dockerfile_check: {len(insts)} instructions, {len(stages)} named stages, "
          f"{len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
