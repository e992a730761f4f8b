// errors.cc: SysError and its conversion into a JS Error with errno, code and
// syscall properties (see errors.h).
#include "errors.h"

#include <string.h>

namespace sy {

namespace {

// Errnos the kernel uses internally but that the bpf() syscall lets escape
// (include/linux/errno.h); glibc knows neither their names nor their text.
struct KernelErrno {
  int errnum;
  const char* code;
  const char* text;
};
constexpr KernelErrno kKernelErrnos[] = {
    {512, "ERESTARTSYS", "Restart system call"},
    {515, "ENOIOCTLCMD", "No ioctl command"},
    {524, "ENOTSUPP", "Operation not supported (kernel ENOTSUPP)"},
};

const KernelErrno* FindKernelErrno(int errnum) {
  for (const auto& k : kKernelErrnos) {
    if (k.errnum == errnum) return &k;
  }
  return nullptr;
}

}  // namespace

std::string ErrnoCode(int errnum) {
  if (const char* name = strerrorname_np(errnum)) return name;
  if (const KernelErrno* k = FindKernelErrno(errnum)) return k->code;
  return "UNKNOWN";
}

std::string ErrnoText(int errnum) {
  if (const KernelErrno* k = FindKernelErrno(errnum)) return k->text;
  char buf[128];
  return strerror_r(errnum, buf, sizeof buf);  // GNU variant: returns the text
}

SysError::SysError(int errnum, std::string syscall, std::string object, std::string detail)
    : errnum_(errnum > 0 ? errnum : (errnum < 0 ? -errnum : EIO)), syscall_(std::move(syscall)) {
  message_ = syscall_ + " on " + object + ": " + ErrnoText(errnum_) + detail;
}

SysError SysError::Invalid(std::string operation, std::string object, std::string reason) {
  SysError e;
  e.errnum_ = EINVAL;
  e.syscall_ = std::move(operation);
  e.message_ = e.syscall_ + " on " + object + ": " + reason;
  return e;
}

Napi::Error SysError::ToJs(Napi::Env env) const {
  Napi::Error err = Napi::Error::New(env, message_);
  err.Set("errno", Napi::Number::New(env, errnum_));
  err.Set("code", Napi::String::New(env, ErrnoCode(errnum_)));
  err.Set("syscall", Napi::String::New(env, syscall_));
  if (done_) err.Set("done", Napi::Number::New(env, static_cast<double>(*done_)));
  return err;
}

}  // namespace sy
