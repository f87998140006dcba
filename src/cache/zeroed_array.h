// A fixed-size array of trivially copyable T, zero at creation, whose pages the kernel commits
// only when they are first written: calloc() of a large block maps fresh anonymous memory and
// skips the memset. A cache sized for 10^7 tokens then costs memory in proportion to the tokens
// it actually holds, up to its full size once every slot has been written.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <span>
#include <type_traits>

namespace sllm {

template <typename T>
class ZeroedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  ZeroedArray() = default;
  // Zero-sized arrays hold no memory. When calloc fails the array is empty and allocated()
  // says so: callers check sizes against the machine's memory first (util/limits.h), so that
  // is a true shortage, reported as an error rather than thrown.
  explicit ZeroedArray(size_t n) {
    if (n == 0) return;
    data_.reset(static_cast<T*>(std::calloc(n, sizeof(T))));
    if (data_ != nullptr) size_ = n;
  }

  // Whether an array of n elements holds them (false only after a failed calloc).
  bool allocated(size_t n) const { return size_ == n; }

  size_t size() const { return size_; }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](size_t i) { return data_.get()[i]; }
  const T& operator[](size_t i) const { return data_.get()[i]; }
  operator std::span<const T>() const { return {data_.get(), size_}; }  // NOLINT: a view

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  size_t size_ = 0;
};

}  // namespace sllm
