// object.cc: openObject() and NativeObject, a loaded BPF object.
//
// openObject opens an ELF object with libbpf, pointing pin_root_path at the
// pin root so that maps declared with LIBBPF_PIN_BY_NAME are reused from
// <pinRoot>/<name> when present and pinned there when not (libbpf does both
// during bpf_object__load). Load runs on a worker thread; a failure's message
// carries the tail of libbpf's log, which holds the verifier's log.
// NativeObject owns the bpf_object: the map and program fds it lists are valid
// until close() (pins stay). progIdFromFd and progInfo live here as they read
// program info.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_log.h"
#include "worker.h"

namespace sy {

namespace {

class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeObject",
                       {
                           InstanceMethod<&NativeObject::Maps>("maps"),
                           InstanceMethod<&NativeObject::Programs>("programs"),
                           InstanceMethod<&NativeObject::Close>("close"),
                       });
  }

  explicit NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
    if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsString()) {
      throw Napi::TypeError::New(info.Env(), "NativeObject is created by openObject()");
    }
    obj_ = info[0].As<Napi::External<bpf_object>>().Data();
    path_ = info[1].As<Napi::String>().Utf8Value();
  }

  ~NativeObject() override { bpf_object__close(obj_); }

 private:
  bpf_object* Loaded(const char* method) {
    if (obj_ == nullptr) throw SysError(EBADF, method, "closed BPF object " + path_).ToJs(Env());
    return obj_;
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    try {
      return ListMaps(info.Env());
    } catch (const SysError& e) {
      throw e.ToJs(info.Env());
    }
  }

  Napi::Value ListMaps(Napi::Env env) {
    bpf_object* obj = Loaded("maps");
    Napi::Array out = Napi::Array::New(env);
    bpf_map* map;
    uint32_t i = 0;
    bpf_object__for_each_map(map, obj) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("name", bpf_map__name(map));
      m.Set("fd", bpf_map__fd(map));
      m.Set("type", static_cast<uint32_t>(bpf_map__type(map)));
      m.Set("keySize", bpf_map__key_size(map));
      m.Set("valueSize", bpf_map__value_size(map));
      m.Set("maxEntries", bpf_map__max_entries(map));
      m.Set("valueStride",
            Napi::Number::New(env, static_cast<double>(ValueStride(bpf_map__type(map), bpf_map__value_size(map)))));
      const char* pin = bpf_map__pin_path(map);
      m.Set("pinPath", pin != nullptr ? Napi::Value(Napi::String::New(env, pin)) : env.Null());
      out.Set(i++, m);
    }
    return out;
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Loaded("programs");
    Napi::Array out = Napi::Array::New(env);
    bpf_program* prog;
    uint32_t i = 0;
    bpf_object__for_each_program(prog, obj) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", bpf_program__name(prog));
      p.Set("section", bpf_program__section_name(prog));
      p.Set("fd", bpf_program__fd(prog));
      p.Set("type", static_cast<uint32_t>(bpf_program__type(prog)));
      out.Set(i++, p);
    }
    return out;
  }

  // Idempotent. Closes every fd of the object; pinned maps stay in bpffs and
  // attached programs stay attached (tc holds its own reference).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    bpf_object__close(obj_);
    obj_ = nullptr;
    return info.Env().Undefined();
  }

  bpf_object* obj_ = nullptr;
  std::string path_;
};

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string path, std::string pin_root,
             std::vector<std::pair<std::string, uint32_t>> max_entries)
      : PromiseWorker(env, "switchyard:openObject"),
        path_(std::move(path)),
        pin_root_(std::move(pin_root)),
        max_entries_(std::move(max_entries)) {}

  ~OpenWorker() override { bpf_object__close(obj_); }  // still set only if never handed over

 private:
  void Run() override {
    EnsureBpffs(pin_root_);
    LogCapture log;
    bpf_object_open_opts opts{};
    opts.sz = sizeof opts;
    opts.pin_root_path = pin_root_.c_str();
    bpf_object* obj = bpf_object__open_file(path_.c_str(), &opts);
    if (obj == nullptr) throw SysError(errno, "bpf_object__open_file", path_, log.Detail());
    // Capacities chosen by the daemon, set between open and load (a pinned
    // map is reused only if its max_entries equals the one set here).
    for (const auto& [name, n] : max_entries_) {
      bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
      int e = map == nullptr ? -ENOENT : bpf_map__set_max_entries(map, n);
      if (e != 0) {
        bpf_object__close(obj);
        throw SysError(-e, "bpf_map__set_max_entries", path_ + " map " + name, log.Detail());
      }
    }
    int err = bpf_object__load(obj);
    if (err != 0) {
      bpf_object__close(obj);
      throw SysError(-err, "bpf_object__load", path_ + " (pin root " + pin_root_ + ")", log.Detail());
    }
    obj_ = obj;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::FunctionReference& ctor = env.GetInstanceData<AddonData>()->native_object;
    Napi::Object wrapped = ctor.New({Napi::External<bpf_object>::New(env, obj_), Napi::String::New(env, path_)});
    obj_ = nullptr;  // the NativeObject owns it now
    return wrapped;
  }

  std::string path_;
  std::string pin_root_;
  std::vector<std::pair<std::string, uint32_t>> max_entries_;
  bpf_object* obj_ = nullptr;
};

