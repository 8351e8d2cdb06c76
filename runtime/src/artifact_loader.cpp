#include "runtime/src/artifact_loader.h"

#include <dlfcn.h>
#include <elf.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln::runtime {

namespace {

[[noreturn]] void fail(kiln_status status, const std::string& path, const std::string& what) {
  throw StatusError(status, path + ": " + what);
}

#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
#elif defined(__riscv) && __riscv_xlen == 64
constexpr uint16_t kHostMachine = EM_RISCV;
#elif defined(__powerpc64__)
constexpr uint16_t kHostMachine = EM_PPC64;
#else
constexpr uint16_t kHostMachine = EM_NONE;  // unknown host: dlopen alone judges the machine
#endif

std::string machineName(uint16_t machine) {
  static constexpr std::pair<uint16_t, const char*> kNames[] = {
      {EM_X86_64, "x86-64"}, {EM_AARCH64, "AArch64"}, {EM_386, "i386"},      {EM_ARM, "ARM"},
      {EM_RISCV, "RISC-V"},  {EM_PPC64, "PowerPC64"}, {EM_S390, "s390x"}};
  for (const auto& [id, name] : kNames)
    if (id == machine) return std::string(name) + " (ELF machine " + std::to_string(machine) + ")";
  return "ELF machine " + std::to_string(machine);
}

// Everything about the file that can be judged without loading it. dlopen
// maps the segments of a truncated shared object past the end of the file and
// the process dies of SIGBUS when it touches them, so the segments and section
// headers must lie inside the file; and a foreign machine's library would only
// get dlopen's terse "wrong ELF class" or "invalid ELF header".
void checkElfFile(const std::string& path) {
  if (std::filesystem::path(path).extension() == ".onnx")
    fail(KILN_ERR_NOT_ARTIFACT, path,
         "is an ONNX model, not a compiled artifact: compile it with `kiln compile " + path + " -o MODEL.so`");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(KILN_ERR_IO, path, std::string("cannot open: ") + std::strerror(errno));
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(KILN_ERR_IO, path, "not a regular file");
  uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(KILN_ERR_IO, path, "cannot read its size: " + ec.message());

  Elf64_Ehdr header{};
  in.read(reinterpret_cast<char*>(&header), sizeof header);
  size_t got = static_cast<size_t>(in.gcount());
  if (got < SELFMAG || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0)
    fail(KILN_ERR_NOT_ARTIFACT, path, "not an ELF file (a compiled model is a shared object from `kiln compile`)");
  if (got < sizeof header) fail(KILN_ERR_NOT_ARTIFACT, path, "truncated ELF file: " + std::to_string(size) + " bytes");
  if (header.e_ident[EI_CLASS] != ELFCLASS64)
    fail(KILN_ERR_NOT_ARTIFACT, path, "is a 32-bit ELF file; this runtime loads 64-bit shared objects");
  constexpr unsigned char kHostData = std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
  if (header.e_ident[EI_DATA] != kHostData)
    fail(KILN_ERR_NOT_ARTIFACT, path, "has the other byte order than this host");
  if (kHostMachine != EM_NONE && header.e_machine != kHostMachine)
    fail(KILN_ERR_CPU, path,
         "is built for " + machineName(header.e_machine) + ", this host is " + machineName(kHostMachine) +
             ": compile the model for this host");
  if (header.e_type == ET_REL)
    fail(KILN_ERR_NOT_ARTIFACT, path,
         "is an object file, not a shared object: link it into a program (`kiln compile --header`) or compile to .so");
  if (header.e_type != ET_DYN)
    fail(KILN_ERR_NOT_ARTIFACT, path, "is an ELF file of type " + std::to_string(header.e_type) + ", not a shared object");

  auto requireInside = [&](uint64_t offset, uint64_t bytes) {
    if (offset > size || bytes > size - offset)
      fail(KILN_ERR_NOT_ARTIFACT, path,
           "truncated shared object: its ELF headers describe " + std::to_string(offset + bytes) +
               " bytes, the file has " + std::to_string(size));
  };
  requireInside(header.e_shoff, uint64_t{header.e_shnum} * header.e_shentsize);
  requireInside(header.e_phoff, uint64_t{header.e_phnum} * sizeof(Elf64_Phdr));
  in.seekg(static_cast<std::streamoff>(header.e_phoff));
  for (int i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment{};
    if (!in.read(reinterpret_cast<char*>(&segment), sizeof segment))
      fail(KILN_ERR_IO, path, "cannot read program header " + std::to_string(i));
    if (segment.p_type == PT_LOAD) requireInside(segment.p_offset, segment.p_filesz);
  }
}

uint64_t fnv1a(const void* data, uint64_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex(uint64_t value) {
  char text[19];
  std::snprintf(text, sizeof text, "0x%016llx", static_cast<unsigned long long>(value));
  return text;
}

// Per-sample tensors above this many bytes are taken for garbage: it keeps
// every size computation of the runtime far from 64-bit overflow.
constexpr uint64_t kMaxSampleBytes = uint64_t{1} << 46;

void checkTensors(const std::string& path, const char* kind, int32_t count, const kiln_tensor_info* infos) {
  if (count < 0 || (count > 0 && !infos))
    fail(KILN_ERR_CORRUPT, path, std::string("corrupt descriptor: bad ") + kind + " list");
  for (int32_t i = 0; i < count; ++i) {
    const kiln_tensor_info& t = infos[i];
    std::string where = std::string("corrupt descriptor: ") + kind + " " + std::to_string(i);
    if (!t.name || !*t.name) fail(KILN_ERR_CORRUPT, path, where + " has no name");
    where += " '" + std::string(t.name) + "'";
    if (dtypeSize(t.dtype) == 0) fail(KILN_ERR_CORRUPT, path, where + " has unknown dtype " + std::to_string(t.dtype));
    if (t.rank < 0 || t.rank > 8 || (t.rank > 0 && !t.dims))
      fail(KILN_ERR_CORRUPT, path, where + " has rank " + std::to_string(t.rank) + (t.dims ? "" : " and no dims"));
    uint64_t bytes = dtypeSize(t.dtype);
    for (int32_t d = 0; d < t.rank; ++d) {
      if (d == 0 && t.dims[d] == KILN_DIM_BATCH) continue;
      if (t.dims[d] < 0)
        fail(KILN_ERR_CORRUPT, path, where + ": dim " + std::to_string(d) + " is " + std::to_string(t.dims[d]));
      if (t.dims[d] > 0 && bytes > kMaxSampleBytes / static_cast<uint64_t>(t.dims[d]))
        fail(KILN_ERR_CORRUPT, path, where + " is implausibly large");
      bytes *= static_cast<uint64_t>(t.dims[d]);
    }
  }
}

void checkLabels(const kiln_artifact& d, const std::string& path) {
  if (d.num_labels == 0) return;
  if (d.num_labels < 0 || !d.labels)
    fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: label table of " + std::to_string(d.num_labels) + " entries at " +
                                     (d.labels ? "a valid address" : "NULL"));
  bool classesMatch = false;
  for (int32_t i = 0; i < d.num_outputs; ++i)
    classesMatch |= d.outputs[i].rank > 0 && d.outputs[i].dims[d.outputs[i].rank - 1] == d.num_labels;
  if (!classesMatch)
    fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: " + std::to_string(d.num_labels) +
                                     " class labels, but no output's last dim is " + std::to_string(d.num_labels));
  for (int32_t i = 0; i < d.num_labels; ++i)
    if (!d.labels[i]) fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: label " + std::to_string(i) + " is NULL");
}

