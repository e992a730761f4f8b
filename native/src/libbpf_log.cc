// libbpf_log.cc: the libbpf print callback and the per-thread LogCapture it
// writes into (see libbpf_log.h).
#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>

namespace sy {

namespace {

thread_local LogCapture* current = nullptr;

// Keep at most this much; the error message shows only the tail anyway, but a
// verifier log can be megabytes.
constexpr size_t kKeepBytes = 64 * 1024;

int Print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  if (current == nullptr) {
    return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
  }
  // Messages already start with "libbpf: ", except the verifier log's lines.
  va_list copy;
  va_copy(copy, ap);
  char small[512];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n < 0) {
    va_end(copy);
    return n;
  }
  if (static_cast<size_t>(n) < sizeof small) {
    current->Append(std::string(small, n));
  } else {
    std::string big(static_cast<size_t>(n) + 1, '\0');
    vsnprintf(big.data(), big.size(), fmt, copy);
    big.resize(n);
    current->Append(big);
  }
  va_end(copy);
  return n;
}

}  // namespace

void InstallLibbpfPrint() { libbpf_set_print(Print); }

LogCapture::LogCapture() : prev_(current) { current = this; }

LogCapture::~LogCapture() { current = prev_; }

void LogCapture::Append(const std::string& text) {
  buf_ += text;
  if (buf_.size() > 2 * kKeepBytes) buf_.erase(0, buf_.size() - kKeepBytes);
}

std::string LogCapture::Detail(size_t max_bytes) const {
  if (buf_.empty()) return "";
  std::string tail = buf_.size() > max_bytes ? "..." + buf_.substr(buf_.size() - max_bytes) : buf_;
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return "\n" + tail;
}

}  // namespace sy
