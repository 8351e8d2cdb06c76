// Which CPU features an artifact needs that the host lacks, so the loader can
// refuse AVX-512 code on a CPU without AVX-512 with a message naming the
// feature instead of dying of SIGILL in the middle of a run.
//
// Artifacts record the LLVM subtarget features their code may use
// (kiln_artifact::cpu_features, "+avx512f,+fma,..."). The loader checks the
// x86 instruction-set extensions in a fixed table (cpu_features.cpp); the rest
// of the list is not checked, for the reasons given next to the table.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

using CpuFeatureSet = std::set<std::string, std::less<>>;

// Whether `name` ("avx512f", no sign) is one of the features the loader checks.
bool isCheckedCpuFeature(std::string_view name);

// The checked features this host's CPU and OS support (cpuid and XCR0);
// empty on non-x86 hosts. Computed once.
const CpuFeatureSet& hostCpuFeatures();

// The checked features that the comma-separated list `required` enables
// ("+name") and `host` lacks, in list order. "-name" entries and unchecked
// features are ignored. Pure, for tests with a synthetic host.
std::vector<std::string> missingCpuFeatures(std::string_view required, const CpuFeatureSet& host);

}  // namespace kiln::runtime
