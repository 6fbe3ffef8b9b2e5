// A mutex that spins briefly before it sleeps (glibc's adaptive mutex).
//
// For locks whose critical sections are a few hundred nanoseconds and are
// taken from several threads at high rates (FlushManager's submit() against
// its strand loop): std::mutex sleeps in futex() at the first contention,
// and the wake-up costs microseconds; a short spin usually finds the lock
// free. Lockable, so std::lock_guard and std::unique_lock work with it.
#pragma once

#include <pthread.h>

namespace memfuse::detail {

class AdaptiveMutex {
 public:
  AdaptiveMutex() noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&mutex_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~AdaptiveMutex() { pthread_mutex_destroy(&mutex_); }
  AdaptiveMutex(const AdaptiveMutex&) = delete;
  AdaptiveMutex& operator=(const AdaptiveMutex&) = delete;

  void lock() noexcept { pthread_mutex_lock(&mutex_); }
  bool try_lock() noexcept { return pthread_mutex_trylock(&mutex_) == 0; }
  void unlock() noexcept { pthread_mutex_unlock(&mutex_); }

 private:
  pthread_mutex_t mutex_;
};

}  // namespace memfuse::detail