// More layers than this are taken for garbage: the largest CNNs have a few
// thousand nodes after fusion.
constexpr int32_t kMaxLayers = 1 << 20;

void checkLayers(const kiln_artifact& d, const std::string& path) {
  if (d.num_layers < 0 || d.num_layers > kMaxLayers || (d.num_layers > 0 && !d.layers))
    fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: layer table of " + std::to_string(d.num_layers) + " entries at " +
                                     (d.layers ? "a valid address" : "NULL"));
  for (int32_t i = 0; i < d.num_layers; ++i) {
    const kiln_layer_info& layer = d.layers[i];
    if (!layer.name || !layer.op || !layer.shapes)
      fail(KILN_ERR_CORRUPT, path,
           "corrupt descriptor: layer " + std::to_string(i) + "'s " +
               (!layer.name ? "name" : !layer.op ? "op" : "shapes") + " is NULL");
  }
}

}  // namespace

size_t dtypeSize(int32_t dtype) {
  switch (dtype) {
    case KILN_F32: return 4;
    case KILN_I64: return 8;
    case KILN_I32: return 4;
    case KILN_BOOL: return 1;
    default: return 0;
  }
}

const char* dtypeName(int32_t dtype) {
  switch (dtype) {
    case KILN_F32: return "f32";
    case KILN_I64: return "i64";
    case KILN_I32: return "i32";
    case KILN_BOOL: return "bool";
    default: return "unknown";
  }
}

