#!/usr/bin/python3
"""Finds `co_await` inside the condition of an if, while, for or switch.

g++ 12.2 miscompiles such code: `if ((co_await x).ok()) a; else b;` traps
with SIGILL (an `ud2` it emitted as unreachable) when the task resumes, and
other shapes suspend the task without calling the awaiter (picos then ends the
task with kInternal; see README, "Things to know"). No runtime check can catch
the trap, so picos refuses the construct in its own code with this check
(//tools/checks:coawait_in_condition_test) and offers it for yours:

    tools/checks/coawait_in_condition.py src/          # files or folders
    # a.cc:12: co_await inside an if condition: assign the result first

Write instead:  absl::Status s = co_await x;  if (s.ok()) ...
"""
import os
import re
import sys

KEYWORD = re.compile(r"\b(if|while|for|switch)\s*(constexpr\s*)?\(")
# Comments, string and character literals, matched left to right so that
# "tcp://" is a string and not a comment.
LEXEMES = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)


def strip(text):
    # Keep line breaks so that line numbers stay right.
    return LEXEMES.sub(lambda m: "\n" * m.group(0).count("\n") if m.group(0)[0] == "/" else '""', text)


def findings(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = strip(f.read())
    out = []
    for m in KEYWORD.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
            i += 1
        if re.search(r"\bco_await\b", text[m.end():i]):
            line = text.count("\n", 0, m.start()) + 1
            out.append(f"{path}:{line}: co_await inside a {m.group(1)} condition: assign the result first")
    return out


def files(args):
    for a in args:
        if os.path.isdir(a):
            for dirpath, dirnames, names in os.walk(a):
                dirnames[:] = [d for d in dirnames if not d.startswith((".", "bazel-"))]
                for n in names:
                    if n.endswith((".h", ".cc", ".cpp", ".hpp")):
                        yield os.path.join(dirpath, n)
        else:
            yield a


def main():
    args = sys.argv[1:] or ["."]
    problems = [p for f in files(args) for p in findings(f)]
    for p in problems:
        print(p)
    print(f"coawait_in_condition: {len(problems)} found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