Napi::Value OpenObject(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  Napi::Object opts = ArgObject(info, 1, "opts");
  Napi::Value pin_root = opts.Get("pinRoot");
  if (!pin_root.IsString()) throw Napi::TypeError::New(info.Env(), "opts.pinRoot must be a string");
  std::vector<std::pair<std::string, uint32_t>> max_entries;
  Napi::Value me = opts.Get("maxEntries");
  if (!me.IsUndefined() && !me.IsNull()) {
    if (!me.IsObject())
      throw Napi::TypeError::New(info.Env(), "opts.maxEntries must be an object of map name -> number");
    Napi::Object o = me.As<Napi::Object>();
    Napi::Array names = o.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      Napi::Value v = o.Get(name);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 1 && d <= 0xffffffffu && d == static_cast<double>(static_cast<uint32_t>(d))))
        throw Napi::TypeError::New(info.Env(), "opts.maxEntries." + name + " must be an integer from 1 to 2^32-1");
      max_entries.emplace_back(name, static_cast<uint32_t>(d));
    }
  }
  return (new OpenWorker(info.Env(), path, pin_root.As<Napi::String>().Utf8Value(), std::move(max_entries)))->Start();
}

Napi::Value ProgIdFromFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  bpf_prog_info prog{};
  ReadInfoByFd(fd, &prog, sizeof prog, "program fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), prog.id);
}

// progInfo(id) => {id, name, type}: a loaded program by id (what tcQuery
// reports is attached), as `bpftool prog show id N` names it. The name is the
// kernel's (BPF_OBJ_NAME_LEN: 15 characters). ENOENT: no such program (it
// was unloaded); EPERM without CAP_SYS_ADMIN (bpf_prog_get_fd_by_id).
Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = ArgU32(info, 0, "id");
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw SysError(errno, "bpf_prog_get_fd_by_id", "program id " + std::to_string(id));
  bpf_prog_info prog{};
  try {
    ReadInfoByFd(fd, &prog, sizeof prog, "program id " + std::to_string(id));
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", prog.id);
  out.Set("name", prog.name);
  out.Set("type", prog.type);
  return out;
}

}  // namespace

void InitObject(Napi::Env env, Napi::Object exports) {
  env.GetInstanceData<AddonData>()->native_object = Napi::Persistent(NativeObject::Define(env));
  exports.Set("openObject", Napi::Function::New(env, OpenObject, "openObject"));
  exports.Set("progIdFromFd", Napi::Function::New(env, Guarded<ProgIdFromFd>, "progIdFromFd"));
  exports.Set("progInfo", Napi::Function::New(env, Guarded<ProgInfo>, "progInfo"));
}

}  // namespace sy
