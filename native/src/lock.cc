// lock.cc: lockDir(path) and lockHolders(path), the pin directory's lock.
//
// One daemon at a time may write a pin directory (a DaemonSet surge starts
// the new pod while the old one is still terminating). The lock is a
// non-blocking exclusive flock(2) on the directory itself: bpffs has no
// regular files (open(O_CREAT) there is EACCES) and, on some kernels, no
// symlinks either, but every inode takes a flock. The fd returned holds the
// lock until closeFd() or the process's exit (the kernel drops it on a crash,
// so a lock is never stale). It is O_CLOEXEC: helpers the daemon spawns do
// not inherit it. flock locks belong to the open file description, so two
// lockDir() calls on one directory conflict even within one process.
//
// Who holds it is not recorded in the directory (nothing can be written
// there); lockHolders() reads /proc/locks for the FLOCK entries on the
// directory's device and inode: the holders' pids as this process's PID
// namespace sees them (a holder in another namespace shows as 0 and is left
// out).
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace sy {

namespace {

// Held elsewhere: EWOULDBLOCK (== EAGAIN on Linux, so the JS code is 'EAGAIN').
Napi::Value LockDir(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SysError(errno, "open", path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    throw SysError(err, "flock", path);
  }
  return Napi::Number::New(info.Env(), fd);
}

// A /proc/locks line: "1: FLOCK  ADVISORY  WRITE 4851 00:28:1 0 EOF"; a
// waiter's line has "->" after the index and is skipped.
Napi::Value LockHolders(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw SysError(errno, "stat", path);
  char dev[64];
  snprintf(dev, sizeof dev, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
           static_cast<unsigned long long>(st.st_ino));
  std::ifstream locks("/proc/locks");
  if (!locks) throw SysError(errno ? errno : ENOENT, "open", "/proc/locks");
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  std::string line;
  while (std::getline(locks, line)) {
    std::istringstream in(line);
    std::string index, kind, mode, access, where;
    long pid = 0;
    if (!(in >> index >> kind)) continue;
    if (kind == "->" || kind != "FLOCK") continue;
    if (!(in >> mode >> access >> pid >> where)) continue;
    if (where != dev || pid <= 0) continue;
    out.Set(n++, Napi::Number::New(env, static_cast<double>(pid)));
  }
  return out;
}

}  // namespace

void InitLock(Napi::Env env, Napi::Object exports) {
  exports.Set("lockDir", Napi::Function::New(env, Guarded<LockDir>, "lockDir"));
  exports.Set("lockHolders", Napi::Function::New(env, Guarded<LockHolders>, "lockHolders"));
}

}  // namespace sy
