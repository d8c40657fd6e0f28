// Exporting task functions from a computation library (dispycos's
// computation code), header-only: a computation is a shared library built
// with picos_computation (compute/computation.bzl) that registers functions
// by name; a worker process dlopens it and runs them as jobs.
//
//   #include "compute/export.h"
//   // A job: bytes in, bytes out. Return 0 with the result in *out, or
//   // nonzero with an error message in *out (the client's Join gives it as
//   // kAborted).
//   int Square(std::string_view arg, std::string* out) {
//     int64_t n = 0;
//     if (!absl::SimpleAtoi(arg, &n)) { *out = "not a number"; return 1; }
//     *out = std::to_string(n * n);
//     return 0;
//   }
//   PICOS_COMPUTE_FUNCTION(square, Square);
//
// Why bytes and a C ABI: the library must link nothing of picos's
// implementation (a second copy of the kernel or of a registry inside the
// library would be a private one the worker never sees), so what crosses
// between worker and library is only what this header defines: a table of
// {name, C function pointer} found by dlsym of the one well-known symbol
// kComputeTableSymbol. Arguments and results are opaque bytes: the client
// encodes them as it likes (text, Cap'n Proto, core/wire's codec).
//
// Guarantees: names are what the macro was given (an identifier); a name
// registered twice keeps the first; the table is filled by the library's
// static initializers, so it is complete once dlopen returns. A function
// runs on a thread of the worker's own (not the one its networking runs
// on, so a long job does not make the worker look dead), one job at a time
// per worker; it may block.
#ifndef PICOS_COMPUTE_EXPORT_H_
#define PICOS_COMPUTE_EXPORT_H_

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

extern "C" {

// Appends `n` bytes at `data` to the result held by `ctx`.
typedef void (*PicosComputeAppend)(void* ctx, const char* data, size_t n);

// A job's entry point as the worker calls it: 0 for success (the bytes
// appended are the result), nonzero for failure (they are the message).
typedef int (*PicosComputeFn)(const char* arg, size_t arg_len, void* ctx, PicosComputeAppend append);

struct PicosComputeEntry {
  const char* name;
  PicosComputeFn fn;
};

// What dlsym(kComputeTableSymbol) gives: the library's table, its length in
// *n.
typedef const PicosComputeEntry* (*PicosComputeTableFn)(size_t* n);

}  // extern "C"

namespace picos::compute {

inline constexpr char kComputeTableSymbol[] = "picos_compute_table";
// Most functions one library registers (the worker reads no more).
inline constexpr size_t kMaxComputeFunctions = 1024;

// A job function as a user writes it.
using ComputeFunction = int (*)(std::string_view arg, std::string* out);

namespace export_internal {

struct Table {
  PicosComputeEntry entries[kMaxComputeFunctions];
  size_t n = 0;
};

// One table per library: the header is compiled into the library only,
// and the symbol below is looked up in the library's own handle.
inline Table& TheTable() {
  static Table t;
  return t;
}

}  // namespace export_internal
}  // namespace picos::compute

// The table's one entry point, what the worker finds with dlsym. An inline
// function (every file of the library that includes this header has the
// same one), emitted because Add below stores its address in a volatile:
// an inline function nothing odr-uses is not emitted at all (nor is one
// whose address only an unused static takes, at -O2).
extern "C" __attribute__((visibility("default"))) inline const PicosComputeEntry* picos_compute_table(
    size_t* n) {
  picos::compute::export_internal::Table& t = picos::compute::export_internal::TheTable();
  *n = t.n;
  return t.entries;
}

namespace picos::compute::export_internal {

inline bool Add(const char* name, PicosComputeFn fn) {
  volatile PicosComputeTableFn keep = &picos_compute_table;  // see picos_compute_table
  (void)keep;
  Table& t = TheTable();
  for (size_t i = 0; i < t.n; ++i) {
    if (std::strcmp(t.entries[i].name, name) == 0) return false;
  }
  if (t.n == kMaxComputeFunctions) return false;
  t.entries[t.n++] = PicosComputeEntry{name, fn};
  return true;
}

template <ComputeFunction F>
int Thunk(const char* arg, size_t arg_len, void* ctx, PicosComputeAppend append) {
  std::string out;
  const int rc = F(std::string_view(arg, arg_len), &out);
  append(ctx, out.data(), out.size());
  return rc;
}

}  // namespace picos::compute::export_internal

// Registers `fn` (a picos::compute::ComputeFunction) under the name `name`
// (an identifier, used as the job's function name).
#define PICOS_COMPUTE_FUNCTION(name, fn)                                                          \
  [[maybe_unused]] static const bool picos_compute_registered_##name =                          \
      ::picos::compute::export_internal::Add(#name, &::picos::compute::export_internal::Thunk<fn>)

#endif  // PICOS_COMPUTE_EXPORT_H_
