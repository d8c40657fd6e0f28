#!/usr/bin/python3
"""picos-node's console (compute/node_daemon.h), through a pseudo-terminal.

Starts the real picos-node with a pty as stdin (so it reads console lines)
and checks `status`, an unknown command, `quit` (closes gracefully: exit
status 0) and, in a second node, `terminate` (exit status 1). Every wait is
bounded (60 s, which only a hang reaches); the test kills only the nodes it
started, whatever happens.
"""
import os
import pty
import select
import signal
import sys
import tempfile
import time

NODE = "compute/picos-node"
LONG = 60.0


def start(dest):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOS_REMOTE_")}
    env["PICOS_REMOTE_SECRET"] = "console test secret"
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(NODE, [NODE, "--cpus=1", "--listen=tcp://127.0.0.1:0", "--dest_path=" + dest], env)
        finally:
            os._exit(127)
    return pid, fd


class Output:
    def __init__(self, fd):
        self.fd = fd
        self.text = ""

    def expect(self, what):
        deadline = time.monotonic() + LONG
        while what not in self.text:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r in the node's output:\n%s" % (what, self.text))
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # the node is gone (EIO)
                chunk = b""
            if not chunk:
                raise AssertionError("the node ended without %r:\n%s" % (what, self.text))
            self.text += chunk.decode(errors="replace")


def wait_exit(pid):
    deadline = time.monotonic() + LONG
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return status
        time.sleep(0.01)
    raise AssertionError("the node did not exit")


def run(command, said, code):
    dest = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    pid, fd = start(dest)
    ended = False
    try:
        out = Output(fd)
        out.expect("listening tcp://127.0.0.1:")
        os.write(fd, b"status\n")
        out.expect("status: 0 computations, 1 workers each")
        os.write(fd, b"bogus\n")
        out.expect("console: unknown command 'bogus'")
        os.write(fd, command.encode() + b"\n")
        out.expect(said)
        status = wait_exit(pid)
        ended = True
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != code:
            raise AssertionError("%s: exit status %r, not %d:\n%s" % (command, status, code, out.text))
    finally:
        if not ended:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def main():
    run("quit", "node closed", 0)
    run("terminate", "node terminated", 1)
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
