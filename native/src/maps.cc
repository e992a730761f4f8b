// maps.cc: batched map operations on a map fd, off the main thread.
//
// Keys and values are opaque: a Buffer holds `count` fixed-size records back
// to back. Every call first reads the map's info to check that the caller's
// key and value sizes match the map (an encoder out of step with the BPF
// header fails here, naming both sizes). For per-CPU maps a value record is
// roundup(valueSize, 8) * numPossibleCpus() bytes, as the kernel copies it.
//
// Batch syscalls (kernel 5.6+) are tried first; where the kernel has no batch
// op for the map type, or predates them, the same records are applied one by
// one in order. Also here: mapInfo, mapOpenPinned, closeFd, numPossibleCpus.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "worker.h"

namespace sy {

namespace {

constexpr int kENOTSUPP = 524;  // kernel-internal, returned by bpf() for "no batch op"

std::string MapObject(int fd) { return "map fd " + std::to_string(fd); }

std::string RecordNote(size_t i, size_t count) {
  return " (record " + std::to_string(i) + " of " + std::to_string(count) + ")";
}

size_t PossibleCpus() {
  int n = libbpf_num_possible_cpus();
  if (n <= 0) throw SysError(n < 0 ? -n : EINVAL, "libbpf_num_possible_cpus", "/sys/devices/system/cpu/possible");
  return static_cast<size_t>(n);
}

bool IsPerCpu(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

bpf_map_info ReadMapInfo(int fd) {
  bpf_map_info info{};
  ReadInfoByFd(fd, &info, sizeof info, MapObject(fd));
  return info;
}

// The record layout the caller announced, checked against the map.
struct Layout {
  size_t key_size;
  size_t value_stride;  // bytes per value record in the Buffers
  size_t max_entries;
};

Layout CheckLayout(const char* op, int fd, uint32_t key_size, uint32_t value_size, bool with_values = true) {
  bpf_map_info info = ReadMapInfo(fd);
  if (key_size == 0 || key_size != info.key_size) {
    throw SysError::Invalid(
        op, MapObject(fd) + " (" + info.name + ")",
        "key size " + std::to_string(key_size) + " does not match the map's " + std::to_string(info.key_size));
  }
  if (with_values && value_size != info.value_size) {
    throw SysError::Invalid(
        op, MapObject(fd) + " (" + info.name + ")",
        "value size " + std::to_string(value_size) + " does not match the map's " + std::to_string(info.value_size));
  }
  return {key_size, ValueStride(info.type, info.value_size), info.max_entries};
}

size_t CountRecords(const char* op, int fd, const std::vector<uint8_t>& keys, size_t key_size) {
  if (keys.size() % key_size != 0) {
    throw SysError::Invalid(op, MapObject(fd),
                            "keys hold " + std::to_string(keys.size()) + " bytes, not a multiple of the key size " +
                                std::to_string(key_size));
  }
  return keys.size() / key_size;
}

// ENOMEM from an update of a map that is not preallocated (BPF_F_NO_PREALLOC
// hashes, the per-CPU traffic counters above all) is often transient: the
// kernel takes new elements from a per-CPU cache that an irq_work refills,
// and per-CPU values from the percpu allocator with GFP_NOWAIT, which does
// not populate new pages itself but leaves that to a worker. A batch of
// thousands of inserts can outrun both (seen with 1,000 to 100,000 counter
// entries on a 2-CPU VM, failing at a different record each time). So an
// update that fails with ENOMEM sleeps a little and continues from the
// record that failed; it gives up after kMaxStalls tries in a row that
// applied nothing (half a second in all), which is real memory pressure.
class MemoryRetry {
 public:
  // progressed: the failed call applied some records before failing.
  bool Again(bool progressed) {
    stalls_ = progressed ? 0 : stalls_ + 1;
    if (stalls_ > kMaxStalls) return false;
    // 1 ms after progress (a shorter wait mostly failed again at once, seen
    // with 100,000 counter entries: ~17 waits each); then 2, 4 .. 256 ms.
    usleep(1000u << stalls_);
    return true;
  }

 private:
  static constexpr int kMaxStalls = 8;
  int stalls_ = 0;
};

// The kernel has no batch op for this map type (ENOTSUPP/EOPNOTSUPP) or does
// not know the batch commands at all (EINVAL, before 5.6).
bool BatchUnsupported(int err) { return err == EINVAL || err == kENOTSUPP || err == EOPNOTSUPP; }

class UpdateWorker : public PromiseWorker {
 public:
  UpdateWorker(Napi::Env env, int fd, std::vector<uint8_t> keys, std::vector<uint8_t> values, uint32_t key_size,
               uint32_t value_size, uint64_t flags)
      : PromiseWorker(env, "switchyard:mapUpdate"),
        fd_(fd),
        keys_(std::move(keys)),
        values_(std::move(values)),
        key_size_(key_size),
        value_size_(value_size),
        flags_(flags) {}

 private:
  void Run() override {
    Layout l = CheckLayout("mapUpdate", fd_, key_size_, value_size_);
    size_t count = CountRecords("mapUpdate", fd_, keys_, l.key_size);
    if (values_.size() != count * l.value_stride) {
      throw SysError::Invalid("mapUpdate", MapObject(fd_),
                              std::to_string(count) + " keys need " + std::to_string(count * l.value_stride) +
                                  " value bytes, got " + std::to_string(values_.size()));
    }
    size_t done = 0;
    MemoryRetry retry;
    // The kernel's batch update takes no per-element flag but BPF_F_LOCK
    // (BPF_NOEXIST/BPF_EXIST get EINVAL): those go one by one from the start.
    while (done < count && (flags_ & ~static_cast<uint64_t>(BPF_F_LOCK)) == 0) {
      bpf_map_batch_opts opts{};
      opts.sz = sizeof opts;
      opts.elem_flags = flags_;
      const uint32_t asked = static_cast<uint32_t>(count - done);
      uint32_t n = asked;
      int err = bpf_map_update_batch(fd_, Key(done, l), Value(done, l), &n, &opts);
      if (err == 0) return;
      err = -err;
      // On a per-record failure the kernel reports how many records it
      // applied; when it rejects the command itself, n is left as it was.
      const size_t applied = n < asked ? n : 0;
      done += applied;
      if (err == ENOMEM && retry.Again(applied > 0)) continue;
      if (!BatchUnsupported(err)) {
        throw SysError(err, "bpf_map_update_batch", MapObject(fd_), RecordNote(done, count)).WithDone(done);
      }
      break;
    }
    for (size_t i = done; i < count; ++i) {
      while (bpf_map_update_elem(fd_, Key(i, l), Value(i, l), flags_) != 0) {
        int err = errno;
        if (err == ENOMEM && retry.Again(false)) continue;
        throw SysError(err, "bpf_map_update_elem", MapObject(fd_), RecordNote(i, count)).WithDone(i);
      }
    }
  }

  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

  const uint8_t* Key(size_t i, const Layout& l) const { return keys_.data() + i * l.key_size; }
  const uint8_t* Value(size_t i, const Layout& l) const { return values_.data() + i * l.value_stride; }

  int fd_;
  std::vector<uint8_t> keys_, values_;
  uint32_t key_size_, value_size_;
  uint64_t flags_;
};

class DeleteWorker : public PromiseWorker {
 public:
  DeleteWorker(Napi::Env env, int fd, std::vector<uint8_t> keys, uint32_t key_size)
      : PromiseWorker(env, "switchyard:mapDelete"), fd_(fd), keys_(std::move(keys)), key_size_(key_size) {}

 private:
  // A key that is not in the map is not an error. The batch delete stops at
  // the first missing key (reporting how many it deleted), so skip that key
  // and continue the batch after it.
  void Run() override {
    Layout l = CheckLayout("mapDelete", fd_, key_size_, 0, false);
    size_t count = CountRecords("mapDelete", fd_, keys_, l.key_size);
    size_t done = 0;
    while (done < count) {
      bpf_map_batch_opts opts{};
      opts.sz = sizeof opts;
      const uint32_t asked = static_cast<uint32_t>(count - done);
      uint32_t n = asked;
      int err = bpf_map_delete_batch(fd_, Key(done, l), &n, &opts);
      if (err == 0) return;
      err = -err;
      bool reported = n < asked;  // else the kernel rejected the command itself
      if (err == ENOENT && reported) {
        done += n + 1;  // record done + n is the missing key
        continue;
      }
      if (!BatchUnsupported(err) && err != ENOENT) {
        size_t at = done + (reported ? n : 0);
        throw SysError(err, "bpf_map_delete_batch", MapObject(fd_), RecordNote(at, count)).WithDone(at);
      }
      if (reported) done += n;
      break;
    }
    for (size_t i = done; i < count; ++i) {
      if (bpf_map_delete_elem(fd_, Key(i, l)) != 0 && errno != ENOENT) {
        throw SysError(errno, "bpf_map_delete_elem", MapObject(fd_), RecordNote(i, count)).WithDone(i);
      }
    }
  }

  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

  const uint8_t* Key(size_t i, const Layout& l) const { return keys_.data() + i * l.key_size; }

  int fd_;
  std::vector<uint8_t> keys_;
  uint32_t key_size_;
};

class LookupWorker : public PromiseWorker {
 public:
  LookupWorker(Napi::Env env, int fd, std::vector<uint8_t> keys, uint32_t key_size, uint32_t value_size)
      : PromiseWorker(env, "switchyard:mapLookup"),
        fd_(fd),
        keys_(std::move(keys)),
        key_size_(key_size),
        value_size_(value_size) {}

 private:
  void Run() override {
    Layout l = CheckLayout("mapLookup", fd_, key_size_, value_size_);
    size_t count = CountRecords("mapLookup", fd_, keys_, l.key_size);
    values_.assign(count * l.value_stride, 0);
    found_.assign(count, 0);
    for (size_t i = 0; i < count; ++i) {
      uint8_t* value = values_.data() + i * l.value_stride;
      if (bpf_map_lookup_elem(fd_, keys_.data() + i * l.key_size, value) == 0) {
        found_[i] = 1;
      } else if (errno == ENOENT) {
        std::memset(value, 0, l.value_stride);
      } else {
        throw SysError(errno, "bpf_map_lookup_elem", MapObject(fd_), RecordNote(i, count));
      }
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values_.data(), values_.size()));
    Napi::Uint8Array found = Napi::Uint8Array::New(env, found_.size());
    if (!found_.empty()) std::memcpy(found.Data(), found_.data(), found_.size());
    out.Set("found", found);
    return out;
  }

  int fd_;
  std::vector<uint8_t> keys_;
  uint32_t key_size_, value_size_;
  std::vector<uint8_t> values_, found_;
};

class DumpWorker : public PromiseWorker {
 public:
  DumpWorker(Napi::Env env, int fd, uint32_t key_size, uint32_t value_size)
      : PromiseWorker(env, "switchyard:mapDump"), fd_(fd), key_size_(key_size), value_size_(value_size) {}

