// `kiln bench`: times a compiled artifact, or an ensemble manifest of
// compiled members, through the runtime's public API exactly as an embedding
// application runs it (kiln.hpp over kiln.h, plus the descriptor of
// artifact.h): load, context, first run, warm-up, then timed runs one by one.
// Reports latency statistics, throughput, GFLOP/s against the measured FMA
// peak and peak memory; with --profile, every layer's time from the cycle
// counters of an artifact compiled with `kiln compile --profile`.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "compiler/ir/error.h"
#include "kiln/kiln.hpp"
#include "tools/cli_common.h"
#include "tools/fma_peak.h"
#include "tools/npy.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

constexpr std::string_view kHelp =
    "usage: kiln bench ARTIFACT.so|ENSEMBLE.json [--batch B] [--threads T] [--warmup W]\n"
    "                  [--iterations N | --time S] [--json FILE] [--profile] [--quiet]\n"
    "       kiln bench --peak [--threads T] [--json FILE]\n"
    "\n"
    "Times a compiled artifact ('kiln compile', also an ensemble compiled with\n"
    "--ensemble) or a kiln-ensemble manifest (JSON) of compiled members with the\n"
    "kiln runtime, as an application embedding it would: the load, the context\n"
    "creation and the first run, then W warm-up runs, then the timed runs, each\n"
    "timed on its own. Every input is filled once with fixed pseudo-random data\n"
    "(f32 uniform in [0, 1), integers 0, bools false). The report (stdout) gives\n"
    "the latency's min, median, mean, p90, p99 and max, the throughput, the\n"
    "GFLOP/s at the median latency against the FMA peak of the threads used\n"
    "(the single-core peak, measured after the runs, times the threads) and the\n"
    "peak resident memory. A progress line goes to stderr.\n"
    "\n"
    "options:\n"
    "  --batch B        samples per run (default 1); a model exported with a fixed\n"
    "                   batch runs that batch and takes no other\n"
    "  --threads T      threads of the runtime's pool, the calling one included\n"
    "                   (default: KILN_NUM_THREADS, else all CPUs)\n"
    "  --warmup W       untimed runs before the timed ones (default 10)\n"
    "  --iterations N   time N runs\n"
    "  --time S         time runs for S seconds (the default: 2)\n"
    "  --json FILE      also write the results to FILE as one JSON object\n"
    "                   (atomically; the keys are listed in README.md)\n"
    "  --profile        each layer's time from the artifact's cycle counters\n"
    "                   (needs 'kiln compile --profile'): the 10 slowest layers,\n"
    "                   all of them in the --json file; ensemble members' layers\n"
    "                   are named m<K>/<layer>\n"
    "  --quiet          no progress line\n"
    "  --peak           measure and print the FP32 FMA peak only: one core (256-\n"
    "                   and 512-bit FMAs) and T threads (the single-core peak x T)\n"
    "  -h, --help       show this help\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  unusable artifact or manifest: missing, refused by the loader (not an\n"
    "     artifact, truncated, other ABI, CPU features this host lacks), members\n"
    "     that disagree; a --json FILE that cannot be written\n"
    "  2  bad usage: unknown option, a value that is not a number or out of\n"
    "     range, --iterations with --time, a --batch a fixed-batch model cannot\n"
    "     take, --profile for an artifact compiled without it, --peak with a\n"
    "     model, a --json FILE in a folder that does not exist\n";

constexpr int kJsonVersion = 1;
constexpr int64_t kDefaultWarmup = 10;
constexpr double kDefaultSeconds = 2;
constexpr size_t kProfileTopLayers = 10;

struct BenchRequest {
  std::string path;
  std::optional<int64_t> batch;
  int64_t warmup = kDefaultWarmup;
  std::optional<int64_t> iterations;  // else run for `seconds`
  double seconds = kDefaultSeconds;
  std::optional<std::string> jsonPath;
  bool profile = false;
  bool quiet = false;
};

// A duration in seconds given to `option`, in (0, 1 day].
double parseSeconds(std::string_view option, const std::string& text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(v > 0) || v > 86400)
    throw UsageError("option '" + std::string(option) + "' expects seconds in (0, 86400], got '" + text + "'");
  return v;
}

// Refuses a --json FILE whose folder is missing now, not after the runs.
std::string parseJsonPath(const std::string& path) {
  if (path.empty()) throw UsageError("option '--json' needs a file name");
  fs::path folder = fs::path(path).parent_path();
  std::error_code ec;
  if (!folder.empty() && !fs::is_directory(folder, ec))
    throw UsageError("--json " + path + ": the folder " + folder.string() + " does not exist");
  return path;
}

