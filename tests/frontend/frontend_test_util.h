// Helpers of the frontend tests: model paths, importing, finding nodes.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "frontends/onnx/onnx_importer.h"

namespace kiln::test {

inline std::string modelPath(const std::string& name) { return std::string(KILN_FRONTEND_MODELS) + "/" + name + ".onnx"; }

inline Graph importTestModel(const std::string& name) { return onnx_import::importModelFile(modelPath(name)); }

inline std::vector<std::string> opSequence(const Graph& g) {
  std::vector<std::string> ops;
  for (const Node* n : g.nodes()) ops.push_back(n->opName());
  return ops;
}

// The graph's single node (fails the test unless there is exactly one).
inline const Node& singleNode(const Graph& g) {
  REQUIRE(g.numNodes() == 1);
  return *g.nodes().front();
}

// The message of the kiln::Error `fn` throws ("" if it throws none).
template <class Fn>
std::string errorOf(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace kiln::test
