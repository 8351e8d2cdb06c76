// The malformed-model corpus: every file of tests/malformed/EXPECTED.tsv
// must fail to import with a kiln::Error containing the listed substring.
#include <fstream>

#include "tests/frontend/frontend_test_util.h"

using namespace kiln;

TEST_CASE("malformed models fail with a clear kiln::Error", "[frontend][malformed]") {
  std::ifstream expected(std::string(KILN_MALFORMED_DIR) + "/EXPECTED.tsv");
  REQUIRE(expected);
  std::string line;
  int cases = 0;
  while (std::getline(expected, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    std::string file = line.substr(0, tab), substring = line.substr(tab + 1);
    std::string message = test::errorOf([&] { onnx_import::importModelFile(std::string(KILN_MALFORMED_DIR) + "/" + file); });
    INFO(file << ": " << message);
    CHECK(!message.empty());
    CHECK(message.find(substring) != std::string::npos);
    ++cases;
  }
  CHECK(cases >= 20);
}