// The first "model name" of /proc/cpuinfo ("unknown" where it has none, as
// on many AArch64 kernels).
std::string hostCpuName() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("model name")) continue;
    size_t start = line.find_first_not_of(" \t", line.find(':') + 1);
    if (line.find(':') != std::string::npos && start != std::string::npos) return line.substr(start);
  }
  return "unknown";
}

double peakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string threadCount(int32_t threads) { return std::to_string(threads) + (threads == 1 ? " thread" : " threads"); }

// Milliseconds with 4 significant digits at least: a small model runs in
// microseconds.
std::string ms(double value) {
  int decimals = value > 0 ? 3 - static_cast<int>(std::floor(std::log10(value))) : 3;
  return fixed(value, std::clamp(decimals, 3, 6));
}

std::string flopCount(double flops) {
  static constexpr const char* kUnits[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP"};
  int unit = 0;
  while (flops >= 1000 && unit < 4) flops /= 1000, ++unit;
  return fixed(flops, unit == 0 ? 0 : 2) + " " + kUnits[unit];
}

// JSON null for what is not known (no FLOP count, no measured peak).
Json orNull(const std::optional<double>& value) { return value ? Json(*value) : Json(nullptr); }

// ---- what is timed -----------------------------------------------------

// A loaded artifact or ensemble: its interface as one run sees it, the
// descriptors behind it (FLOPs, target, layers) and its context.
class Subject {
 public:
  virtual ~Subject() = default;
  virtual void createContext(int64_t maxBatch) = 0;
  virtual void run(const std::vector<kiln_tensor>& inputs, const std::vector<kiln_tensor>& outputs) = 0;

  std::string kind;  // "model" or "ensemble"
  std::string modelName;
  std::vector<const kiln_artifact*> artifacts;  // the model, or every member in manifest order
  std::vector<kiln_tensor_info> inputs, outputs;
};

class ModelSubject : public Subject {
 public:
  explicit ModelSubject(const std::string& path) : model_(kiln::Model::open(path)) {
    kind = "model";
    artifacts = {&model_.descriptor()};
    modelName = artifacts[0]->model_name;
    for (int32_t i = 0; i < model_.numInputs(); ++i) inputs.push_back(model_.input(i));
    for (int32_t i = 0; i < model_.numOutputs(); ++i) outputs.push_back(model_.output(i));
  }
  void createContext(int64_t maxBatch) override { context_.emplace(model_, kiln::ContextOptions{0, maxBatch}); }
  void run(const std::vector<kiln_tensor>& in, const std::vector<kiln_tensor>& out) override { context_->run(in, out); }

 private:
  kiln::Model model_;
  std::optional<kiln::Context> context_;
};

class EnsembleSubject : public Subject {
 public:
  explicit EnsembleSubject(const std::string& path) : ensemble_(kiln::Ensemble::open(path)) {
    kind = "ensemble";
    for (int32_t k = 0; k < ensemble_.numMembers(); ++k) {
      // The ensemble owns its members, so their descriptors live as long as it.
      artifacts.push_back(&ensemble_.member(k).model.descriptor());
      modelName += (k ? "+" : "") + std::string(artifacts.back()->model_name);
    }
    // The loader checked that the members agree: member 0's inputs are
    // everyone's, and its one [N, C] output is the combined output's shape.
    kiln::Model first = ensemble_.member(0).model;
    for (int32_t i = 0; i < first.numInputs(); ++i) inputs.push_back(first.input(i));
    outputs.push_back(first.output(0));
  }
  void createContext(int64_t maxBatch) override { context_.emplace(ensemble_, kiln::ContextOptions{0, maxBatch}); }
  void run(const std::vector<kiln_tensor>& in, const std::vector<kiln_tensor>& out) override {
    context_->run(in, out[0]);
  }

 private:
  kiln::Ensemble ensemble_;
  std::optional<kiln::EnsembleContext> context_;
};

std::unique_ptr<Subject> openSubject(const std::string& path) {
  if (fs::path(path).extension() == ".json") return std::make_unique<EnsembleSubject>(path);
  return std::make_unique<ModelSubject>(path);  // the loader names what else the file is
}

// How many samples a run takes and which batch its run function gets.
struct BatchPlan {
  int64_t samples;   // per run, what throughput counts
  int64_t runBatch;  // kiln_run_fn's batch: samples, or 1 for a fixed batch
  bool fixed;        // exported with a fixed batch (no KILN_DIM_BATCH dim)
};

BatchPlan planBatch(const Subject& s, const BenchRequest& request) {
  bool symbolic = false;
  for (const auto* list : {&s.inputs, &s.outputs})
    for (const kiln_tensor_info& t : *list) symbolic |= t.rank > 0 && t.dims[0] == KILN_DIM_BATCH;
  int64_t requested = request.batch.value_or(1);
  if (symbolic) return {requested, requested, false};

  // A fixed batch is dim 0 of the first input (else output) that has one.
  auto fixedBatchOf = [&] {
    for (const auto* list : {&s.inputs, &s.outputs})
      for (const kiln_tensor_info& t : *list)
        if (t.rank > 0) return t.dims[0];
    return int64_t{1};
  };
  const int64_t fixedBatch = fixedBatchOf();
  if (requested != 1 && requested != fixedBatch)
    throw UsageError("--batch " + std::to_string(requested) + ": " + request.path + " has a fixed batch of " +
                     std::to_string(fixedBatch) + " (exported without a symbolic batch dim); leave out --batch");
  return {fixedBatch, 1, true};
}

// Every layer counter this bench reads, or why there is none.
void requireProfile(const Subject& s, const std::string& path) {
  for (size_t k = 0; k < s.artifacts.size(); ++k) {
    const kiln_artifact& d = *s.artifacts[k];
    if (d.abi_minor >= 2 && d.profile) continue;
    std::string what = s.kind == "model"
                           ? path + ": compiled"
                           : path + ": member " + std::to_string(k) + " ('" + d.model_name + "') was compiled";
    throw UsageError(what + " without --profile; recompile with `kiln compile --profile`");
  }
}

// FLOPs of one run; unknown when some artifact predates ABI 1.2.
std::optional<uint64_t> flopsPerRun(const Subject& s, int64_t runBatch) {
  uint64_t flops = 0;
  for (const kiln_artifact* d : s.artifacts) {
    if (d->abi_minor < 2) return std::nullopt;
    flops += d->flops;
  }
  return flops * static_cast<uint64_t>(runBatch);
}

// ---- buffers -------------------------------------------------------------

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

size_t dtypeBytes(int32_t dtype) { return dtype == KILN_I64 ? 8 : dtype == KILN_BOOL ? 1 : 4; }

// Caller-owned tensors for one batch, 64-byte aligned like the runtime's own
// buffers, viewed as the C API's kiln_tensor.
class TensorBuffers {
 public:
  TensorBuffers(const std::vector<kiln_tensor_info>& infos, int64_t runBatch, const std::string& path) {
    dims_.reserve(infos.size());
    for (const kiln_tensor_info& info : infos) {
      std::vector<int64_t>& dims = dims_.emplace_back(info.dims, info.dims + info.rank);
      uint64_t bytes = dtypeBytes(info.dtype);
      bool overflow = false;
      for (int64_t& d : dims) {
        if (d == KILN_DIM_BATCH) d = runBatch;
        overflow |= __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes);
      }
      overflow |= bytes > UINT64_MAX - 63;
      void* data = overflow ? nullptr : std::aligned_alloc(64, std::max<uint64_t>((bytes + 63) / 64 * 64, 64));
      if (!data)
        throw Error("cannot allocate tensor '" + std::string(info.name) + "' for a batch of " +
                        std::to_string(runBatch) + (overflow ? "" : " (" + std::to_string(bytes) + " bytes)"),
                    ErrorSite{path, "", ""});
      data_.emplace_back(data);
      views_.push_back({info.dtype, info.rank, dims.data(), data});
      bytes_.push_back(bytes);
    }
  }

  // Fixed pseudo-random inputs: f32 uniform in [0, 1) from one LCG over all
  // tensors (the same on every host and standard library), the rest zeros.
  void fillInputs() {
    uint32_t state = 20240601u;
    for (size_t i = 0; i < views_.size(); ++i) {
      if (views_[i].dtype != KILN_F32) {
        std::memset(views_[i].data, 0, bytes_[i]);
        continue;
      }
      float* values = static_cast<float*>(views_[i].data);
      for (uint64_t j = 0; j < bytes_[i] / sizeof(float); ++j) {
        state = state * 1664525u + 1013904223u;
        values[j] = static_cast<float>(state >> 8) * 0x1p-24f;
      }
    }
  }

  const std::vector<kiln_tensor>& views() const { return views_; }

 private:
  std::vector<std::vector<int64_t>> dims_;
  std::vector<std::unique_ptr<void, FreeDeleter>> data_;
  std::vector<kiln_tensor> views_;
  std::vector<uint64_t> bytes_;
};

