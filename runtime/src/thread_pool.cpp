#include "runtime/src/thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/src/status_error.h"

namespace kiln::runtime {

// A job's indices are dealt in contiguous chunks, one per thread: the caller
// starts on chunk 0, worker w on chunk w, and a thread whose chunk is done
// takes indices from the next ones. Consecutive nodes split their output
// the same way (parts in order), so each thread mostly reads what it wrote
// itself: a line another core wrote costs a cross-core transfer, which on
// the 2-core hosts here made small nodes after a split one 3-6x slower than
// on one thread.
struct alignas(64) ThreadPool::Chunk {
  std::atomic<int64_t> next{0};  // the chunk's next unclaimed index
  int64_t end = 0;
};

struct ThreadPool::Job {
  kiln_task_fn task;
  void* taskContext;
  int64_t count;
  int64_t chunkCount;
  Chunk chunks[kMaxChunks];
  // Changed under mutex_ only: workers running this job's indices outside
  // the lock, which the caller waits for before its stack frame (the job)
  // goes away. Atomic so the caller can spin on it without the lock.
  std::atomic<int32_t> helpers{0};
  std::condition_variable helpersDone;
  Job* prev = nullptr;
  Job* next = nullptr;
  bool queued = false;

  Job(kiln_task_fn t, void* context, int64_t n, int64_t threads)
      : task(t), taskContext(context), count(n), chunkCount(std::min({n, threads, kMaxChunks})) {
    for (int64_t c = 0; c < chunkCount; ++c) {
      chunks[c].next.store(c * count / chunkCount, std::memory_order_relaxed);
      chunks[c].end = (c + 1) * count / chunkCount;
    }
  }

  // Claims and runs indices, chunk `thread` first, until none are left.
  void runRemaining(int64_t thread) {
    for (int64_t k = 0; k < chunkCount; ++k) {
      Chunk& chunk = chunks[(thread + k) % chunkCount];
      for (int64_t i; (i = chunk.next.fetch_add(1, std::memory_order_relaxed)) < chunk.end;) task(taskContext, i);
    }
  }
};

namespace {

// How long a thread spins for work (a worker) or for its job's helpers (a
// caller) before it sleeps: a model's nodes are parallel-fors microseconds
// apart, and a futex wake-up costs about as much as a small node, so threads
// stay awake across a run but sleep between runs that are further apart.
constexpr std::chrono::microseconds kSpinTime{100};

void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or kSpinTime passes; returns done().
template <typename Done>
bool spinUntil(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 1;; ++i) {
    if (done()) return true;
    cpuRelax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() > until) return done();
  }
}

}  // namespace

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  workAvailable_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

std::optional<int32_t> parseThreadCount(const char* text) {
  if (!text) return std::nullopt;
  int32_t value = 0;
  const char* end = text + std::strlen(text);
  auto [stop, error] = std::from_chars(text, end, value);
  if (error != std::errc() || stop != end || value < 1 || value > ThreadPool::kMaxThreads) return std::nullopt;
  return value;
}

int32_t ThreadPool::resolvedThreadCount() const {
  if (started_) return static_cast<int32_t>(workerCount_) + 1;
  if (requestedThreads_ > 0) return requestedThreads_;
  if (const char* text = std::getenv("KILN_NUM_THREADS")) {
    std::optional<int32_t> threads = parseThreadCount(text);
    if (!threads)
      throw StatusError(KILN_ERR_INVALID_ARGUMENT, std::string("KILN_NUM_THREADS is '") + text +
                                                       "', expected an integer from 1 to " +
                                                       std::to_string(kMaxThreads));
    return *threads;
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<int32_t>(std::clamp<long>(cpus, 1, kMaxThreads));
}

void ThreadPool::setThreadCount(int32_t threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                      "thread count " + std::to_string(threads) + " is not in [1, " + std::to_string(kMaxThreads) + "]");
  std::lock_guard lock(configMutex_);
  if (started_ && threads != resolvedThreadCount())
    throw StatusError(KILN_ERR_STATE, "the thread pool already runs with " + std::to_string(resolvedThreadCount()) +
                                          " threads; set the count before creating the first parallel context");
  requestedThreads_ = threads;
}

int32_t ThreadPool::threadCount() {
  std::lock_guard lock(configMutex_);
  return resolvedThreadCount();
}

void ThreadPool::start() {
  std::lock_guard lock(configMutex_);
  if (started_) return;
  int32_t threads = resolvedThreadCount();
  workers_.reserve(static_cast<size_t>(threads - 1));
  for (int32_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { workerLoop(i); });
  workerCount_ = workers_.size();
  started_ = true;
}

void ThreadPool::link(Job& job) {
  job.prev = tail_;
  job.next = nullptr;
  (tail_ ? tail_->next : head_) = &job;
  tail_ = &job;
  job.queued = true;
  queuedJobs_.fetch_add(1, std::memory_order_release);
}

void ThreadPool::unlink(Job& job) {
  (job.prev ? job.prev->next : head_) = job.next;
  (job.next ? job.next->prev : tail_) = job.prev;
  job.queued = false;
  queuedJobs_.fetch_sub(1, std::memory_order_relaxed);
}

void ThreadPool::workerLoop(int64_t thread) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!stopping_ && !head_) {
      lock.unlock();
      spinUntil([&] { return queuedJobs_.load(std::memory_order_acquire) > 0; });
      lock.lock();
      ++sleepers_;
      workAvailable_.wait(lock, [&] { return stopping_ || head_; });
      --sleepers_;
    }
    if (stopping_) return;
    Job& job = *head_;
    ++job.helpers;
    lock.unlock();
    job.runRemaining(thread);
    lock.lock();
    if (job.queued) unlink(job);  // all indices claimed: no one else needs to find it
    if (--job.helpers == 0) job.helpersDone.notify_one();
  }
}

void ThreadPool::parallelFor(void* pool, int64_t count, kiln_task_fn task, void* taskContext) {
  static_cast<ThreadPool*>(pool)->run(count, task, taskContext);
}

void ThreadPool::run(int64_t count, kiln_task_fn task, void* taskContext) {
  if (count <= 0) return;
  if (count == 1 || workerCount_ == 0) {  // nothing to share
    for (int64_t i = 0; i < count; ++i) task(taskContext, i);
    return;
  }
  Job job(task, taskContext, count, static_cast<int64_t>(workerCount_) + 1);
  int64_t wake = 0;
  {
    std::lock_guard lock(mutex_);
    link(job);
    // Spinning workers find the job themselves; only sleepers need a wake-up.
    wake = std::min<int64_t>(count - 1, sleepers_);
  }
  for (int64_t i = 0; i < wake; ++i) workAvailable_.notify_one();
  job.runRemaining(0);
  spinUntil([&] { return job.helpers.load(std::memory_order_acquire) == 0; });
  std::unique_lock lock(mutex_);
  if (job.queued) unlink(job);
  job.helpersDone.wait(lock, [&] { return job.helpers == 0; });
}

}  // namespace kiln::runtime
