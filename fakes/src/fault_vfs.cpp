#include "memfuse/fakes/fault_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "memfuse/assert.h"

namespace memfuse::fakes {
namespace {

constexpr int kSectorSize = 512;
constexpr int kShmSlots = SQLITE_SHM_NLOCK;

}  // namespace

std::string_view to_string(CrashModel m) noexcept {
  switch (m) {
    case CrashModel::DropUnsynced: return "drop_unsynced";
    case CrashModel::KeepRandomSubset: return "keep_random_subset";
    case CrashModel::TearLastWrite: return "tear_last_write";
  }
  return "?";
}

// One file: its current bytes, and an undo log of what happened since the
// last sync, from which a crash rebuilds what survives.
//
// The durable bytes are not kept: they are the current bytes with the undo
// log played backwards. So a write copies its data once (into `current`)
// and saves only the bytes it overwrites (none for an append, which is most
// of a WAL's writes), and a sync just forgets the log. (A durable copy, and
// each write's data kept aside until the sync applied it there, cost three
// copies and an allocation per written page: a sixth of the seed report's
// time.) A crash, rare, works out each unsynced write's data as it undoes
// them, newest first, then applies what survives to the durable bytes in
// the original order, drawing from `random` exactly as it always has.
struct FaultVfs::File {
  // One write (data_size bytes at offset) or truncation (to `offset`), and
  // what it replaced: the file's size before it, and the old bytes it
  // overwrote or cut off, saved in `saved` at saved_at.
  struct Undo {
    bool truncate;
    std::int64_t offset;
    std::size_t data_size;
    std::size_t old_size;
    std::size_t saved_at;
    std::size_t saved_size;
  };

  std::vector<std::uint8_t> current;
  std::vector<Undo> unsynced;
  std::vector<std::uint8_t> saved;

  // Main-file locks (SQLITE_LOCK_*), across the handles of this process.
  int shared_holders = 0;
  const void* reserved_by = nullptr;
  const void* pending_by = nullptr;
  const void* exclusive_by = nullptr;

  // Shared memory (the WAL index): regions and per-slot locks.
  std::vector<std::unique_ptr<std::uint8_t[]>> shm;
  int shm_region_size = 0;
  std::array<int, kShmSlots> shm_shared{};
  std::array<const void*, kShmSlots> shm_exclusive{};

  void save(std::size_t from, std::size_t to, Undo& u) {
    u.saved_at = saved.size();
    u.saved_size = to > from ? to - from : 0;
    saved.insert(saved.end(), current.begin() + static_cast<std::ptrdiff_t>(from),
                 current.begin() + static_cast<std::ptrdiff_t>(from + u.saved_size));
  }

  static void write_into(std::vector<std::uint8_t>& bytes, std::int64_t offset, const std::uint8_t* data,
                         std::size_t size) {
    const auto at = static_cast<std::size_t>(offset);
    if (bytes.size() < at + size) bytes.resize(at + size, 0);
    std::memcpy(bytes.data() + at, data, size);
  }

  void write(std::int64_t offset, const std::uint8_t* data, std::size_t size) {
    const auto at = static_cast<std::size_t>(offset);
    Undo u{false, offset, size, current.size(), 0, 0};
    save(std::min(at, current.size()), std::min(at + size, current.size()), u);
    unsynced.push_back(u);
    write_into(current, offset, data, size);
  }

  void truncate(std::int64_t size) {
    const auto to = static_cast<std::size_t>(size);
    Undo u{true, size, 0, current.size(), 0, 0};
    save(std::min(to, current.size()), current.size(), u);
    unsynced.push_back(u);
    current.resize(to);
  }

  void sync() {
    unsynced.clear();
    saved.clear();
  }