// ---- timing --------------------------------------------------------------

double millisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The counter the profile counts in (artifact.h), read around the timed runs
// to convert its ticks to time.
uint64_t readCycleCounter() {
#if defined(__x86_64__)
  return __rdtsc();
#elif defined(__aarch64__)
  uint64_t ticks;
  asm volatile("mrs %0, cntvct_el0" : "=r"(ticks));
  return ticks;
#else
  return 0;
#endif
}

// Profile ticks per millisecond: AArch64's counter states its frequency,
// x86-64's TSC is calibrated against steady_clock over the timed runs; 0
// where unknown.
double ticksPerMillisecond(uint64_t ticks, double wallMs) {
#if defined(__x86_64__)
  return wallMs > 0 ? static_cast<double>(ticks) / wallMs : 0;
#elif defined(__aarch64__)
  uint64_t hertz;
  asm volatile("mrs %0, cntfrq_el0" : "=r"(hertz));
  return static_cast<double>(hertz) / 1e3;
#else
  return 0;
#endif
}

// The progress line on stderr: rewritten in place on a terminal, else one
// line about every 2 s (a log), none with --quiet.
class Progress {
 public:
  explicit Progress(bool enabled)
      : enabled_(enabled), terminal_(enabled && isatty(STDERR_FILENO)), last_(Clock::now()) {
    if (terminal_) last_ -= kTerminalInterval;  // show the first update at once
  }

