// TensorProto -> kiln::Tensor: element types, checked shapes, and the data
// fields (typed float_data/int64_data/int32_data or little-endian raw_data),
// whose size must match the dims exactly.
#include <algorithm>
#include <bit>

#include "frontends/onnx/importer_internal.h"

namespace kiln::onnx_import {

static_assert(std::endian::native == std::endian::little, "raw_data is little-endian; a byte swap would be needed");

bool isSupportedElemType(int32_t elemType) {
  using TP = ::onnx::TensorProto;
  return elemType == TP::FLOAT || elemType == TP::INT64 || elemType == TP::INT32 || elemType == TP::BOOL;
}

DType dtypeFromOnnx(int32_t elemType, const std::string& what) {
  using TP = ::onnx::TensorProto;
  switch (elemType) {
    case TP::FLOAT: return DType::F32;
    case TP::INT64: return DType::I64;
    case TP::INT32: return DType::I32;
    case TP::BOOL: return DType::Bool;
    default: break;
  }
  std::string name = TP::DataType_IsValid(elemType) ? TP::DataType_Name(static_cast<TP::DataType>(elemType))
                                                    : std::to_string(elemType);
  throw Error(what + " has element type " + name + "; kiln supports FLOAT, INT64, INT32 and BOOL");
}

Shape tensorShape(const ::onnx::TensorProto& t, DType dtype) {
  std::string what = "tensor '" + t.name() + "'";
  Shape shape;
  int64_t elements = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) throw Error(what + " has a negative dimension " + std::to_string(d));
    if (__builtin_mul_overflow(elements, d, &elements)) throw Error(what + ": the element count of its dims overflows 64 bits");
    shape.dims.push_back(d);
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<int64_t>(dtypeSize(dtype)), &bytes) || bytes > kMaxTensorBytes)
    throw Error(what + " of shape " + shape.str() + " is larger than the " + std::to_string(kMaxTensorBytes >> 30) +
                " GiB tensor limit");
  return shape;
}

namespace {

template <class Field>
void copyTyped(const Field& field, const char* fieldName, Tensor& out, const std::string& what) {
  if (static_cast<int64_t>(field.size()) != out.numElements())
    throw Error(what + " holds " + std::to_string(field.size()) + " values in " + fieldName + ", its dims " +
                out.shape().str() + " need " + std::to_string(out.numElements()));
  switch (out.dtype()) {
    case DType::F32: std::copy(field.begin(), field.end(), out.data<float>()); break;
    case DType::I64: std::copy(field.begin(), field.end(), out.data<int64_t>()); break;
    case DType::I32: std::copy(field.begin(), field.end(), out.data<int32_t>()); break;
    case DType::Bool:
      std::transform(field.begin(), field.end(), out.data<bool>(), [](auto v) { return v != 0; });
      break;
  }
}

}  // namespace

Tensor convertTensor(const ::onnx::TensorProto& t) {
  std::string what = "tensor '" + t.name() + "'";
  DType dtype = dtypeFromOnnx(t.data_type(), what);
  Shape shape = tensorShape(t, dtype);
  if (t.data_location() == ::onnx::TensorProto::EXTERNAL)
    throw Error(what + " uses external data, which kiln reads for graph initializers only");
  if (t.has_segment()) throw Error(what + " is segmented, which kiln does not support");
  Tensor out(dtype, shape);
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (raw.size() != out.byteSize())
      throw Error(what + " holds " + std::to_string(raw.size()) + " bytes of raw_data, its dims " + shape.str() +
                  " need " + std::to_string(out.byteSize()));
    if (dtype == DType::Bool)  // any non-zero byte is true; normalize to 0/1
      std::transform(raw.begin(), raw.end(), out.data<bool>(), [](char c) { return c != 0; });
    else
      std::memcpy(out.rawData(), raw.data(), raw.size());
    return out;
  }
  switch (dtype) {
    case DType::F32: copyTyped(t.float_data(), "float_data", out, what); break;
    case DType::I64: copyTyped(t.int64_data(), "int64_data", out, what); break;
    case DType::I32:
    case DType::Bool: copyTyped(t.int32_data(), "int32_data", out, what); break;
  }
  return out;
}

}  // namespace kiln::onnx_import
