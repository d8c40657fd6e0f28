# The remote layer's protocol between two picos processes (peers), version 4
# (2: the "select" frame that keeps one connection per pair; 3: sessions
# that outlive their connections: batches numbered and acknowledged, written
# again after a reconnect, node.cc; 4: proofs in handles and in every frame
# that names a task or channel, the "deliver", "ch_weight" and "where"
# frames).
# Read by core/remote/handshake.cc and core/remote/node.cc.
#
# Every connection starts with the handshake below, before any other byte is
# decoded. Each handshake message is one Cap'n Proto flat message preceded by
# a 4-byte big-endian length (core/io/framing.h), at most
# maxHandshakeMessageBytes long, so a peer that sends garbage or claims a
# 4 GiB message is refused before anything is allocated for it.
#
#   1. Both sides send Hello at once: magic, version, process id, a fresh
#      32-byte nonce from RAND_bytes, and the URIs the sender listens on.
#      A wrong magic is "not a picos peer"; another version is "protocol
#      version mismatch", and both sides say so, since each reads the
#      other's Hello.
#   2. Both send Proof: HMAC-SHA256 under the shared secret of
#      "picos-remote-v1" || role || the receiver's nonce || the sender's
#      nonce || the sender's process id || the receiver's process id, where
#      role is "connector" or "acceptor": a proof is bound to the receiver's
#      fresh nonce, so it cannot be replayed, and to the sender's role, so it
#      cannot be reflected back. Each side compares with CRYPTO_memcmp.
#   3. Both send Verdict: ok, or why the peer's proof was refused. A side
#      that refused closes the connection after its Verdict.
#
# After the handshake the connection carries batches of frames: each batch a
# length-prefixed core/wire/value.capnp message holding a list of frames:
# maps, each with an "op" key, and for the hottest operation a positional
# list (node.cc lists both). The first frame on every
# connection is the choice of the peer with the lower process id: "select",
# keep or not (one connection per pair of peers, however many dials); the
# other peer sends nothing before it. A writer gathers every frame
# queued for a peer into batches and one write, so messages to one peer
# travel together without any being held back when the link is idle.
# Each batch opens with a header that numbers it and acknowledges the
# other direction; after a broken connection the dialler connects again and
# each side writes again only the batches the other did not receive, so a
# message is applied once while the peer lives (node.cc, "Sessions").
#
# A new version of this protocol bumps protocolVersion; Hello keeps its
# first two fields forever so that any version can say "mismatch".
@0xd74c03bec3a2e6f8;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("picos::remote::protocol");

const magic :UInt64 = 0x5049434f5352454d;  # "PICOSREM"
const protocolVersion :UInt32 = 5;  # 5: positional send frames
const maxHandshakeMessageBytes :UInt32 = 4096;

struct Hello {
  magic @0 :UInt64;
  version @1 :UInt32;
  processId @2 :Data;        # 16 bytes (core/wire/value_codec.h, ProcessId())
  nonce @3 :Data;            # 32 fresh random bytes
  uris @4 :List(Text);       # where the sender listens; empty for a client only
  name @5 :Text;             # the sender's name, for logs
}

struct Proof {
  mac @0 :Data;              # 32 bytes of HMAC-SHA256
}

struct Verdict {
  ok @0 :Bool;
  reason @1 :Text;           # why the peer's proof was refused, when not ok
}