  // Puts back what `u` replaced; `bytes` must be the file as `u` left it.
  void undo(std::vector<std::uint8_t>& bytes, const Undo& u) const {
    if (u.truncate) bytes.resize(u.old_size);
    if (u.saved_size > 0) {
      std::memcpy(bytes.data() + u.offset, saved.data() + u.saved_at, u.saved_size);
    }
    if (!u.truncate) bytes.resize(u.old_size);
  }

  void crash(CrashModel model, Random& random) {
    // Newest first: each write's data is what the file holds in its range
    // once every later operation is undone.
    std::vector<std::vector<std::uint8_t>> data(unsynced.size());
    std::vector<std::uint8_t> survived = std::move(current);
    for (std::size_t i = unsynced.size(); i-- > 0;) {
      const Undo& u = unsynced[i];
      if (!u.truncate && model != CrashModel::DropUnsynced) {
        const auto at = survived.begin() + static_cast<std::ptrdiff_t>(u.offset);
        data[i].assign(at, at + static_cast<std::ptrdiff_t>(u.data_size));
      }
      undo(survived, u);
    }
    // `survived` is now the durable bytes.
    auto apply = [&](std::size_t i) {
      const Undo& u = unsynced[i];
      if (u.truncate) {
        survived.resize(static_cast<std::size_t>(u.offset));
      } else {
        write_into(survived, u.offset, data[i].data(), data[i].size());
      }
    };
    for (std::size_t i = 0; i < unsynced.size(); ++i) {
      const bool last = i + 1 == unsynced.size();
      switch (model) {
        case CrashModel::DropUnsynced:
          break;
        case CrashModel::KeepRandomSubset:
          if (random.chance(0.5)) apply(i);
          break;
        case CrashModel::TearLastWrite:
          if (!last) {
            apply(i);
          } else if (!unsynced[i].truncate) {
            // Some sectors of the last write reach the disk, others do not.
            const auto& w = data[i];
            for (std::size_t s = 0; s < w.size(); s += kSectorSize) {
              if (!random.chance(0.5)) continue;
              const std::size_t n = std::min<std::size_t>(kSectorSize, w.size() - s);
              write_into(survived, unsynced[i].offset + static_cast<std::int64_t>(s), w.data() + s, n);
            }
          }
          break;
      }
    }
    current = std::move(survived);
    sync();
    shm.clear();  // shared memory does not survive the process
    shm_shared.fill(0);
    shm_exclusive.fill(nullptr);
    shared_holders = 0;
    reserved_by = pending_by = exclusive_by = nullptr;
  }
};

// The sqlite3_file SQLite allocates for us (szOsFile): a POD header with a
// pointer to our state.
struct FaultVfs::Handle {
  sqlite3_file base;  // must be first
  FaultVfs* vfs;
  std::shared_ptr<File>* file;  // owned; null for a closed handle
  std::string* path;            // owned; empty for temporary files
  int lock_level;
  bool delete_on_close;
  std::uint64_t epoch;
  std::array<std::uint8_t, kShmSlots>* shm_held;  // owned: 0 none, 1 shared, 2 exclusive
};

namespace {

using Handle = FaultVfs::Handle;
using File = FaultVfs::File;

FaultVfs* vfs_of(sqlite3_vfs* v) { return static_cast<FaultVfs*>(v->pAppData); }
Handle* handle(sqlite3_file* f) { return reinterpret_cast<Handle*>(f); }
File& file_of(sqlite3_file* f) { return **handle(f)->file; }
bool dead(sqlite3_file* f) { return handle(f)->epoch != handle(f)->vfs->epoch(); }

int x_close(sqlite3_file* f) {
  Handle* h = handle(f);
  if (h->file != nullptr) {
    if (!dead(f)) {
      File& file = **h->file;
      if (h->lock_level >= SQLITE_LOCK_SHARED && file.shared_holders > 0) --file.shared_holders;
      if (file.reserved_by == h) file.reserved_by = nullptr;
      if (file.pending_by == h) file.pending_by = nullptr;
      if (file.exclusive_by == h) file.exclusive_by = nullptr;
      for (int i = 0; i < kShmSlots; ++i) {
        if ((*h->shm_held)[static_cast<std::size_t>(i)] == 1) --file.shm_shared[static_cast<std::size_t>(i)];
        if ((*h->shm_held)[static_cast<std::size_t>(i)] == 2) file.shm_exclusive[static_cast<std::size_t>(i)] = nullptr;
      }
      if (h->delete_on_close && !h->path->empty()) h->vfs->remove_file(*h->path);
    }
    delete h->file;
    delete h->path;
    delete h->shm_held;
    h->file = nullptr;
  }
  return SQLITE_OK;
}

int x_read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  if (dead(f)) return SQLITE_IOERR_READ;
  FaultVfs& vfs = *handle(f)->vfs;
  ++vfs.mutable_counters().reads;
  if (vfs.fire(vfs.faults().read, "vfs.read: SQLITE_IOERR_READ")) return SQLITE_IOERR_READ;
  const File& file = file_of(f);
  auto* dst = static_cast<std::uint8_t*>(out);
  const auto size = static_cast<sqlite3_int64>(file.current.size());
  const sqlite3_int64 available = std::clamp<sqlite3_int64>(size - offset, 0, amount);
  if (available > 0) std::memcpy(dst, file.current.data() + offset, static_cast<std::size_t>(available));
  if (available < amount) {
    std::memset(dst + available, 0, static_cast<std::size_t>(amount - available));
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int x_write(sqlite3_file* f, const void* in, int amount, sqlite3_int64 offset) {
  if (dead(f)) return SQLITE_IOERR_WRITE;
  FaultVfs& vfs = *handle(f)->vfs;
  ++vfs.mutable_counters().writes;
  if (vfs.power_fails_now()) return SQLITE_IOERR_WRITE;
  if (vfs.fire(vfs.faults().full, "vfs.write: SQLITE_FULL")) return SQLITE_FULL;
  if (vfs.fire(vfs.faults().write, "vfs.write: SQLITE_IOERR_WRITE")) return SQLITE_IOERR_WRITE;
  file_of(f).write(offset, static_cast<const std::uint8_t*>(in), static_cast<std::size_t>(amount));
  return SQLITE_OK;
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (dead(f)) return SQLITE_IOERR_TRUNCATE;
  FaultVfs& vfs = *handle(f)->vfs;
  ++vfs.mutable_counters().writes;
  if (vfs.power_fails_now()) return SQLITE_IOERR_TRUNCATE;
  if (vfs.fire(vfs.faults().write, "vfs.truncate: SQLITE_IOERR_TRUNCATE")) {
    return SQLITE_IOERR_TRUNCATE;
  }
  file_of(f).truncate(size);
  return SQLITE_OK;
}

int x_sync(sqlite3_file* f, int) {
  if (dead(f)) return SQLITE_IOERR_FSYNC;
  FaultVfs& vfs = *handle(f)->vfs;
  ++vfs.mutable_counters().syncs;
  if (vfs.power_fails_now()) return SQLITE_IOERR_FSYNC;
  if (vfs.fire(vfs.faults().sync, "vfs.sync: SQLITE_IOERR_FSYNC")) return SQLITE_IOERR_FSYNC;
  file_of(f).sync();  // the undo log is forgotten: what it would undo is durable
  return SQLITE_OK;
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  if (dead(f)) return SQLITE_IOERR_FSTAT;
  *size = static_cast<sqlite3_int64>(file_of(f).current.size());
  return SQLITE_OK;
}

int x_lock(sqlite3_file* f, int level) {
  if (dead(f)) return SQLITE_IOERR_LOCK;
  Handle* h = handle(f);
  FaultVfs& vfs = *h->vfs;
  File& file = file_of(f);
  if (h->lock_level >= level) return SQLITE_OK;
  ++vfs.mutable_counters().locks;
  if (vfs.fire(vfs.faults().busy, "vfs.lock: SQLITE_BUSY")) return SQLITE_BUSY;
  const void* me = h;
  switch (level) {
    case SQLITE_LOCK_SHARED:
      if ((file.pending_by != nullptr && file.pending_by != me) ||
          (file.exclusive_by != nullptr && file.exclusive_by != me)) {
        return SQLITE_BUSY;
      }
      ++file.shared_holders;
      break;
    case SQLITE_LOCK_RESERVED:
      if (file.reserved_by != nullptr && file.reserved_by != me) return SQLITE_BUSY;
      file.reserved_by = me;
      break;
    case SQLITE_LOCK_EXCLUSIVE:
      if (file.pending_by != nullptr && file.pending_by != me) return SQLITE_BUSY;
      file.pending_by = me;
      if (file.shared_holders > 1) return SQLITE_BUSY;  // wait for the readers to leave
      file.exclusive_by = me;
      break;
    default:
      return SQLITE_MISUSE;
  }
  h->lock_level = level;
  return SQLITE_OK;
}

int x_unlock(sqlite3_file* f, int level) {
  if (dead(f)) return SQLITE_OK;
  Handle* h = handle(f);
  File& file = file_of(f);
  const void* me = h;
  if (h->lock_level <= level) return SQLITE_OK;
  if (file.exclusive_by == me) file.exclusive_by = nullptr;
  if (file.pending_by == me) file.pending_by = nullptr;
  if (file.reserved_by == me) file.reserved_by = nullptr;
  if (level == SQLITE_LOCK_NONE && h->lock_level >= SQLITE_LOCK_SHARED) --file.shared_holders;
  h->lock_level = level;
  return SQLITE_OK;
}

int x_check_reserved(sqlite3_file* f, int* out) {
  if (dead(f)) return SQLITE_IOERR_CHECKRESERVEDLOCK;
  const File& file = file_of(f);
  *out = (file.reserved_by != nullptr || file.pending_by != nullptr ||
          file.exclusive_by != nullptr) ? 1 : 0;
  return SQLITE_OK;
}

int x_file_control(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
int x_sector_size(sqlite3_file*) { return kSectorSize; }
int x_device_characteristics(sqlite3_file*) { return 0; }  // no atomicity promised

int x_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  if (dead(f)) return SQLITE_IOERR_SHMMAP;
  File& file = file_of(f);
  const auto r = static_cast<std::size_t>(region);
  if (file.shm_region_size == 0) file.shm_region_size = size;
  MEMFUSE_ASSERT(file.shm_region_size == size);
  if (r >= file.shm.size()) {
    if (extend == 0) {
      *out = nullptr;
      return SQLITE_OK;
    }
    while (file.shm.size() <= r) {
      file.shm.push_back(std::make_unique<std::uint8_t[]>(static_cast<std::size_t>(size)));
      std::memset(file.shm.back().get(), 0, static_cast<std::size_t>(size));
    }
  }
  *out = file.shm[r].get();
  return SQLITE_OK;
}

int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  if (dead(f)) return SQLITE_IOERR_SHMLOCK;
  Handle* h = handle(f);
  File& file = file_of(f);
  auto& held = *h->shm_held;
  const void* me = h;
  const bool lock = (flags & SQLITE_SHM_LOCK) != 0;
  const bool exclusive = (flags & SQLITE_SHM_EXCLUSIVE) != 0;
  // In WAL mode writers contend here (the WAL write lock), not in xLock.
  if (lock && exclusive &&
      h->vfs->fire(h->vfs->faults().busy, "vfs.shm_lock: SQLITE_BUSY")) {
    return SQLITE_BUSY;
  }
  if (lock) {
    for (int i = offset; i < offset + n; ++i) {
      const auto s = static_cast<std::size_t>(i);
      if (held[s] != 0) continue;
      if (file.shm_exclusive[s] != nullptr && file.shm_exclusive[s] != me) return SQLITE_BUSY;
      if (exclusive && file.shm_shared[s] > 0) return SQLITE_BUSY;
    }
    for (int i = offset; i < offset + n; ++i) {
      const auto s = static_cast<std::size_t>(i);
      if (held[s] != 0) continue;
      if (exclusive) {
        file.shm_exclusive[s] = me;
        held[s] = 2;
      } else {
        ++file.shm_shared[s];
        held[s] = 1;
      }
    }
  } else {
    for (int i = offset; i < offset + n; ++i) {
      const auto s = static_cast<std::size_t>(i);
      if (held[s] == 1) --file.shm_shared[s];
      if (held[s] == 2) file.shm_exclusive[s] = nullptr;
      held[s] = 0;
    }
  }
  return SQLITE_OK;
}

void x_shm_barrier(sqlite3_file*) {}

int x_shm_unmap(sqlite3_file* f, int delete_flag) {
  if (dead(f)) return SQLITE_OK;
  Handle* h = handle(f);
  File& file = file_of(f);
  x_shm_lock(f, 0, kShmSlots, SQLITE_SHM_UNLOCK);
  if (delete_flag != 0) file.shm.clear();
  (void)h;
  return SQLITE_OK;
}

const sqlite3_io_methods kIoMethods = {
    2,
    x_close, x_read, x_write, x_truncate, x_sync, x_file_size, x_lock, x_unlock,
    x_check_reserved, x_file_control, x_sector_size, x_device_characteristics,
    x_shm_map, x_shm_lock, x_shm_barrier, x_shm_unmap,
    nullptr, nullptr};

int x_open(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  FaultVfs* vfs = vfs_of(v);
  Handle* h = handle(f);
  h->base.pMethods = nullptr;  // set only when open succeeds
  std::shared_ptr<File> file;
  std::string path;
  if (name == nullptr) {
    file = std::make_shared<File>();  // a temporary file: anonymous, gone at close
  } else {
    path = name;
    bool existed = false;
    file = vfs->open_file(path, (flags & SQLITE_OPEN_CREATE) != 0, existed);
    if (!file) return SQLITE_CANTOPEN;
  }
  h->vfs = vfs;
  h->file = new std::shared_ptr<File>(std::move(file));
  h->path = new std::string(std::move(path));
  h->shm_held = new std::array<std::uint8_t, kShmSlots>{};
  h->lock_level = SQLITE_LOCK_NONE;
  h->delete_on_close = (flags & SQLITE_OPEN_DELETEONCLOSE) != 0;
  h->epoch = vfs->epoch();
  h->base.pMethods = &kIoMethods;
  if (out_flags != nullptr) *out_flags = flags;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs* v, const char* name, int) {
  vfs_of(v)->remove_file(name);
  return SQLITE_OK;
}

int x_access(sqlite3_vfs* v, const char* name, int, int* out) {
  *out = vfs_of(v)->exists(name) ? 1 : 0;
  return SQLITE_OK;
}

int x_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  std::snprintf(out, static_cast<std::size_t>(n), "%s", name);
  return SQLITE_OK;
}

int x_randomness(sqlite3_vfs* v, int n, char* out) {
  Random& r = vfs_of(v)->random();
  for (int i = 0; i < n; ++i) out[i] = static_cast<char>(r.next_u64());
  return n;
}

int x_sleep(sqlite3_vfs*, int microseconds) { return microseconds; }  // virtual: no waiting

int x_current_time_int64(sqlite3_vfs* v, sqlite3_int64* out) {
  // Julian day in milliseconds. From the runtime clock when given, else fixed.
  constexpr sqlite3_int64 kUnixEpochJulianMs = 210866760000000LL;
  const Clock* clock = vfs_of(v)->clock();
  const sqlite3_int64 unix_ms = clock != nullptr ? to_millis(clock->now()) : 1'750'168'589'000LL;
  *out = kUnixEpochJulianMs + unix_ms;
  return SQLITE_OK;
}

int x_current_time(sqlite3_vfs* v, double* out) {
  sqlite3_int64 ms = 0;
  x_current_time_int64(v, &ms);
  *out = static_cast<double>(ms) / 86400000.0;
  return SQLITE_OK;
}

int x_get_last_error(sqlite3_vfs*, int, char*) { return 0; }

}  // namespace