 private:
  // get_next_key walks the map; on a hash map it restarts from the first key
  // when the previous key was deleted meanwhile, so keys already taken are
  // skipped, and the walk gives up (EAGAIN) rather than chase a churning map.
  void Run() override {
    Layout l = CheckLayout("mapDump", fd_, key_size_, value_size_);
    const size_t max_steps = 4 * l.max_entries + 16;
    std::vector<uint8_t> key(l.key_size), next(l.key_size), value(l.value_stride);
    std::unordered_set<std::string> seen;
    bool first = true;
    for (size_t step = 0;; ++step) {
      if (step > max_steps) throw SysError(EAGAIN, "bpf_map_get_next_key", MapObject(fd_), " (map changed too fast)");
      if (bpf_map_get_next_key(fd_, first ? nullptr : key.data(), next.data()) != 0) {
        if (errno == ENOENT) return;
        throw SysError(errno, "bpf_map_get_next_key", MapObject(fd_));
      }
      first = false;
      key.swap(next);
      if (!seen.emplace(reinterpret_cast<const char*>(key.data()), key.size()).second) continue;
      if (bpf_map_lookup_elem(fd_, key.data(), value.data()) != 0) {
        if (errno == ENOENT) continue;  // deleted since get_next_key
        throw SysError(errno, "bpf_map_lookup_elem", MapObject(fd_));
      }
      keys_.insert(keys_.end(), key.begin(), key.end());
      values_.insert(values_.end(), value.begin(), value.end());
      ++count_;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys_.data(), keys_.size()));
    out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values_.data(), values_.size()));
    out.Set("count", Napi::Number::New(env, static_cast<double>(count_)));
    return out;
  }

  int fd_;
  uint32_t key_size_, value_size_;
  std::vector<uint8_t> keys_, values_;
  size_t count_ = 0;
};

Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto keys = ArgBytes(info, 1, "keys");
  auto values = ArgBytes(info, 2, "values");
  uint32_t key_size = ArgU32(info, 3, "keySize");
  uint32_t value_size = ArgU32(info, 4, "valueSize");
  uint64_t flags = info[5].IsUndefined() ? static_cast<uint64_t>(BPF_ANY)
                                         : static_cast<uint64_t>(ArgNumber(info, 5, "flags", 0, UINT32_MAX));
  return (new UpdateWorker(info.Env(), fd, std::move(keys), std::move(values), key_size, value_size, flags))->Start();
}

Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto keys = ArgBytes(info, 1, "keys");
  uint32_t key_size = ArgU32(info, 2, "keySize");
  return (new DeleteWorker(info.Env(), fd, std::move(keys), key_size))->Start();
}

Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto keys = ArgBytes(info, 1, "keys");
  uint32_t key_size = ArgU32(info, 2, "keySize");
  uint32_t value_size = ArgU32(info, 3, "valueSize");
  return (new LookupWorker(info.Env(), fd, std::move(keys), key_size, value_size))->Start();
}

