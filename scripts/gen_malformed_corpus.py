#!/usr/bin/python3
"""Writes the malformed-model corpus into tests/malformed/ (committed): small
files the importer must reject with a clear kiln::Error, never a crash, and
EXPECTED.tsv listing `file<TAB>substring the error message must contain`.
Run it from anywhere; it rewrites the folder's generated files."""
import os

import numpy as np

# numpy 1.24 dropped these aliases; onnx 1.12 still uses them.
np.float = float
np.int = int
np.bool = bool
np.object = object

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "malformed")
F = TensorProto.FLOAT
expected = []


def write(name, data, substring):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    expected.append((name, substring))


def model_bytes(nodes, inits=(), x_shape=("N", 4), y_shape=("N", 4), opset=13, ir_version=8):
    graph = helper.make_graph(nodes, "malformed", [helper.make_tensor_value_info("X", F, list(x_shape))],
                              [helper.make_tensor_value_info("Y", F, list(y_shape))], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model.SerializeToString()


def weight(name, dims, raw=b"", location=None):
    """A float initializer with arbitrary dims and raw bytes (no checks)."""
    t = TensorProto(name=name, data_type=F, dims=list(dims))
    if location is None:
        t.raw_data = raw
    else:
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=location)
    return t


def matmul_with(w):
    return model_bytes([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")], [w])


os.makedirs(OUT, exist_ok=True)
relu = [helper.make_node("Relu", ["X"], ["Y"], name="relu")]
big = numpy_helper.from_array(np.ones([64, 4], np.float32), "W")
valid = model_bytes([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")], [big], y_shape=["N", 4])

# Not protobuf, or not all of it.
write("truncated.onnx", valid[: len(valid) // 2], "truncated or corrupt protobuf")
write("lfs_pointer.onnx", b"version https://git-lfs.github.com/spec/v1\n"
      b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1048576\n",
      "git-LFS pointer")
write("html_page.onnx", b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
      b"<body>Not Found</body></html>\n", "HTML page")

write("empty.onnx", b"", "the file is empty")
write("plain_text.onnx", b"ir_version: 8\ngraph { name: 'textproto, not binary' }\n", "a text file")

# Initializers whose dims and data disagree or cannot exist.
write("raw_data_size.onnx", matmul_with(weight("W", [4, 4], b"\0" * 60)), "bytes of raw_data")
write("negative_dim.onnx", matmul_with(weight("W", [4, -4], b"")), "negative dimension")
write("overflow_dims.onnx", matmul_with(weight("W", [1 << 32, 1 << 32, 1 << 32], b"\0" * 4)), "overflows 64 bits")
write("huge_shape.onnx", matmul_with(weight("W", [1 << 20, 1 << 20], b"\0" * 4)), "GiB tensor limit")

# Graph structure.
write("unknown_op.onnx", model_bytes([helper.make_node("Frobnicate", ["X"], ["Y"], name="frob")]),
      "unsupported op 'Frobnicate'")
write("cycle.onnx", model_bytes([helper.make_node("Relu", ["X", "B"], ["A"], name="a"),
                                 helper.make_node("Add", ["X", "A"], ["B"], name="b"),
                                 helper.make_node("Identity", ["B"], ["Y"], name="out")]), "cycle")
write("dangling_input.onnx", model_bytes([helper.make_node("Add", ["X", "nowhere"], ["Y"], name="add")]),
      "dangling input")
write("duplicate_output.onnx", model_bytes([helper.make_node("Relu", ["X"], ["Y"], name="first"),
                                            helper.make_node("Sigmoid", ["X"], ["Y"], name="second")]),
      "duplicate output name")

# Conv whose operands cannot fit together.
w6 = numpy_helper.from_array(np.ones([4, 2, 3, 3], np.float32), "W")
write("conv_group.onnx", model_bytes([helper.make_node("Conv", ["X", "W"], ["Y"], name="conv", group=4)], [w6],
                                     x_shape=["N", 6, 8, 8], y_shape=["N", 4, 6, 6]), "does not divide")
w3 = numpy_helper.from_array(np.ones([4, 3, 3], np.float32), "W")
write("conv_kernel_rank.onnx", model_bytes([helper.make_node("Conv", ["X", "W"], ["Y"], name="conv")], [w3],
                                           x_shape=["N", 3, 8, 8], y_shape=["N", 4, 6]), "kernel rank mismatch")

# Window attributes ONNX's shape inference divides by (a zero stride was a
# SIGFPE inside libonnx), and a kernel of higher rank than the input, whose
# extra dims ONNX's inference indexes past the input's (a SIGSEGV).
write("maxpool_zero_stride.onnx",
      model_bytes([helper.make_node("MaxPool", ["X"], ["Y"], name="pool", kernel_shape=[2, 2], strides=[0, 2])],
                  x_shape=["N", 3, 8, 8], y_shape=["N", 3, 4, 4]), "attribute 'strides' is [0, 2]")
write("conv_zero_dilation.onnx",
      model_bytes([helper.make_node("Conv", ["X", "W"], ["Y"], name="conv", dilations=[0, 1])],
                  [numpy_helper.from_array(np.ones([4, 3, 3, 3], np.float32), "W")],
                  x_shape=["N", 3, 8, 8], y_shape=["N", 4, 6, 6]), "attribute 'dilations' is [0, 1]")
write("conv_kernel_rank_high.onnx",
      model_bytes([helper.make_node("Conv", ["X", "W"], ["Y"], name="conv")],
                  [numpy_helper.from_array(np.ones([4, 3, 1, 1, 1, 1], np.float32), "W")],
                  x_shape=["N", 3, 8, 8], y_shape=["N", 4, 8, 8]), "kernel rank mismatch")

# Dims declaring ~1e9 elements over 216 bytes: refused before allocating 12 GB.
write("duplicate_initializer.onnx",
      model_bytes([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")],
                  [weight("W", [4, 4], b"\0" * 64), weight("W", [4, 4], b"\0" * 64)]),
      "initializer 'W' is defined twice")
write("huge_dims_tiny_data.onnx", matmul_with(weight("W", [1052736509, 3], b"\0" * 216)), "216 bytes of raw_data")

# A folded constant sized by a 16-byte shape operand: 2^27 int64 (1 GiB).
write("folded_constant_cap.onnx",
      model_bytes([helper.make_node("ConstantOfShape", ["S"], ["C"], name="fill",
                                    value=helper.make_tensor("v", TensorProto.INT64, [1], [7])),
                   helper.make_node("Cast", ["C"], ["Y"], name="cast", to=F)],
                  [numpy_helper.from_array(np.array([1 << 27], np.int64), "S")], y_shape=[1 << 27]),
      "MiB limit on folded constants")

# External data that must not be read.
write("ext_parent.onnx", matmul_with(weight("W", [4, 4], location="../x.bin")), "contains '..'")
write("ext_absolute.onnx", matmul_with(weight("W", [4, 4], location="/tmp/kiln_weights.bin")), "is absolute")
link = os.path.join(OUT, "ext_symlink.bin")
if os.path.lexists(link):
    os.remove(link)
os.symlink("../../CMakeLists.txt", link)
write("ext_symlink.onnx", matmul_with(weight("W", [4, 4], location="ext_symlink.bin")), "through a symlink")
with open(os.path.join(OUT, "ext_short.bin"), "wb") as f:
    f.write(b"\0" * 16)
write("ext_short.onnx", matmul_with(weight("W", [4, 4], location="ext_short.bin")), "too short")

# Versions kiln does not read, and an opset-8 form ONNX's version converter
# cannot upgrade (BatchNormalization over every activation).
write("opset18.onnx", model_bytes(relu, opset=18), "opset 18 of the default domain is not supported")
write("ir_version10.onnx", model_bytes(relu, ir_version=10), "IR version 10 is not supported")
write("opset8_bn_spatial0.onnx",
      model_bytes([helper.make_node("BatchNormalization", ["X", "s", "s", "s", "s"], ["Y"], name="bn", spatial=0)],
                  [numpy_helper.from_array(np.ones([4], np.float32), "s")], opset=8),
      "node 'bn' (BatchNormalization): ONNX's version converter cannot upgrade it")
# Found by the fuzzer: an opset-10 graph without nodes or outputs whose
# initializer the converter cannot take (no name, no type) once crashed the
# search for the node to blame.
no_nodes = helper.make_graph([], "no_nodes", [helper.make_tensor_value_info("X", F, ["N", 4])], [],
                             [TensorProto(name="", data_type=TensorProto.UNDEFINED, dims=[2, 3])])
no_nodes_model = helper.make_model(no_nodes, opset_imports=[helper.make_opsetid("", 10)])
no_nodes_model.ir_version = 3
write("opset10_no_nodes.onnx", no_nodes_model.SerializeToString(), "tensor '' has element type UNDEFINED")

# Found by the fuzzer: ONNX's shape inference, run for the converter, crashed
# on an input without a type; the checker now goes first on that path too.
untyped = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"], name="relu")], "untyped",
                            [helper.make_tensor_value_info("X", F, ["N", 4]), onnx.ValueInfoProto(name="Z")],
                            [helper.make_tensor_value_info("Y", F, ["N", 4])])
untyped_model = helper.make_model(untyped, opset_imports=[helper.make_opsetid("", 6)])
untyped_model.ir_version = 8
write("opset6_untyped_input.onnx", untyped_model.SerializeToString(),
      "the ONNX checker rejects the model: Field 'type' of 'value_info' is required but missing")

# Also found by the fuzzer: Gemm's shape inference before opset 7 indexes
# dims of A and B unchecked (a scalar A crashed it).
write("opset6_gemm_scalar.onnx",
      model_bytes([helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="fc")],
                  [numpy_helper.from_array(np.ones([4, 4], np.float32), "W"),
                   numpy_helper.from_array(np.ones([4], np.float32), "C")], x_shape=(), opset=6),
      "node 'fc' (Gemm): input 'X' has rank 0, expected a matrix (rank 2)")

with open(os.path.join(OUT, "EXPECTED.tsv"), "w") as f:
    f.write("# file<TAB>substring the import error must contain (written by scripts/gen_malformed_corpus.py)\n")
    for name, substring in expected:
        f.write(f"{name}\t{substring}\n")
