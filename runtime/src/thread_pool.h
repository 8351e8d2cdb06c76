// The process-wide thread pool that every model and ensemble member runs on;
// it implements the artifact ABI's kiln_parallel_for_fn.
//
// - Workers sleep on a condition variable when there is no work: an idle
//   process uses no CPU. Before sleeping they spin briefly (~100 us), since
//   a run's nodes are parallel-fors microseconds apart.
// - The calling thread runs indices of its own job too, so a pool of N
//   threads has N - 1 workers, and a job always completes even when every
//   worker is busy.
// - Indices are dealt in contiguous chunks per thread (thread_pool.cpp), so
//   consecutive nodes' parts of the same rows run on the same core.
// - Nested parallel-for (an ensemble member's run on a worker issuing its own
//   jobs) cannot deadlock: a thread waiting for its job only waits for the
//   indices other threads have already claimed and are running, and it never
//   claims new work while waiting, so the waits form chains that follow the
//   nesting and never a cycle.
// - parallelFor allocates nothing: the job record lives on the caller's stack
//   and is linked into an intrusive queue.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "kiln/artifact.h"

namespace kiln::runtime {

class ThreadPool {
 public:
  static constexpr int32_t kMaxThreads = 1024;

  // The one pool of the process; started by start(), stopped at exit.
  static ThreadPool& instance();
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // kiln_set_num_threads: any count in [1, kMaxThreads] before the pool
  // starts; afterwards only its current count (KILN_ERR_STATE otherwise).
  void setThreadCount(int32_t threads);
  // The threads the pool has, or will start with: the count set, else
  // KILN_NUM_THREADS, else the online CPUs. Throws StatusError on a bad
  // KILN_NUM_THREADS.
  int32_t threadCount();
  // Starts the workers unless they run already.
  void start();

  // kiln_parallel_for_fn; pool is the ThreadPool.
  static void parallelFor(void* pool, int64_t count, kiln_task_fn task, void* taskContext);

 private:
  static constexpr int64_t kMaxChunks = 64;  // threads beyond it share chunks
  struct Chunk;
  struct Job;
  ThreadPool() = default;
  int32_t resolvedThreadCount() const;  // configMutex_ held
  void run(int64_t count, kiln_task_fn task, void* taskContext);
  void workerLoop(int64_t thread);  // thread: 1 ... workers
  void link(Job& job);
  void unlink(Job& job);

  std::mutex configMutex_;
  int32_t requestedThreads_ = 0;  // 0: not set
  bool started_ = false;
  std::vector<std::thread> workers_;
  size_t workerCount_ = 0;  // workers_.size(), read by run() without configMutex_

  std::mutex mutex_;  // guards the queue, the jobs' queue links and helper counts, stopping_, sleepers_
  std::condition_variable workAvailable_;
  Job* head_ = nullptr;
  Job* tail_ = nullptr;
  bool stopping_ = false;
  int64_t sleepers_ = 0;                  // workers waiting on workAvailable_
  std::atomic<int64_t> queuedJobs_{0};    // jobs in the queue, for spinning workers (changed under mutex_)
};

// The value of KILN_NUM_THREADS (NULL: unset) as a thread count, or nullopt
// when it is not an integer in [1, ThreadPool::kMaxThreads].
std::optional<int32_t> parseThreadCount(const char* text);

}  // namespace kiln::runtime
