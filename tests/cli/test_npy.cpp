// kiln_npy: .npy round trips, numpy compatibility both ways, malformed files
// (each must be a kiln::Error naming the file) and atomic writes.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "tools/npy.h"

namespace fs = std::filesystem;
using kiln::DType;
using kiln::Shape;
using kiln::Tensor;

namespace {

fs::path scratchDir(const std::string& name) {
  fs::path dir = fs::path(KILN_CLI_SCRATCH) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string npyBytes(std::string_view header, std::string_view data, char major = 1) {
  std::string out = "\x93NUMPY";
  out += major;
  out += '\0';
  size_t width = major == 1 ? 2 : 4;
  for (size_t i = 0; i < width; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  out += header;
  out += data;
  return out;
}

void requireParseError(const std::string& bytes, const std::string& expected) {
  try {
    kiln::npy::parse(bytes, "bad.npy");
    FAIL("parsed a malformed file; expected an error containing: " << expected);
  } catch (const kiln::Error& e) {
    INFO(e.what());
    CHECK(e.site().file == "bad.npy");
    CHECK(std::string(e.what()).rfind("bad.npy: ", 0) == 0);
    CHECK_THAT(e.what(), Catch::Contains(expected));
  }
}

// Tensor::fromVector cannot take std::vector<bool> (it has no data()).
Tensor boolTensor(Shape shape, std::initializer_list<bool> values) {
  Tensor t(DType::Bool, std::move(shape));
  std::copy(values.begin(), values.end(), t.data<bool>());
  return t;
}

template <class T>
void requireSame(const Tensor& a, const Tensor& b) {
  REQUIRE(a.type() == b.type());
  auto va = a.values<T>(), vb = b.values<T>();
  CHECK(std::vector<T>(va.begin(), va.end()) == std::vector<T>(vb.begin(), vb.end()));
}

}  // namespace

TEST_CASE("npy round trips every supported dtype and rank") {
  requireSame<float>(kiln::npy::parse(kiln::npy::encode(Tensor::fromVector<float>({2, 3}, {1, -2, 3.5f, 0, 5, 6})), "x"),
                     Tensor::fromVector<float>({2, 3}, {1, -2, 3.5f, 0, 5, 6}));
  Tensor ints = Tensor::fromVector<int64_t>({4}, {INT64_MIN, -1, 0, INT64_MAX});
  requireSame<int64_t>(kiln::npy::parse(kiln::npy::encode(ints), "x"), ints);
  Tensor scalar = Tensor::scalar<int32_t>(-42);
  requireSame<int32_t>(kiln::npy::parse(kiln::npy::encode(scalar), "x"), scalar);
  Tensor flags = boolTensor({2, 2}, {true, false, false, true});
  requireSame<bool>(kiln::npy::parse(kiln::npy::encode(flags), "x"), flags);
  Tensor empty(DType::F32, Shape{0, 3});
  requireSame<float>(kiln::npy::parse(kiln::npy::encode(empty), "x"), empty);
}

TEST_CASE("npy headers are 64-byte aligned version 1.0 dicts") {
  std::string bytes = kiln::npy::encode(Tensor::fromVector<float>({3}, {1, 2, 3}));
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  size_t headerEnd = 10 + (static_cast<uint8_t>(bytes[8]) | static_cast<uint8_t>(bytes[9]) << 8);
  CHECK(headerEnd % 64 == 0);
  CHECK(bytes.size() == headerEnd + 3 * sizeof(float));
  CHECK(bytes[headerEnd - 1] == '\n');
  CHECK_THAT(bytes.substr(10, headerEnd - 10), Catch::StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"));
}

TEST_CASE("npy reads files numpy wrote") {
  std::string dir = KILN_CLI_DATA;
  requireSame<float>(kiln::npy::readFile(dir + "/np_v2.npy"), Tensor::fromVector<float>({2, 3}, {0, 1, 2, 3, 4, 5}));
  requireSame<bool>(kiln::npy::readFile(dir + "/np_bool.npy"), boolTensor({3}, {true, false, true}));
  requireSame<int32_t>(kiln::npy::readFile(dir + "/np_i32.npy"), Tensor::fromVector<int32_t>({1, 2}, {-7, 8}));
  CHECK_THROWS_WITH(kiln::npy::readFile(dir + "/np_fortran.npy"), Catch::Contains("Fortran-order") && Catch::Contains("np_fortran.npy"));
  CHECK_THROWS_WITH(kiln::npy::readFile(dir + "/np_f64.npy"), Catch::Contains("unsupported dtype '<f8'"));
}

TEST_CASE("numpy reads files kiln wrote") {
  fs::path dir = scratchDir("npy_numpy_reads");
  kiln::npy::writeFile((dir / "a.npy").string(), Tensor::fromVector<float>({2, 2}, {1.5f, -2, 0, 4}));
  kiln::npy::writeFile((dir / "b.npy").string(), Tensor::fromVector<int64_t>({3}, {-1, 0, 1LL << 40}));
  std::string script =
      "import numpy as np, sys\n"
      "a = np.load(sys.argv[1]); b = np.load(sys.argv[2])\n"
      "assert a.dtype == np.float32 and a.tolist() == [[1.5, -2.0], [0.0, 4.0]], a\n"
      "assert b.dtype == np.int64 and b.tolist() == [-1, 0, 1 << 40], b\n";
  std::ofstream(dir / "check.py") << script;
  std::string command = std::string(KILN_PYTHON) + " " + (dir / "check.py").string() + " " + (dir / "a.npy").string() +
                        " " + (dir / "b.npy").string();
  CHECK(std::system(command.c_str()) == 0);
}

TEST_CASE("npy rejects malformed files with an error naming the file") {
  const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  const std::string eightBytes(8, '\0');
  requireParseError("", "missing the \\x93NUMPY magic");
  requireParseError("\x93NUMPX\x01\x00", "missing the \\x93NUMPY magic");
  requireParseError(std::string("\x93NUMPY\x01", 7), "missing the \\x93NUMPY magic");
  requireParseError(std::string("\x93NUMPY\x01\x00\x10", 9), "truncated .npy header");
  requireParseError(npyBytes(f4, eightBytes).substr(0, 30), "truncated .npy header");
  requireParseError(npyBytes(f4, eightBytes, 4), "unsupported .npy format version 4.0");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", eightBytes), "Fortran-order");
  requireParseError(npyBytes(f4, std::string(7, '\0')), "data size mismatch");
  requireParseError(npyBytes(f4, std::string(9, '\0')), "data size mismatch");
  requireParseError(npyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", eightBytes), "big-endian");
  requireParseError(npyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", eightBytes), "unsupported dtype");
  requireParseError(npyBytes("{'descr': '<f4', 'shape': (2,), }", eightBytes), "lacks one of");
  requireParseError(npyBytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", eightBytes), "appears twice");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", eightBytes), "unexpected key 'x'");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", eightBytes), "negative dimension");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", eightBytes), "does not fit 64 bits");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", eightBytes), "overflows");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", eightBytes), "unexpected text after");
  requireParseError(npyBytes("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", eightBytes), "expected '}'");
  requireParseError(npyBytes("{'descr': '<f4", eightBytes), "unterminated string");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}", eightBytes), "expected True or False");
  requireParseError(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,", eightBytes), "expected an integer dimension");
}