FaultVfs::FaultVfs(std::string name, Random& random, const Clock* clock)
    : name_(std::move(name)), random_(random), clock_(clock), vfs_(std::make_unique<sqlite3_vfs>()) {
  sqlite3_initialize();
  *vfs_ = sqlite3_vfs{};
  vfs_->iVersion = 2;
  vfs_->szOsFile = sizeof(Handle);
  vfs_->mxPathname = 512;
  vfs_->zName = name_.c_str();
  vfs_->pAppData = this;
  vfs_->xOpen = x_open;
  vfs_->xDelete = x_delete;
  vfs_->xAccess = x_access;
  vfs_->xFullPathname = x_full_pathname;
  vfs_->xRandomness = x_randomness;
  vfs_->xSleep = x_sleep;
  vfs_->xCurrentTime = x_current_time;
  vfs_->xGetLastError = x_get_last_error;
  vfs_->xCurrentTimeInt64 = x_current_time_int64;
  const int rc = sqlite3_vfs_register(vfs_.get(), 0);
  MEMFUSE_ASSERT(rc == SQLITE_OK);
}

FaultVfs::~FaultVfs() { sqlite3_vfs_unregister(vfs_.get()); }

void FaultVfs::heal() {
  faults_ = VfsFaults{};
  crash_countdown_.reset();
}