  // Shows text() unless the last line is too recent (text() is not called then).
  template <class Text>
  void update(Text text) {
    if (!enabled_) return;
    Clock::time_point now = Clock::now();
    if (now - last_ < (terminal_ ? kTerminalInterval : kLogInterval)) return;
    last_ = now;
    if (terminal_)
      std::cerr << "\r\x1b[K" << text() << std::flush;
    else
      std::cerr << text() << "\n";
  }

  // Clears a terminal's line before the report.
  void finish() {
    if (terminal_) std::cerr << "\r\x1b[K" << std::flush;
  }

 private:
  static constexpr std::chrono::milliseconds kTerminalInterval{100}, kLogInterval{2000};
  bool enabled_, terminal_;
  Clock::time_point last_;
};

struct Timings {
  double loadMs = 0, contextMs = 0, firstRunMs = 0;
  std::vector<double> runMs;  // the timed runs, in order
  double timedMs = 0;         // wall time of the whole timed loop
  uint64_t timedTicks = 0;    // cycle-counter ticks over it
};

void zeroProfiles(const Subject& s) {
  for (const kiln_artifact* d : s.artifacts) std::fill_n(d->profile, 2 * static_cast<size_t>(d->num_layers), 0);
}

// Creates the context, runs once, warms up, then times the runs.
Timings timeRuns(Subject& s, const BenchRequest& request, const BatchPlan& batch, Progress& progress) {
  Timings t;
  Clock::time_point start = Clock::now();
  // Before the buffers, so that a batch too large to reserve is reported by
  // the runtime, not by the allocator.
  s.createContext(batch.runBatch);
  t.contextMs = millisecondsSince(start);

  TensorBuffers in(s.inputs, batch.runBatch, request.path), out(s.outputs, batch.runBatch, request.path);
  in.fillInputs();
  auto run = [&] { s.run(in.views(), out.views()); };

  start = Clock::now();
  run();
  t.firstRunMs = millisecondsSince(start);
  for (int64_t i = 0; i < request.warmup; ++i) {
    run();
    progress.update(
        [&] { return "kiln bench: warm-up run " + std::to_string(i + 1) + "/" + std::to_string(request.warmup); });
  }

  if (request.profile) zeroProfiles(s);
  auto done = [&](double elapsedMs) {
    if (request.iterations) return static_cast<int64_t>(t.runMs.size()) >= *request.iterations;
    return !t.runMs.empty() && elapsedMs >= request.seconds * 1e3;
  };
  const uint64_t startTicks = readCycleCounter();
  const Clock::time_point loopStart = Clock::now();
  for (double elapsedMs = 0; !done(elapsedMs);) {
    Clock::time_point runStart = Clock::now();
    run();
    Clock::time_point runEnd = Clock::now();
    // Only the run itself is timed: recording and progress fall between runs.
    t.runMs.push_back(std::chrono::duration<double, std::milli>(runEnd - runStart).count());
    elapsedMs = std::chrono::duration<double, std::milli>(runEnd - loopStart).count();
    progress.update([&] {
      std::string of = request.iterations
                           ? "/" + std::to_string(*request.iterations)
                           : ", " + fixed(elapsedMs / 1e3, 1) + " of " + fixed(request.seconds, 1) + " s";
      return "kiln bench: timed run " + std::to_string(t.runMs.size()) + of + ", last " + ms(t.runMs.back()) + " ms";
    });
  }
  t.timedTicks = readCycleCounter() - startTicks;
  t.timedMs = millisecondsSince(loopStart);
  return t;
}

