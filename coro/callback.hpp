#pragma once
// Callback: a move-only `void()` callable with inline storage for small
// captures, so call_soon/call_later do not allocate for typical lambdas.
// std::function needs copyable targets and std::move_only_function is C++23.
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace corio {

class Callback {
  static constexpr std::size_t kInline = 48;

  struct VTable {
    void (*invoke)(void*);
    void (*move_to)(void* from, void* to) noexcept;  // move-construct into `to`, destroy `from`
    void (*destroy)(void*) noexcept;
  };

  template <class F>
  static constexpr bool fits_inline = sizeof(F) <= kInline && alignof(F) <= alignof(std::max_align_t) &&
                                      std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static const VTable* vtable_for() noexcept {
    if constexpr (fits_inline<F>) {
      static constexpr VTable vt{
          [](void* p) { (*static_cast<F*>(p))(); },
          [](void* from, void* to) noexcept {
            ::new (to) F(std::move(*static_cast<F*>(from)));
            static_cast<F*>(from)->~F();
          },
          [](void* p) noexcept { static_cast<F*>(p)->~F(); }};
      return &vt;
    } else {
      static constexpr VTable vt{
          [](void* p) { (**static_cast<F**>(p))(); },
          [](void* from, void* to) noexcept { ::new (to) F*(*static_cast<F**>(from)); },
          [](void* p) noexcept { delete *static_cast<F**>(p); }};
      return &vt;
    }
  }

 public:
  Callback() noexcept = default;

  template <class F, class D = std::decay_t<F>,
            class = std::enable_if_t<!std::is_same_v<D, Callback> && std::is_invocable_v<D&>>>
  Callback(F&& f) {  // NOLINT: implicit like std::function
    if constexpr (fits_inline<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
    } else {
      ::new (static_cast<void*>(storage_)) D*(new D(std::forward<F>(f)));
    }
    vt_ = vtable_for<D>();
  }

  Callback(Callback&& o) noexcept : vt_(o.vt_) {
    if (vt_) {
      vt_->move_to(o.storage_, storage_);
      o.vt_ = nullptr;
    }
  }

  Callback& operator=(Callback&& o) noexcept {
    if (this != &o) {
      reset();
      if (o.vt_) {
        o.vt_->move_to(o.storage_, storage_);
        vt_ = std::exchange(o.vt_, nullptr);
      }
    }
    return *this;
  }

  Callback(const Callback&) = delete;
  Callback& operator=(const Callback&) = delete;
  ~Callback() { reset(); }

  explicit operator bool() const noexcept { return vt_ != nullptr; }
  void operator()() { vt_->invoke(storage_); }

  void reset() noexcept {
    if (vt_) {
      vt_->destroy(storage_);
      vt_ = nullptr;
    }
  }

 private:
  const VTable* vt_ = nullptr;
  alignas(std::max_align_t) unsigned char storage_[kInline];
};

}  // namespace corio
