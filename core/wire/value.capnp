# The wire form of picos::Value (core/kernel/value.h). Encoded and decoded by
# core/wire/value_codec.h, which also bounds what a decoder accepts.
#
# Handles travel as identities, not pointers: the process that owns a task or
# channel, plus what names it there. A HandleCodec (value_codec.h) turns them
# into TaskRef/ChannelRef and back.
@0xe1db95aafa800347;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("picos::wire");

# A task: 16 random bytes naming its process, the task's id in that process
# (TaskRef::id()), its name when encoded (informative only), and the proof
# its process minted that the holder was given the handle (empty where no
# peer checks it; core/remote/handle_proof_internal.h).
struct TaskIdentity {
  processId @0 :Data;
  taskId @1 :UInt64;
  name @2 :Text;
  proof @3 :Data;
}

# A channel: its process, its name there, and the proof as for a task.
struct ChannelIdentity {
  processId @0 :Data;
  name @1 :Text;
  proof @2 :Data;
}

struct Value {
  union {
    null @0 :Void;
    bool @1 :Bool;
    int @2 :Int64;
    uint @3 :UInt64;
    double @4 :Float64;
    text @5 :Text;
    bytes @6 :Data;
    list @7 :List(Value);
    map @8 :List(MapEntry);
    task @9 :TaskIdentity;
    channel @10 :ChannelIdentity;
  }

  # Keys are unique; encoders write them in ascending byte order.
  struct MapEntry {
    key @0 :Text;
    value @1 :Value;
  }
}
