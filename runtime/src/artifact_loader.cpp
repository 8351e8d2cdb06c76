#include "runtime/src/artifact_loader.h"

#include <dlfcn.h>
#include <elf.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln::runtime {

namespace {

uint64_t fnv1a(const void* data, uint64_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

void checkTensors(const std::string& path, const char* kind, int32_t count, const kiln_tensor_info* infos) {
  if (count < 0 || (count > 0 && !infos)) throw ArtifactError(path + ": corrupt descriptor: bad " + kind + " list");
  for (int32_t i = 0; i < count; ++i) {
    const kiln_tensor_info& t = infos[i];
    if (!t.name || t.rank < 0 || t.rank > 8 || (t.rank > 0 && !t.dims) || t.dtype < KILN_F32 || t.dtype > KILN_BOOL)
      throw ArtifactError(path + ": corrupt descriptor: " + kind + " " + std::to_string(i) + " is malformed");
    for (int32_t d = 0; d < t.rank; ++d)
      if (t.dims[d] < 0 && !(d == 0 && t.dims[d] == KILN_DIM_BATCH))
        throw ArtifactError(path + ": corrupt descriptor: " + kind + " '" + t.name + "' has a negative dim");
  }
}

// dlopen maps the segments of a truncated shared object past the end of the
// file and the process dies of SIGBUS when it touches them, so first check
// that the segments and section headers of a 64-bit ELF file lie inside it.
// Anything else (not ELF, 32-bit, too short) is left to dlopen to reject.
void checkNotTruncated(const std::string& path) {
  std::error_code ec;
  uint64_t size = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr header{};
  if (ec || !in.read(reinterpret_cast<char*>(&header), sizeof header)) return;
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64) return;
  auto requireInside = [&](uint64_t offset, uint64_t bytes) {
    if (offset > size || bytes > size - offset)
      throw ArtifactError(path + ": truncated shared object: its ELF headers describe " +
                          std::to_string(offset + bytes) + " bytes, the file has " + std::to_string(size));
  };
  requireInside(header.e_shoff, uint64_t{header.e_shnum} * header.e_shentsize);
  requireInside(header.e_phoff, uint64_t{header.e_phnum} * sizeof(Elf64_Phdr));
  in.seekg(static_cast<std::streamoff>(header.e_phoff));
  for (int i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment{};
    if (!in.read(reinterpret_cast<char*>(&segment), sizeof segment)) return;  // dlopen reports it
    if (segment.p_type == PT_LOAD) requireInside(segment.p_offset, segment.p_filesz);
  }
}

}  // namespace

std::shared_ptr<Artifact> Artifact::open(const std::string& path) {
  std::shared_ptr<Artifact> a(new Artifact());
  a->path_ = path;
  checkNotTruncated(path);
  a->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!a->handle_) {
    const char* why = dlerror();
    throw ArtifactError(path + ": cannot load: " + (why ? why : "unknown dlopen error"));
  }
  auto entry = reinterpret_cast<kiln_artifact_entry_fn>(dlsym(a->handle_, "kiln_artifact_v1"));
  if (!entry) throw ArtifactError(path + ": not a kiln artifact (no kiln_artifact_v1 symbol)");
  const kiln_artifact* d = entry();
  if (!d || d->magic != KILN_ARTIFACT_MAGIC) throw ArtifactError(path + ": not a kiln artifact (bad magic)");
  if (d->abi_major != KILN_ABI_MAJOR)
    throw ArtifactError(path + ": artifact ABI " + std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) +
                        " is not supported by this runtime (ABI " + std::to_string(KILN_ABI_MAJOR) + ".x)");
  if (!d->run || !d->weights) throw ArtifactError(path + ": corrupt descriptor: missing code or weights");
  if (fnv1a(d->weights, d->weights_bytes) != d->weights_hash)
    throw ArtifactError(path + ": weights do not match their hash (corrupt artifact)");
  checkTensors(path, "input", d->num_inputs, d->inputs);
  checkTensors(path, "output", d->num_outputs, d->outputs);
  a->desc_ = d;
  return a;
}

Artifact::~Artifact() {
  if (handle_) dlclose(handle_);
}

uint64_t Artifact::elementCount(const kiln_tensor_info& info, int64_t batch) {
  uint64_t n = 1;
  for (int32_t d = 0; d < info.rank; ++d) n *= static_cast<uint64_t>(info.dims[d] == KILN_DIM_BATCH ? batch : info.dims[d]);
  return n;
}

void Artifact::run(int64_t batch, const void* const* inputs, void* const* outputs, void* workspace) const {
  desc_->run(batch, inputs, outputs, workspace, nullptr, nullptr);
}

}  // namespace kiln::runtime
