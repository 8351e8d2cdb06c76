#include "runtime/src/thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/src/status_error.h"

namespace kiln::runtime {

struct ThreadPool::Job {
  kiln_task_fn task;
  void* taskContext;
  int64_t count;
  std::atomic<int64_t> nextIndex{0};  // the next unclaimed index
  // Guarded by mutex_: workers running this job's indices outside the lock,
  // which the caller waits for before its stack frame (the job) goes away.
  int32_t helpers = 0;
  std::condition_variable helpersDone;
  Job* prev = nullptr;
  Job* next = nullptr;
  bool queued = false;

  // Claims and runs indices until none are left.
  void runRemaining() {
    for (int64_t i; (i = nextIndex.fetch_add(1, std::memory_order_relaxed)) < count;) task(taskContext, i);
  }
};

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
  for (int32_t i = 1; i < threads; ++i) workers_.emplace_back([this] { workerLoop(); });
  workerCount_ = workers_.size();
  started_ = true;
}

void ThreadPool::link(Job& job) {
  job.prev = tail_;
  job.next = nullptr;
  (tail_ ? tail_->next : head_) = &job;
  tail_ = &job;
  job.queued = true;
}

void ThreadPool::unlink(Job& job) {
  (job.prev ? job.prev->next : head_) = job.next;
  (job.next ? job.next->prev : tail_) = job.prev;
  job.queued = false;
}

void ThreadPool::workerLoop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    workAvailable_.wait(lock, [&] { return stopping_ || head_; });
    if (stopping_) return;
    Job& job = *head_;
    int64_t first = job.nextIndex.fetch_add(1, std::memory_order_relaxed);
    if (first + 1 >= job.count) unlink(job);  // all indices claimed: no one else needs to find it
    if (first >= job.count) continue;
    ++job.helpers;
    lock.unlock();
    job.task(job.taskContext, first);
    job.runRemaining();
    lock.lock();
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
  Job job;
  job.task = task;
  job.taskContext = taskContext;
  job.count = count;
  {
    std::lock_guard lock(mutex_);
    link(job);
  }
  int64_t wake = std::min<int64_t>(count - 1, static_cast<int64_t>(workerCount_));
  for (int64_t i = 0; i < wake; ++i) workAvailable_.notify_one();
  job.runRemaining();
  std::unique_lock lock(mutex_);
  if (job.queued) unlink(job);
  job.helpersDone.wait(lock, [&] { return job.helpers == 0; });
}

}  // namespace kiln::runtime
