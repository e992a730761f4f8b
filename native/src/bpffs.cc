// bpffs.cc: ensureBpffs(path), the pin root's file system, and unpin(path).
//
// Pinned maps live in a bpffs. If the pin root (or, when it does not exist
// yet, its nearest existing ancestor) is already on one, it is just created
// with mkdir -p; otherwise it is created and a new bpffs instance is mounted
// on it (each bpf mount is a separate instance, so pins made there vanish when
// it is unmounted).
//
// unpin(path) removes a pin (unlink(2)); the object lives on while fds or
// attached programs hold it. Only inside a bpffs: a path elsewhere is EINVAL,
// so a wrong pin path can never delete an ordinary file. False when nothing
// was pinned there.
#include <errno.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace sy {

namespace {

std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void MkdirP(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) throw SysError(errno, "mkdir", prefix);
  }
}

Napi::Value EnsureBpffsJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), EnsureBpffs(ArgString(info, 0, "path")));
}

Napi::Value UnpinJs(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  struct statfs st;
  if (statfs(Parent(path).c_str(), &st) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    throw SysError(errno, "statfs", Parent(path));
  }
  if (st.f_type != static_cast<decltype(st.f_type)>(BPF_FS_MAGIC)) {
    throw SysError::Invalid("unpin", path, "not inside a bpffs");
  }
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    throw SysError(errno, "unlink", path);
  }
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

bool EnsureBpffs(const std::string& raw) {
  if (raw.empty()) throw SysError::Invalid("ensureBpffs", "\"\"", "path is empty");
  std::string path = raw;
  while (path.size() > 1 && path.back() == '/') path.pop_back();

  std::string probe = path;
  struct statfs st;
  while (statfs(probe.c_str(), &st) != 0) {
    if (errno != ENOENT) throw SysError(errno, "statfs", probe);
    probe = Parent(probe);
  }
  bool on_bpffs = st.f_type == static_cast<decltype(st.f_type)>(BPF_FS_MAGIC);
  MkdirP(path);
  if (on_bpffs) return false;
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0) throw SysError(errno, "mount", path + " (bpffs)");
  return true;
}

void InitBpffs(Napi::Env env, Napi::Object exports) {
  exports.Set("ensureBpffs", Napi::Function::New(env, Guarded<EnsureBpffsJs>, "ensureBpffs"));
  exports.Set("unpin", Napi::Function::New(env, Guarded<UnpinJs>, "unpin"));
}

}  // namespace sy
