#include "runtime/src/cpu_features.h"

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kiln::runtime {

namespace {

enum class Register : uint8_t { Eax, Ebx, Ecx, Edx };

// Register state the OS must save for the feature's instructions to work:
// with a bit set in CPUID but the state disabled in XCR0 they still fault.
enum class OsState : uint8_t { None, Avx, Avx512, Amx };

struct CpuidFeature {
  const char* name;  // LLVM's name, as in cpu_features
  uint32_t leaf, subleaf;
  Register reg;
  uint8_t bit;
  OsState state;
};

// The x86 extensions whose instructions LLVM's instruction selection and
// vectorizers emit for ordinary arithmetic, memory and shuffle code (all that
// kiln's generated IR contains), with their CPUID bits (Intel SDM vol. 2,
// CPUID; AMD APM vol. 3) and the OS state LLVM's own host detection requires.
// An artifact enabling one of these may execute it, so a host without it
// must refuse the artifact. Not checked:
// - tuning flags ("fast-*", "slow-*", "macrofusion", ...) and "64bit": they
//   change instruction choice, not the instruction set;
// - "evex512": an LLVM pseudo-feature implied by avx512f on every AVX-512 CPU;
// - system, crypto and random-number extensions (aes, sha, rdrnd, xsave*,
//   fsgsbase, clwb, shstk, ...): LLVM emits them only for intrinsics, which
//   kiln's code generator never calls;
// - prfchw: PREFETCHW executes as a NOP on x86-64 CPUs without it;
// - other architectures' features: the table is x86's. An artifact for
//   another architecture is refused by its ELF machine first; on an AArch64
//   host its features are not checked yet (that needs getauxval(AT_HWCAP)).
constexpr CpuidFeature kCheckedFeatures[] = {
    {"cmov", 1, 0, Register::Edx, 15, OsState::None},
    {"sse", 1, 0, Register::Edx, 25, OsState::None},
    {"sse2", 1, 0, Register::Edx, 26, OsState::None},
    {"sse3", 1, 0, Register::Ecx, 0, OsState::None},
    {"ssse3", 1, 0, Register::Ecx, 9, OsState::None},
    {"fma", 1, 0, Register::Ecx, 12, OsState::Avx},
    {"sse4.1", 1, 0, Register::Ecx, 19, OsState::None},
    {"sse4.2", 1, 0, Register::Ecx, 20, OsState::None},
    {"movbe", 1, 0, Register::Ecx, 22, OsState::None},
    {"popcnt", 1, 0, Register::Ecx, 23, OsState::None},
    {"avx", 1, 0, Register::Ecx, 28, OsState::Avx},
    {"f16c", 1, 0, Register::Ecx, 29, OsState::Avx},
    {"bmi", 7, 0, Register::Ebx, 3, OsState::None},
    {"avx2", 7, 0, Register::Ebx, 5, OsState::Avx},
    {"bmi2", 7, 0, Register::Ebx, 8, OsState::None},
    {"avx512f", 7, 0, Register::Ebx, 16, OsState::Avx512},
    {"avx512dq", 7, 0, Register::Ebx, 17, OsState::Avx512},
    {"avx512ifma", 7, 0, Register::Ebx, 21, OsState::Avx512},
    {"avx512cd", 7, 0, Register::Ebx, 28, OsState::Avx512},
    {"avx512bw", 7, 0, Register::Ebx, 30, OsState::Avx512},
    {"avx512vl", 7, 0, Register::Ebx, 31, OsState::Avx512},
    {"avx512vbmi", 7, 0, Register::Ecx, 1, OsState::Avx512},
    {"avx512vbmi2", 7, 0, Register::Ecx, 6, OsState::Avx512},
    {"gfni", 7, 0, Register::Ecx, 8, OsState::None},
    {"avx512vnni", 7, 0, Register::Ecx, 11, OsState::Avx512},
    {"avx512bitalg", 7, 0, Register::Ecx, 12, OsState::Avx512},
    {"avx512vpopcntdq", 7, 0, Register::Ecx, 14, OsState::Avx512},
    {"avx512vp2intersect", 7, 0, Register::Edx, 8, OsState::Avx512},
    {"amx-bf16", 7, 0, Register::Edx, 22, OsState::Amx},
    {"avx512fp16", 7, 0, Register::Edx, 23, OsState::Avx512},
    {"amx-tile", 7, 0, Register::Edx, 24, OsState::Amx},
    {"amx-int8", 7, 0, Register::Edx, 25, OsState::Amx},
    {"avxvnni", 7, 1, Register::Eax, 4, OsState::Avx},
    {"avx512bf16", 7, 1, Register::Eax, 5, OsState::Avx512},
    {"amx-fp16", 7, 1, Register::Eax, 21, OsState::Amx},
    {"avxifma", 7, 1, Register::Eax, 23, OsState::Avx},
    {"avxvnniint8", 7, 1, Register::Edx, 4, OsState::Avx},
    {"avxneconvert", 7, 1, Register::Edx, 5, OsState::Avx},
    {"amx-complex", 7, 1, Register::Edx, 8, OsState::Amx},
    {"sahf", 0x80000001, 0, Register::Ecx, 0, OsState::None},
    {"lzcnt", 0x80000001, 0, Register::Ecx, 5, OsState::None},
    {"sse4a", 0x80000001, 0, Register::Ecx, 6, OsState::None},
    {"xop", 0x80000001, 0, Register::Ecx, 11, OsState::Avx},
    {"fma4", 0x80000001, 0, Register::Ecx, 16, OsState::Avx},
    {"tbm", 0x80000001, 0, Register::Ecx, 21, OsState::None},
};

#if defined(__x86_64__) || defined(__i386__)

// cpuid.h's __get_cpuid_count checks the leaf against the maximum leaf of its
// range (basic or extended) and fails beyond it.
bool cpuid(uint32_t leaf, uint32_t subleaf, uint32_t (&regs)[4]) {
  return __get_cpuid_count(leaf, subleaf, &regs[0], &regs[1], &regs[2], &regs[3]) != 0;
}

// XCR0: which register states the OS saves on context switches.
uint64_t enabledOsState() {
  uint32_t regs[4];
  constexpr uint32_t kOsxsave = 1u << 27;  // CPUID.1:ECX, the OS enabled XGETBV
  if (!cpuid(1, 0, regs) || !(regs[2] & kOsxsave)) return 0;
  uint32_t low, high;
  __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
  return (uint64_t{high} << 32) | low;
}

bool osSaves(OsState state, uint64_t xcr0) {
  constexpr uint64_t kAvx = 0x6;          // SSE + AVX (YMM) state
  constexpr uint64_t kAvx512 = 0xe6;      // + opmask, ZMM_Hi256, Hi16_ZMM
  constexpr uint64_t kAmx = 0x3ull << 17; // XTILECFG + XTILEDATA
  switch (state) {
    case OsState::None: return true;
    case OsState::Avx: return (xcr0 & kAvx) == kAvx;
    case OsState::Avx512: return (xcr0 & kAvx512) == kAvx512;
    case OsState::Amx: return (xcr0 & kAmx) == kAmx;
  }
  return false;
}

CpuFeatureSet detectHostFeatures() {
  CpuFeatureSet host;
  uint64_t xcr0 = enabledOsState();
  uint32_t leaf7[4];
  // Leaf 7 subleaf 1 exists only when subleaf 0 reports it (EAX >= 1).
  bool hasLeaf7Subleaf1 = cpuid(7, 0, leaf7) && leaf7[0] >= 1;
  for (const CpuidFeature& f : kCheckedFeatures) {
    uint32_t regs[4];
    if (f.leaf == 7 && f.subleaf == 1 && !hasLeaf7Subleaf1) continue;
    if (!cpuid(f.leaf, f.subleaf, regs)) continue;
    if ((regs[static_cast<int>(f.reg)] >> f.bit & 1) && osSaves(f.state, xcr0)) host.insert(f.name);
  }
  return host;
}

#else

CpuFeatureSet detectHostFeatures() { return {}; }

#endif

}  // namespace

bool isCheckedCpuFeature(std::string_view name) {
  return std::any_of(std::begin(kCheckedFeatures), std::end(kCheckedFeatures),
                     [&](const CpuidFeature& f) { return name == f.name; });
}

const CpuFeatureSet& hostCpuFeatures() {
  static const CpuFeatureSet host = detectHostFeatures();
  return host;
}

std::vector<std::string> missingCpuFeatures(std::string_view required, const CpuFeatureSet& host) {
  std::vector<std::string> missing;
  while (!required.empty()) {
    size_t comma = required.find(',');
    std::string_view entry = required.substr(0, comma);
    required = comma == std::string_view::npos ? std::string_view() : required.substr(comma + 1);
    if (entry.size() < 2 || entry[0] != '+') continue;
    std::string_view name = entry.substr(1);
    if (isCheckedCpuFeature(name) && !host.contains(name) &&
        std::find(missing.begin(), missing.end(), name) == missing.end())
      missing.emplace_back(name);
  }
  return missing;
}

}  // namespace kiln::runtime