Napi::Value MapDump(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint32_t key_size = ArgU32(info, 1, "keySize");
  uint32_t value_size = ArgU32(info, 2, "valueSize");
  return (new DumpWorker(info.Env(), fd, key_size, value_size))->Start();
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info m = ReadMapInfo(ArgFd(info, 0));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", m.id);
  out.Set("name", m.name);
  out.Set("type", m.type);
  out.Set("keySize", m.key_size);
  out.Set("valueSize", m.value_size);
  out.Set("maxEntries", m.max_entries);
  out.Set("valueStride", Napi::Number::New(env, static_cast<double>(ValueStride(m.type, m.value_size))));
  out.Set("flags", m.map_flags);
  return out;
}

Napi::Value MapOpenPinned(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) throw SysError(errno, "bpf_obj_get", path);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  if (close(fd) != 0) throw SysError(errno, "close", "fd " + std::to_string(fd));
  return info.Env().Undefined();
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PossibleCpus()));
}

}  // namespace

void ReadInfoByFd(int fd, void* info, uint32_t len, const std::string& object) {
  if (bpf_obj_get_info_by_fd(fd, info, &len) != 0) {
    throw SysError(errno == EBADFD ? EBADF : errno, "bpf_obj_get_info_by_fd", object);
  }
}

size_t ValueStride(uint32_t map_type, uint32_t value_size) {
  if (!IsPerCpu(map_type)) return value_size;
  return (static_cast<size_t>(value_size) + 7) / 8 * 8 * PossibleCpus();
}

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapDump", Napi::Function::New(env, MapDump, "mapDump"));
  exports.Set("mapInfo", Napi::Function::New(env, Guarded<MapInfo>, "mapInfo"));
  exports.Set("mapOpenPinned", Napi::Function::New(env, Guarded<MapOpenPinned>, "mapOpenPinned"));
  exports.Set("closeFd", Napi::Function::New(env, Guarded<CloseFd>, "closeFd"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, Guarded<NumPossibleCpus>, "numPossibleCpus"));
}

}  // namespace sy
