# Discovery announcements (discovery/packet.h), one per UDP datagram on the
# discovery multicast group, or sent unicast to a static peer.
#
# A datagram is:
#
#   offset  size  field
#   0       8     magic "PICOSDSC"
#   8       2     formatVersion, big-endian
#   10      2     body length n, big-endian (a multiple of 8, 8..maxBodyBytes)
#   12      n     body: one Cap'n Proto flat message, an Announcement
#   12+n    32    HMAC-SHA256 under the shared secret of bytes 0 .. 12+n
#
# The receiver checks the size, the magic, the version, the length and the
# MAC (CRYPTO_memcmp) in that order, and decodes the body only after the MAC
# matched: a host without the secret gets nothing parsed beyond 12 fixed
# bytes. Then the timestamp must be within the replay window of the
# receiver's clock and the nonce unseen (ReplayGuard).
#
# A new format bumps formatVersion; the 12-byte header keeps its layout.
@0xb3f1c2a95e7d6408;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("picos::discovery::packet");

const magic :Text = "PICOSDSC";
const formatVersion :UInt16 = 1;
# Whole datagram: header, body and MAC, under a 1500-byte Ethernet MTU so
# that announcements are never fragmented.
const maxPacketBytes :UInt32 = 1400;
const maxBodyBytes :UInt32 = 1352;  # maxPacketBytes - 12 - 32, rounded down to 8
const maxUris :UInt32 = 8;
const maxUriBytes :UInt32 = 256;
const maxNameBytes :UInt32 = 128;

struct Announcement {
  kind @0 :Kind;
  enum Kind {
    hello @0;    # "I am here": periodically, and at start
    goodbye @1;  # "I am leaving": on a clean shutdown
  }
  processId @1 :Data;        # 16 bytes (core/wire/value_codec.h, ProcessId())
  name @2 :Text;
  uris @3 :List(Text);       # where the sender's node listens
  protocolVersion @4 :UInt32;  # core/remote's (handshake.h ProtocolVersion())
  timestampMs @5 :Int64;     # sender's wall clock, Unix milliseconds
  nonce @6 :Data;            # 16 fresh random bytes (RAND_bytes)
}