bool FaultVfs::fire(FaultRule& rule, std::string_view label) {
  bool fires = false;
  if (rule.tripped) {
    fires = true;
  } else if (rule.countdown) {
    if (*rule.countdown <= 1) {
      fires = true;
      rule.countdown.reset();
    } else {
      --*rule.countdown;
    }
  } else if (rule.probability > 0.0) {
    fires = random_.chance(rule.probability);
  }
  if (fires) {
    if (rule.persistent) rule.tripped = true;
    ++counters_.faults;
    if (on_fault) on_fault(label);
  }
  return fires;
}

bool FaultVfs::power_fails_now() {
  if (!crash_countdown_) return false;
  if (--*crash_countdown_ > 0) return false;
  crash_countdown_.reset();
  crash(pending_model_);
  return true;
}

void FaultVfs::crash(CrashModel model) {
  for (auto& [path, file] : files_) file->crash(model, random_);
  ++epoch_;
  ++counters_.crashes;
  ++counters_.faults;
  if (on_fault) on_fault(model == CrashModel::DropUnsynced       ? "vfs.crash: drop_unsynced"
                         : model == CrashModel::KeepRandomSubset ? "vfs.crash: keep_random_subset"
                                                                 : "vfs.crash: tear_last_write");
}

void FaultVfs::crash_after(std::uint64_t ops, CrashModel model) {
  MEMFUSE_ASSERT(ops >= 1);
  crash_countdown_ = ops;
  pending_model_ = model;
}

std::shared_ptr<FaultVfs::File> FaultVfs::open_file(const std::string& path, bool create,
                                                    bool& existed) {
  auto it = files_.find(path);
  existed = it != files_.end();
  if (existed) return it->second;
  if (!create) return nullptr;
  auto file = std::make_shared<File>();
  files_.emplace(path, file);
  return file;
}

std::vector<std::uint8_t> FaultVfs::contents(const std::string& path) const {
  auto it = files_.find(path);
  return it == files_.end() ? std::vector<std::uint8_t>{} : it->second->current;
}

void seed_sqlite_prng(std::uint32_t seed) {
  sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, static_cast<int>(seed), nullptr);
}

}  // namespace memfuse::fakes
