// Shapes, tensors and attributes: the value types every stage relies on.
#include <catch2/catch.hpp>

#include "compiler/ir/attributes.h"
#include "compiler/ir/tensor.h"

using namespace kiln;

TEST_CASE("shape element count is checked", "[ir]") {
  CHECK(Shape{2, 3, 4}.numElements() == 24);
  CHECK(Shape{}.numElements() == 1);
  CHECK(Shape{kBatch, 3}.str() == "Nx3");
  CHECK_THROWS_AS(Shape({kBatch, 3}).numElements(), Error);
  CHECK_THROWS_AS(Shape({int64_t{1} << 40, int64_t{1} << 40}).numElements(), Error);
  CHECK(Shape({kBatch, 3}).withBatch(5) == Shape{5, 3});
}

TEST_CASE("tensors refuse oversized and mistyped access", "[ir]") {
  CHECK_THROWS_AS(Tensor(DType::F32, Shape{int64_t{1} << 40}), Error);
  Tensor t = Tensor::fromVector<float>(Shape{2}, {1.f, 2.f});
  CHECK_THROWS_AS(t.data<int64_t>(), Error);
  CHECK(reinterpret_cast<uintptr_t>(t.rawData()) % 64 == 0);
  Tensor copy = t.clone();
  copy.data<float>()[0] = 7.f;
  CHECK(t.data<float>()[0] == 1.f);
  CHECK_THROWS_AS(t.reshaped(Shape{3}), Error);
  CHECK(Tensor::fromVector<int32_t>(Shape{2}, {4, -1}).toInts() == std::vector<int64_t>{4, -1});
}

TEST_CASE("normalizeAxis accepts negative axes and rejects out of range", "[ir]") {
  CHECK(normalizeAxis(-1, 4) == 3);
  CHECK(normalizeAxis(0, 1) == 0);
  CHECK_THROWS_AS(normalizeAxis(4, 4), Error);
  CHECK_THROWS_AS(normalizeAxis(-5, 4), Error);
}

TEST_CASE("attribute getters check kinds", "[ir]") {
  Attributes a;
  a.set("alpha", 0.5f);
  a.set("pads", std::vector<int64_t>{1, 1});
  CHECK(a.getFloat("alpha") == 0.5f);
  CHECK(a.getInts("pads").size() == 2);
  CHECK_THROWS_WITH(a.getInt("alpha"), Catch::Contains("expected int"));
  CHECK_THROWS_WITH(a.getInt("group"), Catch::Contains("missing attribute 'group'"));
}