// ---- results -------------------------------------------------------------

struct LatencyStats {
  double min = 0, median = 0, mean = 0, p90 = 0, p99 = 0, max = 0;
};

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double p) {
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

LatencyStats latencyStats(std::vector<double> runMs) {
  std::sort(runMs.begin(), runMs.end());
  LatencyStats l;
  l.min = runMs.front();
  l.max = runMs.back();
  l.median = percentile(runMs, 50);
  l.p90 = percentile(runMs, 90);
  l.p99 = percentile(runMs, 99);
  for (double v : runMs) l.mean += v;
  l.mean /= static_cast<double>(runMs.size());
  return l;
}

struct LayerTime {
  std::string name, op, shapes;
  uint64_t calls = 0, ticks = 0;
  double flops = 0;  // per run: the layer's flops x the run batch
  double ms = 0;     // mean per run; summed over the threads when sample groups run it in parallel
  double sharePercent = 0;
};

// Every layer's counters since the warm-up, slowest first. Ensemble members'
// layers are named "m<K>/<layer>" and share the total with each other.
std::vector<LayerTime> layerTimes(const Subject& s, const Timings& t, double meanMs, int64_t runBatch) {
  std::vector<LayerTime> layers;
  double totalTicks = 0;
  for (size_t k = 0; k < s.artifacts.size(); ++k) {
    const kiln_artifact& d = *s.artifacts[k];
    std::string prefix = s.kind == "ensemble" ? "m" + std::to_string(k) + "/" : "";
    for (int32_t i = 0; i < d.num_layers; ++i) {
      LayerTime& l = layers.emplace_back();
      l.name = prefix + d.layers[i].name;
      l.op = d.layers[i].op;
      l.shapes = d.layers[i].shapes;
      l.ticks = d.profile[2 * i];
      l.calls = d.profile[2 * i + 1];
      l.flops = static_cast<double>(d.layers[i].flops) * static_cast<double>(runBatch);
      totalTicks += static_cast<double>(l.ticks);
    }
  }
  double ticksPerMs = ticksPerMillisecond(t.timedTicks, t.timedMs);
  // No known tick rate: the layers' shares of the mean latency.
  if (ticksPerMs <= 0 && meanMs > 0) ticksPerMs = totalTicks / (static_cast<double>(t.runMs.size()) * meanMs);
  for (LayerTime& l : layers) {
    if (!t.runMs.empty() && ticksPerMs > 0)
      l.ms = static_cast<double>(l.ticks) / static_cast<double>(t.runMs.size()) / ticksPerMs;
    if (totalTicks > 0) l.sharePercent = 100.0 * static_cast<double>(l.ticks) / totalTicks;
  }
  std::stable_sort(layers.begin(), layers.end(),
                   [](const LayerTime& a, const LayerTime& b) { return a.ticks > b.ticks; });
  return layers;
}

// GFLOP/s of `flops` done in `elapsedMs`.
std::optional<double> gflopsPerSecond(std::optional<double> flops, double elapsedMs) {
  if (!flops || elapsedMs <= 0) return std::nullopt;
  return *flops / (elapsedMs * 1e6);
}

std::optional<double> percentOf(std::optional<double> gflops, std::optional<double> peak) {
  if (!gflops || !peak) return std::nullopt;
  return 100.0 * *gflops / *peak;
}

struct Results {
  std::string hostCpu;
  int32_t threads = 0;
  Timings timings;
  LatencyStats latency;
  double throughput = 0;  // samples/s
  std::optional<uint64_t> flopsPerRun;
  std::optional<double> gflops, percentOfPeak;
  std::optional<double> peakGflops;  // single-core peak x threads; none when not measured
  double singleCorePeak = 0;
  double peakRssMiB = 0;
  std::vector<LayerTime> layers;  // --profile
};

std::optional<double> asDouble(std::optional<uint64_t> v) {
  return v ? std::optional<double>(static_cast<double>(*v)) : std::nullopt;
}

std::string orNa(std::optional<double> value, int decimals, const std::string& unit = "") {
  return value ? fixed(*value, decimals) + unit : "n/a";
}

// ---- output --------------------------------------------------------------

std::string padded(std::string text, size_t width, bool right = false) {
  if (text.size() >= width) return text;
  return right ? std::string(width - text.size(), ' ') + text : text + std::string(width - text.size(), ' ');
}

void printLayers(const std::vector<LayerTime>& layers, std::optional<double> peak) {
  size_t shown = std::min(layers.size(), kProfileTopLayers);
  std::cout << "  layers by time (" << (shown < layers.size() ? "top " + std::to_string(shown) + " of " : "all ")
            << layers.size() << "; mean ms per run):\n";
  size_t nameWidth = 5, opWidth = 2;
  for (size_t i = 0; i < shown; ++i) {
    nameWidth = std::max(nameWidth, layers[i].name.size());
    opWidth = std::max(opWidth, layers[i].op.size());
  }
  std::cout << "    " << padded("#", 3, true) << "  " << padded("layer", nameWidth) << "  " << padded("op", opWidth)
            << "  " << padded("ms", 9, true) << "  " << padded("share", 6, true) << "  " << padded("GFLOP/s", 8, true)
            << "  " << padded("%peak", 6, true) << "  shapes\n";
  for (size_t i = 0; i < shown; ++i) {
    const LayerTime& l = layers[i];
    // Layers that compute nothing (Reorder, Flatten) get no rate.
    std::optional<double> gflops = l.flops > 0 ? gflopsPerSecond(l.flops, l.ms) : std::nullopt;
    std::cout << "    " << padded(std::to_string(i + 1), 3, true) << "  " << padded(l.name, nameWidth) << "  "
              << padded(l.op, opWidth) << "  " << padded(ms(l.ms), 9, true) << "  "
              << padded(fixed(l.sharePercent, 1) + "%", 6, true) << "  "
              << padded(gflops ? fixed(*gflops, 2) : "-", 8, true) << "  "
              << padded(gflops ? orNa(percentOf(gflops, peak), 1, "%") : "-", 6, true) << "  " << l.shapes << "\n";
  }
  if (shown < layers.size()) {
    double rest = 0;
    for (size_t i = shown; i < layers.size(); ++i) rest += layers[i].sharePercent;
    size_t more = layers.size() - shown;
    std::cout << "    ... " << more << (more == 1 ? " more layer: " : " more layers: ") << fixed(rest, 1)
              << "% of the time\n";
  }
}

void printReport(const BenchRequest& request, const Subject& s, const BatchPlan& batch, const Results& r) {
  const Timings& t = r.timings;
  const LatencyStats& l = r.latency;
  std::string what = s.kind == "model"
                         ? "model '" + s.modelName + "'"
                         : "ensemble of " + std::to_string(s.artifacts.size()) + " members ('" + s.modelName + "')";
  std::cout << "kiln bench " << request.path << ": " << what << " compiled for " << s.artifacts[0]->cpu_name << ", on "
            << r.hostCpu << " (" << threadCount(r.threads) << ")\n";
  std::cout << "  batch        " << batch.samples << (batch.samples == 1 ? " sample" : " samples") << " per run"
            << (batch.fixed ? " (the model's fixed batch)" : "") << "\n";
  std::cout << "  load         " << ms(t.loadMs) << " ms\n";
  std::cout << "  context      " << ms(t.contextMs) << " ms\n";
  std::cout << "  first run    " << ms(t.firstRunMs) << " ms\n";
  std::cout << "  timed runs   " << t.runMs.size() << " in " << ms(t.timedMs) << " ms, after " << request.warmup
            << " warm-up runs\n";
  std::cout << "  latency ms   min " << ms(l.min) << "  median " << ms(l.median) << "  mean " << ms(l.mean) << "  p90 "
            << ms(l.p90) << "  p99 " << ms(l.p99) << "  max " << ms(l.max) << "\n";
  std::cout << "  throughput   " << fixed(r.throughput, 1) << " samples/s\n";
  if (r.flopsPerRun)
    std::cout << "  work         " << flopCount(static_cast<double>(*r.flopsPerRun))
              << " per run: " << orNa(r.gflops, 2, " GFLOP/s") << " at the median, " << orNa(r.percentOfPeak, 1, "%")
              << " of the peak\n";
  else
    std::cout << "  work         n/a (an artifact of ABI 1.0/1.1 carries no FLOP count): GFLOP/s n/a, % of peak n/a\n";
  std::cout << "  peak         "
            << (r.peakGflops ? fixed(*r.peakGflops, 1) + " GFLOP/s (the single-core FMA peak " +
                                   fixed(r.singleCorePeak, 1) + " GFLOP/s x " + threadCount(r.threads) + ")"
                             : std::string("n/a (the FMA peak is measured on x86-64 only)"))
            << "\n";
  std::cout << "  memory       " << fixed(r.peakRssMiB, 1) << " MiB peak resident\n";
  if (request.profile) printLayers(r.layers, r.peakGflops);
}

Json resultsJson(const BenchRequest& request, const Subject& s, const BatchPlan& batch, const Results& r) {
  Json j;
  j["kiln_bench_version"] = kJsonVersion;
  j["artifact"] = request.path;
  j["kind"] = s.kind;
  j["model_name"] = s.modelName;
  j["host_cpu"] = r.hostCpu;
  j["target_cpu"] = s.artifacts[0]->cpu_name;
  j["threads"] = r.threads;
  j["batch"] = batch.samples;
  j["warmup_runs"] = request.warmup;
  j["runs"] = r.timings.runMs.size();
  j["load_ms"] = r.timings.loadMs;
  j["context_ms"] = r.timings.contextMs;
  j["first_run_ms"] = r.timings.firstRunMs;
  j["min_ms"] = r.latency.min;
  j["median_ms"] = r.latency.median;
  j["mean_ms"] = r.latency.mean;
  j["p90_ms"] = r.latency.p90;
  j["p99_ms"] = r.latency.p99;
  j["max_ms"] = r.latency.max;
  j["throughput_samples_per_s"] = r.throughput;
  j["flops_per_run"] = r.flopsPerRun ? Json(*r.flopsPerRun) : Json(nullptr);
  j["gflops_per_s"] = orNull(r.gflops);
  j["peak_gflops_per_s"] = orNull(r.peakGflops);
  j["percent_of_peak"] = orNull(r.percentOfPeak);
  j["peak_rss_mib"] = r.peakRssMiB;
  if (request.profile) {
    Json layers = Json::array();
    for (const LayerTime& l : r.layers) {
      std::optional<double> gflops = l.flops > 0 ? gflopsPerSecond(l.flops, l.ms) : std::optional<double>(0.0);
      layers.push_back({{"name", l.name},
                        {"op", l.op},
                        {"shapes", l.shapes},
                        {"calls", l.calls},
                        {"mean_ms", l.ms},
                        {"share_percent", l.sharePercent},
                        {"gflops_per_s", orNull(gflops)},
                        {"percent_of_peak", orNull(percentOf(gflops, r.peakGflops))}});
    }
    j["layers"] = std::move(layers);
  }
  return j;
}

void writeJson(const std::string& path, const Json& j) {
  writeFileAtomically(path, j.dump(2) + "\n");
  std::cout << "wrote " << path << "\n";
}

// ---- the command -----------------------------------------------------------

std::optional<int32_t> parseThreads(const ParsedArgs& args) {
  auto threads = args.value("--threads");
  if (!threads) return std::nullopt;
  return static_cast<int32_t>(parseInteger("--threads", *threads, 1, 1024));
}

BenchRequest parseRequest(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("bench takes one ARTIFACT.so or ENSEMBLE.json (or --peak), given " +
                     std::to_string(args.positionals.size()) + " arguments");
  if (args.has("--iterations") && args.has("--time"))
    throw UsageError("--iterations and --time exclude each other: time a number of runs or a duration");
  BenchRequest r;
  r.path = args.positionals[0];
  if (auto batch = args.value("--batch")) r.batch = parseInteger("--batch", *batch, 1, INT32_MAX);
  if (auto warmup = args.value("--warmup")) r.warmup = parseInteger("--warmup", *warmup, 0, INT32_MAX);
  if (auto iterations = args.value("--iterations"))
    r.iterations = parseInteger("--iterations", *iterations, 1, INT32_MAX);
  if (auto seconds = args.value("--time")) r.seconds = parseSeconds("--time", *seconds);
  if (auto json = args.value("--json")) r.jsonPath = parseJsonPath(*json);
  r.profile = args.has("--profile");
  r.quiet = args.has("--quiet");
  return r;
}

int runPeak(const ParsedArgs& args) {
  if (!args.positionals.empty())
    throw UsageError("--peak measures the FMA peak only and takes no ARTIFACT.so or ENSEMBLE.json, given '" +
                     args.positionals[0] + "'");
  for (const char* option : {"--batch", "--warmup", "--iterations", "--time", "--profile"})
    if (args.has(option))
      throw UsageError(std::string("--peak measures the FMA peak only; ") + option + " needs a model");
  std::optional<std::string> jsonPath;
  if (auto json = args.value("--json")) jsonPath = parseJsonPath(*json);
  int32_t threads = parseThreads(args).value_or(kiln::numThreads());

  bench::FmaPeak p = bench::measureFmaPeak();
  auto measured = [](double gflops) { return gflops > 0 ? std::optional<double>(gflops) : std::nullopt; };
  std::optional<double> single = measured(p.gflops);
  std::optional<double> forThreads = single ? std::optional<double>(*single * threads) : std::nullopt;
  std::cout << "single-core FP32 FMA peak: " << orNa(single, 1, " GFLOP/s") << " (ymm "
            << orNa(measured(p.gflopsYmm), 1) << ", zmm " << orNa(measured(p.gflopsZmm), 1) << ")\n";
  std::cout << "peak for " << threadCount(threads) << ": " << orNa(forThreads, 1, " GFLOP/s")
            << " (the single-core peak x " << threads << ", not measured on " << threads << " cores)\n";
  std::cout << "  " << p.method << "\n";
  if (jsonPath)
    writeJson(*jsonPath, Json{{"kiln_bench_version", kJsonVersion},
                              {"host_cpu", hostCpuName()},
                              {"threads", threads},
                              {"single_core_gflops_per_s", orNull(single)},
                              {"ymm_gflops_per_s", orNull(measured(p.gflopsYmm))},
                              {"zmm_gflops_per_s", orNull(measured(p.gflopsZmm))},
                              {"peak_gflops_per_s", orNull(forThreads)}});
  return kExitOk;
}

int runBench(const ParsedArgs& args) {
  if (args.has("--peak")) return runPeak(args);
  BenchRequest request = parseRequest(args);
  // The shared pool's size is fixed once it starts, so set it before loading.
  if (std::optional<int32_t> threads = parseThreads(args)) kiln::setNumThreads(*threads);
  Progress progress(!request.quiet);

  Clock::time_point start = Clock::now();
  std::unique_ptr<Subject> subject = openSubject(request.path);
  double loadMs = millisecondsSince(start);
  BatchPlan batch = planBatch(*subject, request);
  if (request.profile) requireProfile(*subject, request.path);

  Results r;
  r.timings = timeRuns(*subject, request, batch, progress);
  r.timings.loadMs = loadMs;
  progress.update([] { return std::string("kiln bench: measuring the FMA peak"); });
  // After the runs, so that it neither heats nor throttles the core first.
  bench::FmaPeak peak = bench::measureFmaPeak();
  progress.finish();

  r.hostCpu = hostCpuName();
  r.threads = kiln::numThreads();
  r.latency = latencyStats(r.timings.runMs);
  r.throughput = static_cast<double>(batch.samples) / (r.latency.mean / 1e3);
  r.flopsPerRun = flopsPerRun(*subject, batch.runBatch);
  r.gflops = gflopsPerSecond(asDouble(r.flopsPerRun), r.latency.median);
  r.singleCorePeak = peak.gflops;
  if (peak.gflops > 0) r.peakGflops = peak.gflops * r.threads;
  r.percentOfPeak = percentOf(r.gflops, r.peakGflops);
  r.peakRssMiB = peakRssMiB();
  if (request.profile) r.layers = layerTimes(*subject, r.timings, r.latency.mean, batch.runBatch);

  printReport(request, *subject, batch, r);
  if (request.jsonPath) writeJson(*request.jsonPath, resultsJson(request, *subject, batch, r));
  return kExitOk;
}

}  // namespace

const Command& benchCommand() {
  static const Command command{
      "bench",
      "time a compiled artifact or ensemble: latency, throughput, GFLOP/s vs peak",
      kHelp,
      {{"--batch", true, false},
       {"--threads", true, false},
       {"--warmup", true, false},
       {"--iterations", true, false},
       {"--time", true, false},
       {"--json", true, false},
       {"--profile", false, false},
       {"--quiet", false, false},
       {"--peak", false, false}},
      runBench,
  };
  return command;
}

}  // namespace kiln::cli