void checkDescriptor(const kiln_artifact& d, const std::string& path) {
  if (d.magic != KILN_ARTIFACT_MAGIC)
    fail(KILN_ERR_ABI, path, "not a kiln artifact: descriptor magic is " + hex(d.magic) + ", expected " +
                                 hex(KILN_ARTIFACT_MAGIC) + " (\"KILN\")");
  if (d.abi_major != KILN_ABI_MAJOR)
    fail(KILN_ERR_ABI, path, "artifact ABI " + std::to_string(d.abi_major) + "." + std::to_string(d.abi_minor) +
                                 " is not supported by this runtime (ABI " + std::to_string(KILN_ABI_MAJOR) + ".x)");
  if (!d.kiln_version || !d.model_name || !d.target_triple || !d.cpu_name || !d.cpu_features)
    fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: a version, name or target string is NULL");
  if (!d.run || (d.abi_minor >= 4 && !d.run_slots)) fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: no run function");
  if (d.weights_bytes > 0 && !d.weights)
    fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: " + std::to_string(d.weights_bytes) + " weight bytes at NULL");
  if (uint64_t hash = fnv1a(d.weights, d.weights_bytes); hash != d.weights_hash)
    fail(KILN_ERR_CORRUPT, path, "the weights do not match their hash (FNV-1a " + hex(hash) + ", recorded " +
                                     hex(d.weights_hash) + "): the file is corrupt");
  checkTensors(path, "input", d.num_inputs, d.inputs);
  checkTensors(path, "output", d.num_outputs, d.outputs);
  if (d.num_outputs == 0) fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: the model has no outputs");
  if (d.workspace_bytes_per_sample > kMaxSampleBytes)
    fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: implausible workspace of " +
                                     std::to_string(d.workspace_bytes_per_sample) + " bytes per sample");
  // A region of 0 bytes with a chunk is plausible (a suffix touching only
  // graph inputs and outputs); bytes without a chunk are not.
  if (d.abi_minor >= 5 && (d.batch_region_bytes_per_sample > kMaxSampleBytes ||
                           (d.batch_region_bytes_per_sample > 0 && d.batch_region_samples == 0) ||
                           d.batch_region_samples > KILN_MAX_SLOTS))
    fail(KILN_ERR_CORRUPT, path, "corrupt descriptor: implausible batch region of " +
                                     std::to_string(d.batch_region_bytes_per_sample) + " bytes for " +
                                     std::to_string(d.batch_region_samples) + " samples");
  // ABI 1.0 descriptors end before the label fields, 1.1 ones before the layers.
  if (d.abi_minor >= 1) checkLabels(d, path);
  if (d.abi_minor >= 2) checkLayers(d, path);
}

void checkCpuFeatures(const kiln_artifact& d, const std::string& path, const CpuFeatureSet& host) {
  std::vector<std::string> missing = missingCpuFeatures(d.cpu_features, host);
  if (missing.empty()) return;
  std::string list;
  for (const std::string& feature : missing) list += (list.empty() ? "" : ", ") + feature;
  fail(KILN_ERR_CPU, path, "compiled for CPU '" + std::string(d.cpu_name) + "', it needs " + list +
                               ", which this host's CPU lacks: compile it for this host (`kiln compile --cpu native`)");
}

std::shared_ptr<Artifact> Artifact::open(const std::string& path) {
  checkElfFile(path);
  std::shared_ptr<Artifact> a(new Artifact());
  a->path_ = path;
  // A name without a slash would make dlopen search the library path
  // instead of opening the file checked above.
  a->handle_ = dlopen(std::filesystem::absolute(path).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!a->handle_) {
    const char* why = dlerror();
    fail(KILN_ERR_NOT_ARTIFACT, path, std::string("cannot load: ") + (why ? why : "unknown dlopen error"));
  }
  // Every artifact exports the unprefixed alias; RTLD_LOCAL keeps each
  // model's copy private to its handle.
  auto entry = reinterpret_cast<kiln_artifact_entry_fn>(dlsym(a->handle_, "kiln_artifact_v1"));
  if (!entry) fail(KILN_ERR_NOT_ARTIFACT, path, "not a kiln artifact: it exports no kiln_artifact_v1 symbol");
  const kiln_artifact* d = entry();
  if (!d) fail(KILN_ERR_ABI, path, "not a kiln artifact: kiln_artifact_v1 returned NULL");
  checkDescriptor(*d, path);
  checkCpuFeatures(*d, path, hostCpuFeatures());
  a->desc_ = d;
  return a;
}

Artifact::~Artifact() {
  if (handle_) dlclose(handle_);
}

std::span<const char* const> Artifact::labels() const {
  if (desc_->abi_minor < 1 || desc_->num_labels <= 0) return {};
  return {desc_->labels, static_cast<size_t>(desc_->num_labels)};
}

uint64_t Artifact::elementCount(const kiln_tensor_info& info, int64_t batch) {
  uint64_t n = 1;
  for (int32_t d = 0; d < info.rank; ++d) n *= static_cast<uint64_t>(info.dims[d] == KILN_DIM_BATCH ? batch : info.dims[d]);
  return n;
}

int32_t Artifact::run(int64_t batch, const void* const* inputs, void* const* outputs, void* workspace,
                      kiln_parallel_for_fn parallelFor, void* pool, int64_t slots) const {
  if (desc_->abi_minor >= 4) return desc_->run_slots(batch, inputs, outputs, workspace, slots, parallelFor, pool);
  return desc_->run(batch, inputs, outputs, workspace, parallelFor, pool);
}

}  // namespace kiln::runtime
