// A small stand-in for std::expected, for compilers whose standard library
// does not offer it with this language mode: clang 14 with libstdc++ 12 (the
// fuzzing build, which needs clang's libFuzzer). libstdc++ 12 ships
// std::expected only when the compiler implements P0848 (constrained
// destructors), which clang 14 does not.
//
// It has the part of std::expected's interface memfuse uses, with the same
// meaning; value() on an error aborts (memfuse never relies on
// bad_expected_access). g++ 12 - every other build - uses std::expected.
#pragma once

#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace memfuse::detail {

template <typename E>
class UnexpectedFallback {
 public:
  explicit UnexpectedFallback(E e) : error_(std::move(e)) {}
  [[nodiscard]] const E& error() const& noexcept { return error_; }
  [[nodiscard]] E& error() & noexcept { return error_; }
  [[nodiscard]] E&& error() && noexcept { return std::move(error_); }

 private:
  E error_;
};

template <typename T>
struct IsUnexpectedFallback : std::false_type {};
template <typename E>
struct IsUnexpectedFallback<UnexpectedFallback<E>> : std::true_type {};

template <typename T, typename E>
class ExpectedFallback {
 public:
  using value_type = T;
  using error_type = E;

  ExpectedFallback()
    requires std::is_default_constructible_v<T>
      : v_(std::in_place_index<0>) {}
  template <typename U = T>
    requires(std::is_constructible_v<T, U &&> &&
             !std::is_same_v<std::remove_cvref_t<U>, ExpectedFallback> &&
             !IsUnexpectedFallback<std::remove_cvref_t<U>>::value)
  ExpectedFallback(U&& u) : v_(std::in_place_index<0>, std::forward<U>(u)) {}  // NOLINT: implicit, as std's
  template <typename G>
  ExpectedFallback(UnexpectedFallback<G> u)  // NOLINT
      : v_(std::in_place_index<1>, UnexpectedFallback<E>(E(std::move(u).error()))) {}

  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  [[nodiscard]] T& value() & { return check(), std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { return check(), std::get<0>(v_); }
  [[nodiscard]] T&& value() && { return check(), std::get<0>(std::move(v_)); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  template <typename U>
  [[nodiscard]] T value_or(U&& other) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(other));
  }
  template <typename U>
  [[nodiscard]] T value_or(U&& other) && {
    return has_value() ? std::get<0>(std::move(v_)) : static_cast<T>(std::forward<U>(other));
  }

  [[nodiscard]] const E& error() const& { return std::get<1>(v_).error(); }
  [[nodiscard]] E& error() & { return std::get<1>(v_).error(); }
  [[nodiscard]] E&& error() && { return std::get<1>(std::move(v_)).error(); }

 private:
  void check() const {
    if (!has_value()) std::abort();
  }
  std::variant<T, UnexpectedFallback<E>> v_;
};

template <typename E>
class ExpectedFallback<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  ExpectedFallback() = default;
  template <typename G>
  ExpectedFallback(UnexpectedFallback<G> u) : error_(E(std::move(u).error())) {}  // NOLINT

  [[nodiscard]] bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {
    if (!has_value()) std::abort();
  }
  void operator*() const noexcept {}

  [[nodiscard]] const E& error() const& { return *error_; }
  [[nodiscard]] E& error() & { return *error_; }
  [[nodiscard]] E&& error() && { return std::move(*error_); }

 private:
  std::optional<E> error_;
};

}  // namespace memfuse::detail
