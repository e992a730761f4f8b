// args.h: checked reads of JS arguments. A wrong type is the caller's bug and
// throws a TypeError naming the argument; kernel failures are SysErrors.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace sy {

// An integer in [min, max]; v is an argument or an option's value.
inline double NumberValue(Napi::Env env, Napi::Value v, const char* name, double min, double max) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < min || d > max) {
    throw Napi::TypeError::New(env, std::string(name) + " must be an integer in [" +
                                        std::to_string(static_cast<int64_t>(min)) + ", " +
                                        std::to_string(static_cast<uint64_t>(max)) + "]");
  }
  return d;
}

inline double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name, double min, double max) {
  return NumberValue(info.Env(), info[i], name, min, max);
}

inline int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name = "fd") {
  return static_cast<int>(ArgNumber(info, i, name, 0, INT32_MAX));
}

inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<uint32_t>(ArgNumber(info, i, name, 0, UINT32_MAX));
}

inline std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// Copies the bytes: the worker thread must not read memory JS can change.
inline std::vector<uint8_t> BytesValue(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, std::string(name) + " must be a Buffer or Uint8Array");
  }
  auto bytes = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ByteLength());
}

inline std::vector<uint8_t> ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return BytesValue(info.Env(), info[i], name);
}

inline Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsObject()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an object");
  return v.As<Napi::Object>();
}

}  // namespace sy