TEST_CASE("npy accepts the header variants numpy has written") {
  std::string data(8, '\0');
  // Double quotes, no trailing comma, Python 2 long dims, a v2.0 length field.
  CHECK(kiln::npy::parse(npyBytes("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}\n", data), "x")
            .shape() == Shape{2});
  CHECK(kiln::npy::parse(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }", data), "x").shape() ==
        Shape{1, 2});
  CHECK(kiln::npy::parse(npyBytes("{'shape': (), 'fortran_order': False, 'descr': '<i8'}", data, 2), "x").shape() ==
        Shape{});
}

TEST_CASE("npy reading a missing file names it") {
  CHECK_THROWS_WITH(kiln::npy::readFile("/nonexistent/dir/x.npy"), Catch::StartsWith("/nonexistent/dir/x.npy: cannot open"));
}

TEST_CASE("npy writes atomically: replaces the file and leaves no temporary behind") {
  fs::path dir = scratchDir("npy_atomic");
  std::string path = (dir / "out.npy").string();
  kiln::npy::writeFile(path, Tensor::fromVector<float>({1}, {1}));
  kiln::npy::writeFile(path, Tensor::fromVector<float>({2}, {2, 3}));
  requireSame<float>(kiln::npy::readFile(path), Tensor::fromVector<float>({2}, {2, 3}));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);

  std::string missing = (dir / "no_such_dir" / "out.npy").string();
  CHECK_THROWS_WITH(kiln::npy::writeFile(missing, Tensor::scalar<float>(1)),
                    Catch::StartsWith(missing + ": cannot create a temporary file"));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}
