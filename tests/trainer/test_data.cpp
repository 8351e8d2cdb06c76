// IDX loading (raw and gzip, malformed files rejected with DataError), the
// stratified split, and the structural separation of the test set.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <type_traits>

#include "trainer/dataset.h"

using namespace kiln::train;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes idx(std::vector<uint32_t> dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes b{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

fs::path tempDir() {
  fs::path dir = fs::temp_directory_path() / ("kiln_trainer_data_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

std::string writeRaw(const std::string& name, const Bytes& b) {
  std::string path = (tempDir() / name).string();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return path;
}

std::string writeGz(const std::string& name, const Bytes& b) {
  std::string path = (tempDir() / name).string();
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
  gzclose(f);
  return path;
}

Bytes iota(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i);
  return b;
}

}  // namespace

TEST_CASE("IDX: raw and gzip files read the same") {
  Bytes file = idx({2, 3, 4}, iota(24));
  for (const std::string& path : {writeRaw("ok.idx", file), writeGz("ok.idx.gz", file)}) {
    IdxArray a = readIdxFile(path);
    CHECK(a.dims == Dims{2, 3, 4});
    CHECK(a.values == iota(24));
  }
}

TEST_CASE("IDX: images + labels pair, scaled to [0, 1]") {
  LabeledImages d = readIdxPair(writeRaw("img.idx", idx({2, 2, 2}, {0, 255, 51, 0, 1, 2, 3, 4})),
                                writeGz("lab.idx.gz", idx({2}, {3, 9})), 10);
  CHECK(d.images.shape == Dims{2, 1, 2, 2});
  CHECK(d.images[1] == 1.0f);
  CHECK(d.images[2] == Approx(0.2f));
  CHECK(d.labels == Bytes{3, 9});
}

TEST_CASE("IDX: malformed files are errors naming the file, never crashes") {
  std::map<std::string, Bytes> bad = {
      {"empty", {}},
      {"short_header", {0, 0, 8}},
      {"bad_magic", {1, 0, 8, 1, 0, 0, 0, 1, 7}},
      {"float_type", idx({1}, {0, 0, 0, 0}, 0x0D)},
      {"rank_zero", {0, 0, 8, 0}},
      {"rank_five", idx({1, 1, 1, 1, 1}, {0})},
      {"dims_cut", {0, 0, 8, 2, 0, 0, 0, 3, 0, 0}},
      {"zero_dim", idx({0, 4}, {})},
      {"truncated_data", idx({3, 4}, iota(7))},
      {"trailing_data", idx({2}, iota(3))},
      {"huge_dims", idx({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {})},
  };
  for (const auto& [name, bytes] : bad) {
    INFO(name);
    std::string raw = writeRaw(name, bytes);
    CHECK_THROWS_AS(readIdxFile(raw), DataError);
    CHECK_THROWS_WITH(readIdxFile(raw), Catch::Contains(raw));
    CHECK_THROWS_AS(readIdxFile(writeGz(name + ".gz", bytes)), DataError);
  }
  // A gzip header followed by garbage.
  Bytes corrupt{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x11};
  CHECK_THROWS_AS(readIdxFile(writeRaw("corrupt.gz", corrupt)), DataError);
  CHECK_THROWS_AS(readIdxFile((tempDir() / "missing").string()), DataError);
}

TEST_CASE("IDX: inconsistent image/label pairs are errors") {
  std::string images = writeRaw("img3.idx", idx({3, 2, 2}, iota(12)));
  CHECK_THROWS_AS(readIdxPair(images, writeRaw("lab2.idx", idx({2}, {0, 1})), 10), DataError);
  CHECK_THROWS_AS(readIdxPair(images, writeRaw("lab_big.idx", idx({3}, {0, 1, 10})), 10), DataError);
  CHECK_THROWS_AS(readIdxPair(images, writeRaw("lab_rank2.idx", idx({3, 1}, {0, 1, 2})), 10), DataError);
  CHECK_THROWS_AS(readIdxPair(writeRaw("img_rank2.idx", idx({3, 4}, iota(12))), writeRaw("lab3.idx", idx({3}, {0, 1, 2})), 10),
                  DataError);
}

TEST_CASE("Stratified split: class shares kept, disjoint, complete, seeded") {
  // Unequal classes: class k has 20 + 7k samples.
  LabeledImages all;
  for (uint8_t k = 0; k < 10; ++k)
    for (int i = 0; i < 20 + 7 * k; ++i) all.labels.push_back(k);
  const int64_t N = all.size();
  all.images = Tensor({N, 1, 1, 1});
  for (int64_t i = 0; i < N; ++i) all.images[i] = static_cast<float>(i);  // the sample's id
  TrainValSplit s = splitStratified(all, 100, 42);
  REQUIRE(s.validation.size() == 100);
  REQUIRE(s.train.size() == N - 100);
  std::set<float> ids;
  for (float v : s.train.images.data) ids.insert(v);
  for (float v : s.validation.images.data) ids.insert(v);
  CHECK(static_cast<int64_t>(ids.size()) == N);
  std::map<int, int> perClass;
  for (uint8_t l : s.validation.labels) ++perClass[l];
  for (int k = 0; k < 10; ++k) {
    double share = (20.0 + 7 * k) * 100.0 / static_cast<double>(N);
    CHECK(std::abs(perClass[k] - share) < 1.0);
  }
  for (int64_t i = 0; i < s.validation.size(); ++i)
    CHECK(all.labels[static_cast<size_t>(s.validation.images[i])] == s.validation.labels[static_cast<size_t>(i)]);
  CHECK(splitStratified(all, 100, 42).validation.images.data == s.validation.images.data);
  CHECK(splitStratified(all, 100, 43).validation.images.data != s.validation.images.data);
  CHECK_THROWS_AS(splitStratified(all, N, 1), DataError);
}

TEST_CASE("Fashion-MNIST: 50k/10k split with 1000 validation images per class") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) {
    WARN("dataset-fashion-mnist is not installed; skipped");
    return;
  }
  TrainValSplit s = loadTrainValSplit(DatasetFolder("fashion-mnist"), 10000, 0);
  CHECK(s.train.images.shape == Dims{50000, 1, 28, 28});
  CHECK(s.validation.images.shape == Dims{10000, 1, 28, 28});
  std::map<int, int> perClass;
  for (uint8_t l : s.validation.labels) ++perClass[l];
  for (int k = 0; k < 10; ++k) CHECK(perClass[k] == 1000);
}

TEST_CASE("The test set is only reachable through the final evaluation") {
  static_assert(!std::is_default_constructible_v<TestSet>);
  static_assert(!std::is_constructible_v<TestSet, LabeledImages>);
  static_assert(!std::is_constructible_v<TestSet, const DatasetFolder&>);
  CHECK_THROWS_AS(DatasetFolder("/nonexistent/kiln"), DataError);
}
