# A tiny interface for kj_on_uv_test.cc: Cap'n Proto RPC over picos streams
# on the scheduler's loop.
@0xe9199fdc197db4ac;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("picos::internal::test");

interface Adder {
  add @0 (a :Int64, b :Int64) -> (sum :Int64);
}
