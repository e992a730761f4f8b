// tc.cc: tc clsact hooks and BPF filters on an interface, and interface
// name/index lookups, in the calling process's network namespace.
//
// Thin wrappers over libbpf's bpf_tc_* (netlink). Filters are always
// direct-action (libbpf sets TCA_BPF_FLAG_ACT_DIRECT). These calls are quick
// and run on the main thread. The kernel's extended ack, which libbpf only
// logs, is appended to error messages.
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cstring>
#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_log.h"

namespace sy {

namespace {

struct Filter {
  int ifindex;
  bpf_tc_attach_point point;
  uint32_t handle;
  uint32_t priority;
};

std::string PointName(bpf_tc_attach_point p) {
  if (p == BPF_TC_INGRESS) return "ingress";
  if (p == BPF_TC_EGRESS) return "egress";
  return "ingress+egress";
}

// "eth0 (ifindex 2) ingress"
std::string HookObject(int ifindex, bpf_tc_attach_point p) {
  char name[IF_NAMESIZE] = {0};
  std::string dev = if_indextoname(ifindex, name) != nullptr ? std::string(name) + " (ifindex " : "(ifindex ";
  return dev + std::to_string(ifindex) + ") " + PointName(p);
}

std::string FilterObject(const Filter& f) {
  return HookObject(f.ifindex, f.point) + " handle " + std::to_string(f.handle) + " priority " +
         std::to_string(f.priority);
}

bpf_tc_attach_point ParsePoint(Napi::Env env, Napi::Value v, bool allow_both) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "ingress") return BPF_TC_INGRESS;
  if (s == "egress") return BPF_TC_EGRESS;
  if (allow_both && s == "both") return static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
  throw Napi::TypeError::New(
      env, allow_both ? "direction must be 'ingress', 'egress' or 'both'" : "direction must be 'ingress' or 'egress'");
}

uint32_t OptU32(Napi::Env env, Napi::Object o, const char* name, uint32_t max) {
  Napi::Value v = o.Get(name);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 1 && d <= max && d == static_cast<uint32_t>(d))) {
    throw Napi::TypeError::New(env, std::string(name) + " must be an integer in [1, " + std::to_string(max) + "]");
  }
  return static_cast<uint32_t>(d);
}

int ArgIfindex(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int>(ArgNumber(info, i, "ifindex", 1, INT32_MAX));
}

Filter ArgFilter(const Napi::CallbackInfo& info, int ifindex, size_t i) {
  Napi::Object o = ArgObject(info, i, "opts");
  // The kernel keeps a filter priority in 16 bits.
  return {ifindex, ParsePoint(info.Env(), o.Get("direction"), false), OptU32(info.Env(), o, "handle", UINT32_MAX),
          OptU32(info.Env(), o, "priority", UINT16_MAX)};
}

bpf_tc_hook Hook(int ifindex, bpf_tc_attach_point point) {
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = ifindex;
  hook.attach_point = point;
  return hook;
}

bpf_tc_opts Opts(const Filter& f) {
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.handle = f.handle;
  opts.priority = f.priority;
  return opts;
}

// tcAttach(ifindex, progFd, {direction, handle, priority, replace = true})
//   => {progId, handle, priority}
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ArgIfindex(info, 0);
  int prog_fd = ArgFd(info, 1, "progFd");
  Filter f = ArgFilter(info, ifindex, 2);
  Napi::Value replace = info[2].As<Napi::Object>().Get("replace");
  LogCapture log;

  bpf_tc_hook hook = Hook(f.ifindex, f.point);
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST)
    throw SysError(-err, "bpf_tc_hook_create", HookObject(f.ifindex, f.point), log.Detail());
  log.Clear();  // the kernel's note on EEXIST ("Exclusivity flag on") is not news

  bpf_tc_opts opts = Opts(f);
  opts.prog_fd = prog_fd;
  opts.flags = replace.IsUndefined() || replace.ToBoolean() ? BPF_TC_F_REPLACE : 0;
  err = bpf_tc_attach(&hook, &opts);
  // libbpf reads the program's id first; that command says EBADFD for an fd
  // that is not open, where every other bpf command says EBADF.
  if (err == -EBADFD) err = -EBADF;
  if (err != 0)
    throw SysError(-err, "bpf_tc_attach", FilterObject(f) + " (prog fd " + std::to_string(prog_fd) + ")", log.Detail());

  Napi::Object out = Napi::Object::New(env);
  out.Set("progId", opts.prog_id);
  out.Set("handle", opts.handle);
  out.Set("priority", opts.priority);
  return out;
}

