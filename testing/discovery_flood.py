#!/usr/bin/python3
"""Floods a discovery multicast group with packets a host without the secret
can make: random bytes (some behind a valid 12-byte header), a genuine
announcement captured from the group and replayed verbatim, truncated, and
with one bit flipped. Used by discovery_netns_test.sh.

    discovery_flood.py IFACE_ADDRESS GROUP PORT COUNT
"""
import os
import random
import socket
import struct
import sys


def main():
    iface, group, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind((group, port))
    rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                  socket.inet_aton(group) + socket.inet_aton(iface))
    rx.settimeout(10)
    genuine, _ = rx.recvfrom(2048)  # bounded by the timeout: fails the test if none comes
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    rng = random.Random(11)
    sent = 0
    for i in range(count):
        kind = i % 5
        if kind == 0:
            p = os.urandom(rng.randrange(0, 1401))
        elif kind == 1:  # a valid header, then garbage of the announced length, then a wrong MAC
            n = rng.randrange(1, 168) * 8
            p = b"PICOSDSC" + struct.pack(">HH", 1, n) + os.urandom(n + 32)
        elif kind == 2:
            p = genuine
        elif kind == 3:
            p = genuine[:rng.randrange(0, len(genuine))]
        else:
            b = bytearray(genuine)
            b[rng.randrange(0, len(b))] ^= 1 << rng.randrange(8)
            p = bytes(b)
        try:
            tx.sendto(p, (group, port))
            sent += 1
        except OSError:
            pass  # a full send buffer: that packet is simply not sent
    print(f"flood: sent {sent} of {count} packets ({len(genuine)}-byte genuine one captured)")


if __name__ == "__main__":
    main()
