// TensorProto -> kiln::Tensor: element types, checked shapes, and the data
// fields (typed float_data/int64_data/int32_data or little-endian raw_data),
// whose size must match the dims exactly, checked before any allocation.
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
void copyTyped(const Field& field, Tensor& out) {
  switch (out.dtype()) {
    case DType::F32: std::copy(field.begin(), field.end(), out.data<float>()); break;
    case DType::I64: std::copy(field.begin(), field.end(), out.data<int64_t>()); break;
    case DType::I32: std::copy(field.begin(), field.end(), out.data<int32_t>()); break;
    case DType::Bool:
      std::transform(field.begin(), field.end(), out.data<bool>(), [](auto v) { return v != 0; });
      break;
  }
}

// How many values the typed field of `dtype` holds, and its name.
std::pair<int64_t, const char*> typedFieldSize(const ::onnx::TensorProto& t, DType dtype) {
  switch (dtype) {
    case DType::F32: return {t.float_data_size(), "float_data"};
    case DType::I64: return {t.int64_data_size(), "int64_data"};
    case DType::I32:
    case DType::Bool: break;
  }
  return {t.int32_data_size(), "int32_data"};
}

// Exporters write scalar operands (torch.clamp's bounds under a dynamic
// batch) as double constants that a Cast turns into float. kiln computes in
// float, so a single double value narrows to f32; larger double tensors stay
// unsupported rather than silently losing precision.
Tensor narrowDoubleScalar(const ::onnx::TensorProto& t, const std::string& what) {
  Shape shape;
  for (int64_t d : t.dims()) {
    if (d != 1) throw Error(what + " is a DOUBLE tensor; kiln accepts DOUBLE only for single values");
    shape.dims.push_back(d);
  }
  double value = 0;
  if (t.has_raw_data() && t.raw_data().size() == sizeof value)
    std::memcpy(&value, t.raw_data().data(), sizeof value);
  else if (!t.has_raw_data() && t.double_data_size() == 1)
    value = t.double_data(0);
  else
    throw Error(what + " does not hold exactly one DOUBLE value");
  return Tensor::fromVector<float>(shape, {static_cast<float>(value)});
}

}  // namespace

Tensor convertTensor(const ::onnx::TensorProto& t) {
  std::string what = "tensor '" + t.name() + "'";
  if (t.data_type() == ::onnx::TensorProto::DOUBLE && t.data_location() != ::onnx::TensorProto::EXTERNAL)
    return narrowDoubleScalar(t, what);
  DType dtype = dtypeFromOnnx(t.data_type(), what);
  Shape shape = tensorShape(t, dtype);
  if (t.data_location() == ::onnx::TensorProto::EXTERNAL)
    throw Error(what + " uses external data, which kiln reads for graph initializers only");
  if (t.has_segment()) throw Error(what + " is segmented, which kiln does not support");
  // The data must match the dims before anything is allocated: dims are
  // free to declare, so only the bytes present may size the allocation.
  int64_t elements = shape.numElements();
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    size_t need = static_cast<size_t>(elements) * dtypeSize(dtype);
    if (raw.size() != need)
      throw Error(what + " holds " + std::to_string(raw.size()) + " bytes of raw_data, its dims " + shape.str() +
                  " need " + std::to_string(need));
    Tensor out(dtype, shape);
    if (dtype == DType::Bool)  // any non-zero byte is true; normalize to 0/1
      std::transform(raw.begin(), raw.end(), out.data<bool>(), [](char c) { return c != 0; });
    else
      std::memcpy(out.rawData(), raw.data(), raw.size());
    return out;
  }
  auto [held, field] = typedFieldSize(t, dtype);
  if (held != elements)
    throw Error(what + " holds " + std::to_string(held) + " values in " + field + ", its dims " + shape.str() +
                " need " + std::to_string(elements));
  Tensor out(dtype, shape);
  switch (dtype) {
    case DType::F32: copyTyped(t.float_data(), out); break;
    case DType::I64: copyTyped(t.int64_data(), out); break;
    case DType::I32:
    case DType::Bool: copyTyped(t.int32_data(), out); break;
  }
  return out;
}

}  // namespace kiln::onnx_import