// Looks the filter up; false when it is not there. ENOENT: no such filter.
// EINVAL: no clsact qdisc on the device at all (the kernel's "Parent Qdisc
// doesn't exists"). Any other failure throws.
static bool QueryFilter(const Filter& f, bpf_tc_opts* opts, LogCapture& log) {
  bpf_tc_hook hook = Hook(f.ifindex, f.point);
  *opts = Opts(f);
  int err = bpf_tc_query(&hook, opts);
  if (err == -ENOENT || err == -EINVAL) return false;
  if (err != 0) throw SysError(-err, "bpf_tc_query", FilterObject(f), log.Detail());
  return true;
}

// tcQuery(ifindex, {direction, handle, priority}) => {progId} | null
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Filter f = ArgFilter(info, ArgIfindex(info, 0), 1);
  LogCapture log;
  bpf_tc_opts opts;
  if (!QueryFilter(f, &opts, log)) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("progId", opts.prog_id);
  return out;
}

// tcDetach(ifindex, {direction, handle, priority}) => detached?
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Filter f = ArgFilter(info, ArgIfindex(info, 0), 1);
  LogCapture log;
  bpf_tc_opts probe;
  if (!QueryFilter(f, &probe, log)) return Napi::Boolean::New(env, false);
  bpf_tc_hook hook = Hook(f.ifindex, f.point);
  bpf_tc_opts opts = Opts(f);
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);  // removed by someone else meanwhile
  if (err != 0) throw SysError(-err, "bpf_tc_detach", FilterObject(f), log.Detail());
  return Napi::Boolean::New(env, true);
}

// tcHookDestroy(ifindex, 'both' | 'ingress' | 'egress') => removed?
// 'both' deletes the clsact qdisc with every filter on it; one direction only
// flushes that direction's filters (libbpf's semantics).
Napi::Value TcHookDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ArgIfindex(info, 0);
  bpf_tc_attach_point point = ParsePoint(env, info[1].IsUndefined() ? Napi::String::New(env, "both") : info[1], true);
  LogCapture log;
  bpf_tc_hook hook = Hook(ifindex, point);
  int err = bpf_tc_hook_destroy(&hook);
  if (err == -ENOENT || err == -EINVAL) return Napi::Boolean::New(env, false);  // no clsact qdisc
  if (err != 0) throw SysError(-err, "bpf_tc_hook_destroy", HookObject(ifindex, point), log.Detail());
  return Napi::Boolean::New(env, true);
}

Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  unsigned int index = if_nametoindex(name.c_str());
  if (index == 0) throw SysError(errno, "if_nametoindex", "interface " + name);
  return Napi::Number::New(info.Env(), index);
}

Napi::Value IfIndexToName(const Napi::CallbackInfo& info) {
  int index = ArgIfindex(info, 0);
  char name[IF_NAMESIZE] = {0};
  if (if_indextoname(index, name) == nullptr)
    throw SysError(errno, "if_indextoname", "ifindex " + std::to_string(index));
  return Napi::String::New(info.Env(), name);
}

}  // namespace

void InitTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcAttach", Napi::Function::New(env, Guarded<TcAttach>, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, Guarded<TcDetach>, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, Guarded<TcQuery>, "tcQuery"));
  exports.Set("tcHookDestroy", Napi::Function::New(env, Guarded<TcHookDestroy>, "tcHookDestroy"));
  exports.Set("ifNameToIndex", Napi::Function::New(env, Guarded<IfNameToIndex>, "ifNameToIndex"));
  exports.Set("ifIndexToName", Napi::Function::New(env, Guarded<IfIndexToName>, "ifIndexToName"));
}

}  // namespace sy
