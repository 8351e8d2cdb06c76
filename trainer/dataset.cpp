// IDX reading, the stratified split and the test set loader (see dataset.h).
#include "trainer/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "trainer/random.h"

namespace kiln::train {

namespace {

constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 30;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// Reads exactly n bytes (gzread decompresses gzip and passes raw files through).
size_t readBytes(gzFile f, uint8_t* out, size_t n, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 26));
    int got = gzread(f, out + done, chunk);
    if (got < 0) {
      int code = 0;
      throw DataError(path + ": cannot decompress (" + gzerror(f, &code) + ")");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

}  // namespace

IdxArray readIdxFile(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw DataError(path + ": cannot open");
  uint8_t header[4];
  if (readBytes(f.get(), header, 4, path) != 4) throw DataError(path + ": too short for an IDX header");
  if (header[0] != 0 || header[1] != 0) throw DataError(path + ": not an IDX file (bad magic)");
  if (header[2] != 0x08) throw DataError(path + ": IDX element type " + std::to_string(header[2]) + " is not unsigned byte (0x08)");
  int rank = header[3];
  if (rank < 1 || rank > 4) throw DataError(path + ": IDX rank " + std::to_string(rank) + " is not 1..4");
  IdxArray a;
  uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    uint8_t d[4];
    if (readBytes(f.get(), d, 4, path) != 4) throw DataError(path + ": header ends inside the dimensions");
    uint64_t dim = (uint64_t{d[0]} << 24) | (uint64_t{d[1]} << 16) | (uint64_t{d[2]} << 8) | d[3];
    if (dim == 0) throw DataError(path + ": dimension " + std::to_string(i) + " is 0");
    count *= dim;
    if (count > kMaxIdxBytes) throw DataError(path + ": declares more than 1 GiB of data");
    a.dims.push_back(static_cast<int64_t>(dim));
  }
  a.values.resize(count);
  size_t got = readBytes(f.get(), a.values.data(), count, path);
  if (got != count)
    throw DataError(path + ": truncated: dimensions " + dimsStr(a.dims) + " need " + std::to_string(count) +
                    " bytes of data, the file has " + std::to_string(got));
  uint8_t extra;
  if (readBytes(f.get(), &extra, 1, path) != 0) throw DataError(path + ": trailing bytes after the data");
  return a;
}

LabeledImages readIdxPair(const std::string& imagesPath, const std::string& labelsPath, int numClasses) {
  IdxArray images = readIdxFile(imagesPath), labels = readIdxFile(labelsPath);
  if (images.dims.size() != 3) throw DataError(imagesPath + ": images must be [N, H, W], got " + dimsStr(images.dims));
  if (labels.dims.size() != 1) throw DataError(labelsPath + ": labels must be [N], got " + dimsStr(labels.dims));
  if (labels.dims[0] != images.dims[0])
    throw DataError(labelsPath + ": " + std::to_string(labels.dims[0]) + " labels for " + std::to_string(images.dims[0]) + " images");
  for (uint8_t l : labels.values)
    if (l >= numClasses) throw DataError(labelsPath + ": label " + std::to_string(l) + " is not below " + std::to_string(numClasses));
  LabeledImages out;
  out.images = Tensor({images.dims[0], 1, images.dims[1], images.dims[2]});
  for (size_t i = 0; i < images.values.size(); ++i) out.images.data[i] = static_cast<float>(images.values[i]) / 255.0f;
  out.labels = std::move(labels.values);
  return out;
}

LabeledImages LabeledImages::subset(const std::vector<int64_t>& indices) const {
  Dims shape = images.shape;
  shape[0] = static_cast<int64_t>(indices.size());
  const int64_t per = product(images.shape, 1);
  LabeledImages out{Tensor(shape), {}};
  out.labels.reserve(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    std::copy_n(images.ptr() + indices[k] * per, per, out.images.ptr() + static_cast<int64_t>(k) * per);
    out.labels.push_back(labels[static_cast<size_t>(indices[k])]);
  }
  return out;
}

DatasetFolder::DatasetFolder(const std::string& nameOrPath)
    : path_(nameOrPath == "fashion-mnist" ? "/usr/share/datasets/fashion-mnist" : nameOrPath) {
  if (!std::filesystem::is_directory(path_)) throw DataError(path_ + ": no such dataset folder");
}

std::string DatasetFolder::file(const std::string& stem) const {
  for (const std::string& name : {stem + ".gz", stem}) {
    std::filesystem::path p = std::filesystem::path(path_) / name;
    if (std::filesystem::exists(p)) return p.string();
  }
  throw DataError(path_ + ": has neither " + stem + " nor " + stem + ".gz");
}

TrainValSplit splitStratified(const LabeledImages& all, int64_t validationSize, uint64_t seed) {
  const int64_t N = all.size();
  if (validationSize <= 0 || validationSize >= N)
    throw DataError("validation size " + std::to_string(validationSize) + " must be in (0, " + std::to_string(N) + ")");
  std::vector<std::vector<int64_t>> byClass(256);
  for (int64_t i = 0; i < N; ++i) byClass[all.labels[static_cast<size_t>(i)]].push_back(i);
  // Quotas: floor of the proportional share, then the largest remainders.
  std::vector<int64_t> quota(256);
  std::vector<std::pair<int64_t, int>> remainders;
  int64_t assigned = 0;
  for (int c = 0; c < 256; ++c) {
    int64_t exact = static_cast<int64_t>(byClass[c].size()) * validationSize;
    quota[c] = exact / N;
    assigned += quota[c];
    if (!byClass[c].empty()) remainders.push_back({-(exact % N), c});
  }
  std::sort(remainders.begin(), remainders.end());
  for (size_t k = 0; assigned < validationSize; ++k, ++assigned) ++quota[remainders[k].second];
  Rng rng(seed);
  std::vector<int64_t> train, validation;
  for (int c = 0; c < 256; ++c) {
    rng.shuffle(byClass[c]);
    for (size_t k = 0; k < byClass[c].size(); ++k)
      (static_cast<int64_t>(k) < quota[c] ? validation : train).push_back(byClass[c][k]);
  }
  std::sort(train.begin(), train.end());
  std::sort(validation.begin(), validation.end());
  return {all.subset(train), all.subset(validation)};
}

TrainValSplit loadTrainValSplit(const DatasetFolder& folder, int64_t validationSize, uint64_t seed) {
  return splitStratified(readIdxPair(folder.file("train-images-idx3-ubyte"), folder.file("train-labels-idx1-ubyte"), 10),
                         validationSize, seed);
}

TestSet TestSet::load(const DatasetFolder& folder) {
  return TestSet(readIdxPair(folder.file("t10k-images-idx3-ubyte"), folder.file("t10k-labels-idx1-ubyte"), 10));
}

}  // namespace kiln::train
