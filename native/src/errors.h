// errors.h: how a failed system call becomes a JS Error.
//
// Native code throws SysError (a C++ exception carrying errno, the syscall or
// libbpf call that failed and the object it was acting on). The JS boundary
// turns it into an Error whose message names all three and which carries the
// properties errno (positive), code ('ENOENT') and syscall, never a bare string.
#pragma once

#include <napi.h>

#include <cstddef>
#include <exception>
#include <optional>
#include <string>

namespace sy {

class SysError : public std::exception {
 public:
  // detail is appended to the message verbatim (" (record 3 of 10)", or a
  // "\n"-led block such as the libbpf log tail).
  SysError(int errnum, std::string syscall, std::string object, std::string detail = "");

  // A caller-side mistake found before any syscall (sizes that do not match
  // the map, ...): reason replaces strerror() in the message.
  static SysError Invalid(std::string operation, std::string object, std::string reason);

  // For a batch that failed part way: records before the failing one were
  // applied. Reaches JS as the property `done`.
  SysError& WithDone(size_t done) {
    done_ = done;
    return *this;
  }

  int errnum() const { return errnum_; }
  const std::string& syscall() const { return syscall_; }
  const std::string& message() const { return message_; }
  const char* what() const noexcept override { return message_.c_str(); }

  Napi::Error ToJs(Napi::Env env) const;

 private:
  SysError() = default;
  int errnum_ = 0;
  std::string syscall_;
  std::string message_;
  std::optional<size_t> done_;
};

// "ENOENT" for 2, "ENOTSUPP" for the kernel-internal 524 that BPF leaks, ...
std::string ErrnoCode(int errnum);
// strerror() with a readable text for kernel-internal errnos (524).
std::string ErrnoText(int errnum);

// Wraps a synchronous binding so that a SysError it throws reaches JS as an
// Error with errno/code/syscall (node-addon-api only converts Napi::Error).
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const SysError& e) {
    throw e.ToJs(info.Env());
  }
}

}  // namespace sy
