#!/usr/bin/python3
"""Writes the ONNX models of the frontend tests into the folder given as
argv[1]: one small model per conversion rule, plus data files (inputs and
numpy-computed expected outputs as TensorProto) where a test checks values."""
import os
import sys

import numpy as np

# numpy 1.24 dropped these aliases; onnx 1.12 still uses them.
np.float = float
np.int = int
np.bool = bool
np.object = object

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
RNG = np.random.default_rng(7)
F = TensorProto.FLOAT


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def vinfo(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def save(name, nodes, inputs, outputs, inits=(), opset=13, functions=(), extra_opsets=(), check=True, ir_version=8):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = ir_version
    # Outputs declared without a shape get the one ONNX infers (the checker
    # wants shapes on the main graph's outputs).
    inferred = onnx.shape_inference.infer_shapes(model)
    for out, typed in zip(model.graph.output, inferred.graph.output):
        if not out.type.tensor_type.HasField("shape"):
            out.type.CopyFrom(typed.type)
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name + ".onnx"))


def save_tensor(name, array):
    with open(os.path.join(OUT, name + ".pb"), "wb") as f:
        f.write(numpy_helper.from_array(np.asarray(array, dtype=np.float32)).SerializeToString())


def single(name, op, attrs=None, inits=(), shape=("N", 4), out_shape=None, extra_inputs=(), opset=13, n_outputs=1,
           out_elem=F):
    """One node on input X (plus initializers/extra inputs), output Y."""
    node = helper.make_node(op, ["X"] + [i.name for i in inits] + list(extra_inputs),
                            ["Y"] + [f"Y{i}" for i in range(1, n_outputs)], name="n0", **(attrs or {}))
    save(name, [node], [vinfo("X", list(shape))], [vinfo("Y", out_shape, out_elem)], inits, opset)


# --- activations and elementwise ---
for op in ["Relu", "Sigmoid", "Tanh", "Softplus", "Identity"]:
    single("op_" + op, op)
single("op_HardSwish", "HardSwish", opset=14)
single("op_LeakyRelu", "LeakyRelu", {"alpha": 0.25})
single("op_Elu", "Elu", {"alpha": 0.5})
single("op_Selu", "Selu", {"alpha": 1.5, "gamma": 1.25})
single("op_HardSigmoid", "HardSigmoid", {"alpha": 0.3, "beta": 0.4})
single("op_PRelu", "PRelu", inits=[init("slope", np.full([4], 0.1, np.float32))])
single("op_Clip", "Clip", inits=[init("lo", np.float32(-1)), init("hi", np.float32(2))])
# Clip with only max: min omitted as "".
save("op_Clip_max_only", [helper.make_node("Clip", ["X", "", "hi"], ["Y"], name="n0")],
     [vinfo("X", ["N", 4])], [vinfo("Y", None)], [init("hi", np.float32(6))])
for op in ["Add", "Sub", "Mul", "Div"]:
    single("op_" + op, op, inits=[init("B", np.arange(4, dtype=np.float32) + 1)])
for op in ["Sum", "Max", "Min", "Mean"]:
    single("op_" + op, op, inits=[init("B", np.ones([4], np.float32)), init("C", np.ones([1, 4], np.float32))])

# --- convolution and pooling ---
for pad in ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"]:
    attrs = {"strides": [2, 2], "auto_pad": pad}
    if pad == "NOTSET":
        attrs["pads"] = [1, 0, 1, 0]
    single("conv_" + pad.lower(), "Conv", attrs, [init("W", RNG.standard_normal([4, 3, 3, 3]).astype(np.float32))],
           shape=["N", 3, 8, 8])
single("conv_group", "Conv", {"group": 2, "kernel_shape": [3, 3], "dilations": [2, 2]},
       [init("W", RNG.standard_normal([6, 2, 3, 3]).astype(np.float32)), init("B", np.ones([6], np.float32))],
       shape=["N", 4, 9, 9])
# ConvTranspose on 4x4, 3x3 kernel, stride 2: natural output 9x9.
for name, size, attrs in [("convtranspose_same_upper", 8, {"auto_pad": "SAME_UPPER"}),
                          ("convtranspose_same_lower", 8, {"auto_pad": "SAME_LOWER"}),
                          ("convtranspose_output_shape", 7, {"output_shape": [7, 7]}),
                          ("convtranspose_output_shape_all_dims", 10, {"output_shape": [1, 6, 10, 10], "group": 2})]:
    single(name, "ConvTranspose", {"strides": [2, 2], **attrs},
           [init("W", np.full([4, 3 if "group" in attrs else 6, 3, 3], 0.5, np.float32))], shape=["N", 4, 4, 4],
           out_shape=["N", 6, size, size])
single("op_BatchNormalization", "BatchNormalization", {"epsilon": 1e-3},
       [init(n, np.full([3], v, np.float32)) for n, v in [("s", 2), ("b", 1), ("m", 0.5), ("v", 4)]],
       shape=["N", 3, 4, 4])
single("op_MaxPool", "MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER",
                                 "storage_order": 1}, shape=["N", 3, 8, 8], n_outputs=2)
single("op_AveragePool", "AveragePool", {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0], "count_include_pad": 1},
       shape=["N", 3, 8, 8])
single("op_GlobalAveragePool", "GlobalAveragePool", shape=["N", 3, 8, 8])
single("op_GlobalMaxPool", "GlobalMaxPool", shape=["N", 3, 8, 8])

# --- linear ---
single("op_Gemm", "Gemm", {"alpha": 0.5, "transB": 1},
       [init("W", np.ones([5, 4], np.float32)), init("C", np.ones([5], np.float32))])
single("op_MatMul", "MatMul", inits=[init("W", np.ones([4, 5], np.float32))])

# --- shape ops ---
single("op_Flatten", "Flatten", {"axis": 1}, shape=["N", 3, 2, 2])
single("op_Reshape", "Reshape", inits=[init("shape", np.array([0, 2, -1], np.int64))], shape=["N", 3, 2, 2])
single("op_Transpose", "Transpose", shape=[2, 3, 4])
single("op_Squeeze_noaxes", "Squeeze", shape=["N", 1, 4, 1], out_shape=["N", 4])
single("op_Squeeze_opset11", "Squeeze", {"axes": [1]}, shape=["N", 1, 4], opset=11)
single("op_Unsqueeze", "Unsqueeze", inits=[init("axes", np.array([1, -1], np.int64))])
single("op_Concat", "Concat", {"axis": 1}, inits=[init("B", np.ones([1, 2], np.float32))], shape=[1, 4])
single("op_Pad", "Pad", {"mode": "reflect"}, [init("pads", np.array([0, 1, 0, 2], np.int64))])
save("op_Pad_value", [helper.make_node("Pad", ["X", "pads", "v"], ["Y"], name="n0")], [vinfo("X", ["N", 4])],
     [vinfo("Y", None)], [init("pads", np.array([0, 1, 0, 2], np.int64)), init("v", np.float32(3))])
single("op_Dropout", "Dropout", n_outputs=1)
single("op_ReduceMean", "ReduceMean", {"axes": [2, 3], "keepdims": 0}, shape=["N", 3, 4, 4])
single("op_ReduceSum_axes_input", "ReduceSum", {"keepdims": 0}, [init("axes", np.array([-1], np.int64))],
       shape=["N", 3, 4])
single("op_ReduceSum_noop", "ReduceSum", {"noop_with_empty_axes": 1}, shape=["N", 3, 4])
single("op_ReduceSum_opset11", "ReduceSum", {"axes": [1]}, shape=["N", 3, 4], opset=11)
single("op_Split_equal", "Split", {"axis": 1}, shape=["N", 6], n_outputs=3)
single("op_Split_opset11", "Split", {"axis": -1, "split": [1, 3]}, shape=["N", 4], opset=11, n_outputs=2)
single("op_Tile", "Tile", inits=[init("repeats", np.array([1, 2], np.int64))])
# Expand by the shape of the (batched) input: the batch in the shape operand.
save("op_Expand_batch", [
    helper.make_node("ReduceMean", ["X"], ["r"], name="mean", axes=[1]),
    helper.make_node("Shape", ["X"], ["s"], name="shape"),
    helper.make_node("Expand", ["r", "s"], ["Y"], name="n0")],
    [vinfo("X", ["N", 3, 4])], [vinfo("Y", None)])
single("op_Cast", "Cast", {"to": TensorProto.INT64}, out_elem=TensorProto.INT64)
single("op_Gather", "Gather", {"axis": 1}, [init("idx", np.array([0, 2], np.int64))], shape=["N", 5])
single("op_Slice", "Slice", inits=[init(n, np.array([v], np.int64)) for n, v in
                                   [("starts", 1), ("ends", 5), ("axes", 1), ("steps", 2)]], shape=["N", 6])
single("op_LogSoftmax", "LogSoftmax", shape=["N", 3, 4])
save("op_Constant_ConstantOfShape", [
    helper.make_node("Constant", [], ["c"], name="c0", value_floats=[1.0, 2.0, 3.0, 4.0]),
    helper.make_node("Constant", [], ["s"], name="c1", value_ints=[1, 4]),
    helper.make_node("ConstantOfShape", ["s"], ["z"], name="cos",
                     value=helper.make_tensor("v", F, [1], [1.5])),
    helper.make_node("Add", ["X", "c"], ["t"], name="add"),
    helper.make_node("Add", ["t", "z"], ["Y"], name="add2")],
    [vinfo("X", ["N", 4])], [vinfo("Y", None)])

# Softmax before opset 13: coerced to 2-D at `axis`.
x = RNG.standard_normal([2, 3, 4]).astype(np.float32)
save_tensor("softmax11_input", x)
flat = x.reshape(2, 12)
e = np.exp(flat - flat.max(axis=1, keepdims=True))
save_tensor("softmax11_expected", (e / e.sum(axis=1, keepdims=True)).reshape(2, 3, 4))
single("softmax11_axis1", "Softmax", {"axis": 1}, shape=["N", 3, 4], opset=11)
single("softmax11_last", "Softmax", {"axis": 2}, shape=["N", 3, 4], opset=11)

# --- shape folding ---
def view_batch(name, arithmetic):
    """torch's x.view(x.size(0), -1); `arithmetic` adds a Mul on the batch."""
    nodes = [helper.make_node("Shape", ["X"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "zero"], ["n"], name="gather", axis=0)]
    if arithmetic:
        nodes.append(helper.make_node("Mul", ["n", "two"], ["n2"], name="double"))
    nodes += [helper.make_node("Unsqueeze", ["n2" if arithmetic else "n", "axes"], ["n1"], name="unsqueeze"),
              helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="concat", axis=0),
              helper.make_node("Reshape", ["X", "newshape"], ["Y"], name="view")]
    inits = [init("zero", np.int64(0)), init("two", np.int64(2)), init("axes", np.array([0], np.int64)),
             init("minus1", np.array([-1], np.int64))]
    save(name, nodes, [vinfo("X", ["N", 3, 4, 4])], [vinfo("Y", ["M", "K"])], inits)


view_batch("fold_view_batch", False)
view_batch("fold_batch_arithmetic", True)
save("fold_static_shape", [
    helper.make_node("Shape", ["X"], ["shape"], name="shape"),
    helper.make_node("Slice", ["shape", "s0", "s2"], ["head"], name="head"),
    helper.make_node("Cast", ["head"], ["head32"], name="to32", to=TensorProto.INT32),
    helper.make_node("Cast", ["head32"], ["head64"], name="to64", to=TensorProto.INT64),
    helper.make_node("Concat", ["head64", "minus1"], ["newshape"], name="concat", axis=0),
    helper.make_node("Reshape", ["X", "newshape"], ["Y"], name="reshape")],
    [vinfo("X", [2, 3, 4, 4])], [vinfo("Y", [2, 3, 16])],
    [init("s0", np.array([0], np.int64)), init("s2", np.array([2], np.int64)), init("minus1", np.array([-1], np.int64))])

# --- functions ---
leaky = helper.make_node("LeakyRelu", ["h"], ["y"], name="act")
leaky.attribute.append(onnx.AttributeProto(name="alpha", ref_attr_name="slope", type=onnx.AttributeProto.FLOAT))
block = helper.make_function("custom", "Block", ["x", "w"], ["y"],
                             [helper.make_node("Conv", ["x", "w"], ["h"], name="conv", pads=[1, 1, 1, 1]), leaky],
                             [helper.make_opsetid("", 13)], ["slope"])
save("function_inline", [
    helper.make_node("Block", ["X", "W"], ["T"], name="b1", domain="custom", slope=0.3),
    helper.make_node("Block", ["T", "W"], ["Y"], name="b2", domain="custom")],
    [vinfo("X", ["N", 2, 5, 5])], [vinfo("Y", None)], [init("W", RNG.standard_normal([2, 2, 3, 3]).astype(np.float32))],
    functions=[block], extra_opsets=[("custom", 1)])


def separable(domain, fname, name):
    """Keras SeparableConv2D(3 -> 4, 3x3, depth_multiplier 2, stride 2, same)."""
    def ref(attr, name, kind):
        a = onnx.AttributeProto(name=name, ref_attr_name=attr, type=kind)
        return a
    depthwise = helper.make_node("Conv", ["x", "wd"], ["d"], name="depthwise", group=3)
    for a in [ref("strides", "strides", onnx.AttributeProto.INTS), ref("auto_pad", "auto_pad", onnx.AttributeProto.STRING),
              ref("dilations", "dilations", onnx.AttributeProto.INTS)]:
        depthwise.attribute.append(a)
    pointwise = helper.make_node("Conv", ["d", "wp", "b"], ["y"], name="pointwise")
    fn = helper.make_function(domain, fname, ["x", "wd", "wp", "b"], ["y"], [depthwise, pointwise],
                              [helper.make_opsetid("", 13)], ["strides", "auto_pad", "dilations", "depth_multiplier"])
    call = helper.make_node(fname, ["X", "WD", "WP", "B"], ["Y"], name="sep", domain=domain, strides=[2, 2],
                            auto_pad="SAME_UPPER", dilations=[1, 1], depth_multiplier=2)
    inits = [init("WD", RNG_SEP.standard_normal([6, 1, 3, 3]).astype(np.float32)),
             init("WP", RNG_SEP.standard_normal([4, 6, 1, 1]).astype(np.float32)),
             init("B", RNG_SEP.standard_normal([4]).astype(np.float32))]
    save(name, [call], [vinfo("X", ["N", 3, 9, 9])], [vinfo("Y", None)], inits, functions=[fn],
         extra_opsets=[(domain, 1)])


RNG_SEP = np.random.default_rng(11)
separable("ai.kiln.keras", "SeparableConv2D", "separable_keras")
RNG_SEP = np.random.default_rng(11)
separable("custom", "SepConvInlined", "separable_inlined")

# --- external data (valid): weights in a file next to the model ---
os.makedirs(os.path.join(OUT, "external"), exist_ok=True)
w = np.arange(12, dtype=np.float32).reshape(3, 4)
with open(os.path.join(OUT, "external", "weights.bin"), "wb") as f:
    f.write(b"\0" * 8 + w.tobytes())
ext = onnx.TensorProto(name="W", data_type=F, dims=[3, 4], data_location=onnx.TensorProto.EXTERNAL)
for k, v in [("location", "weights.bin"), ("offset", "8"), ("length", "48")]:
    ext.external_data.add(key=k, value=v)
graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")], "ext",
                          [vinfo("X", ["N", 3])], [vinfo("Y", ["N", 4])], [ext])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, os.path.join(OUT, "external", "model.onnx"))
# The same at opset 9: the converter reads no external data, the importer does.
model.opset_import[0].version = 9
model.ir_version = 4
onnx.save(model, os.path.join(OUT, "external", "model_opset9.onnx"))

# --- opsets below 11, upgraded by ONNX's version converter ---
def old_save(name, nodes, inputs, outputs, inits, opset, ir_version, check=True):
    """IR 3 models list their initializers among the graph inputs too."""
    if ir_version == 3:
        inputs = inputs + [vinfo(t.name, list(t.dims), t.data_type) for t in inits]
    save(name, nodes, inputs, outputs, inits, opset, check=check, ir_version=ir_version)


RNG_OLD = np.random.default_rng(13)
CNN_W = {"W": RNG_OLD.standard_normal([4, 3, 3, 3]).astype(np.float32),
         "B": RNG_OLD.standard_normal([4]).astype(np.float32),
         "scale": RNG_OLD.uniform(0.5, 2, [4]).astype(np.float32),
         "shift": RNG_OLD.standard_normal([4]).astype(np.float32),
         "mean": RNG_OLD.standard_normal([4]).astype(np.float32),
         "var": RNG_OLD.uniform(0.5, 2, [4]).astype(np.float32),
         "FC": RNG_OLD.standard_normal([5, 36]).astype(np.float32),
         "FCB": RNG_OLD.standard_normal([5]).astype(np.float32)}


def cnn_inits(*names):
    return [init(n, CNN_W[n]) for n in names]


def cnn(name, opset, ir_version, bn_attrs=None):
    """Conv(3x3, pad 1) -> BatchNormalization -> Relu -> MaxPool(2) -> Flatten -> Gemm -> Softmax."""
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"], name="bn",
                              epsilon=1e-3, **(bn_attrs or {})),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "FC", "FCB"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["Y"], name="softmax", axis=1)]
    old_save(name, nodes, [vinfo("X", ["N", 3, 6, 6])], [vinfo("Y", ["N", 5])],
             cnn_inits("W", "B", "scale", "shift", "mean", "var", "FC", "FCB"), opset, ir_version)


cnn("cnn_opset13", 13, 8)
cnn("cnn_opset9", 9, 4)
# BatchNormalization's `spatial` (opsets 7-8; dropped at 9).
cnn("cnn_opset8_spatial", 8, 3, {"spatial": 1})


def legacy(name, opset):
    """Opset 6 forms (broadcast attributes, is_test, Clip's and Pad's
    attributes) or their opset-13 equivalents: Conv -> BatchNormalization ->
    Clip(0, 6) -> Pad -> Dropout -> AveragePool(3, stride 2) -> Flatten -> Gemm
    -> Mul(by class) -> Softmax. The batch is static: the converter's
    broadcasting checks want every dim."""
    old = opset < 11
    clip = helper.make_node("Clip", ["bn"], ["clip"], name="clip", min=0.0, max=6.0) if old \
        else helper.make_node("Clip", ["bn", "lo", "hi"], ["clip"], name="clip")
    pads = [0, 0, 1, 1, 0, 0, 1, 1]
    pad = helper.make_node("Pad", ["clip"], ["pad"], name="pad", pads=pads, value=0.0) if old \
        else helper.make_node("Pad", ["clip", "pads"], ["pad"], name="pad")
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"], name="bn",
                              epsilon=1e-3, **({"is_test": 1} if old else {})),
             clip, pad,
             helper.make_node("Dropout", ["pad"], ["d"], name="dropout", **({"is_test": 1, "ratio": 0.25} if old else {})),
             helper.make_node("AveragePool", ["d"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "FC", "FCB"], ["logits"], name="fc", transB=1,
                              **({"broadcast": 1} if old else {})),
             helper.make_node("Mul", ["logits", "T"], ["scaled"], name="temperature",
                              **({"broadcast": 1, "axis": 1} if old else {})),
             helper.make_node("Softmax", ["scaled"], ["Y"], name="softmax", axis=1)]
    inits = cnn_inits("W", "B", "scale", "shift", "mean", "var", "FC", "FCB") + \
        [init("T", np.linspace(0.5, 1.5, 5, dtype=np.float32))]
    if not old:
        inits += [init("lo", np.float32(0)), init("hi", np.float32(6)), init("pads", np.array(pads, np.int64))]
    old_save(name, nodes, [vinfo("X", [1, 3, 6, 6])], [vinfo("Y", [1, 5])], inits, opset, 3 if old else 8)


legacy("legacy_opset6", 6)
legacy("legacy_opset13", 13)

# A constant Pad without `value`, as torch.onnx writes it before opset 11.
def pad(name, opset):
    old = opset < 11
    pads = [0, 0, 1, 2, 0, 0, 2, 1]
    save(name, [helper.make_node("Conv", ["X", "W"], ["c"], name="conv", kernel_shape=[3, 3]),
                helper.make_node("Pad", ["c"] if old else ["c", "pads"], ["Y"], name="pad", **({"pads": pads} if old else {}))],
         [vinfo("X", ["N", 3, 5, 5])], [vinfo("Y", ["N", 4, 6, 6])],
         [init("W", CNN_W["W"])] + ([] if old else [init("pads", np.array(pads, np.int64))]), opset,
         ir_version=5 if old else 8)


pad("pad_opset10", 10)
pad("pad_opset13", 13)

# Upsample (opsets 7 and 9) and Resize-10 sample output o at input o / scale
# (asymmetric); nearest takes the index below it when upsampling, above it
# when downsampling. Expected outputs written out per axis in numpy.
def legacy_resized(x, scales, mode):
    for axis, scale in enumerate(scales):
        size = int(np.floor(x.shape[axis] * np.float32(scale)))
        src = np.arange(size) / np.float64(np.float32(scale))
        last = x.shape[axis] - 1
        if mode == "nearest":
            index = np.ceil(src) if scale < 1 else np.floor(src)
            x = np.take(x, np.minimum(index.astype(np.int64), last), axis=axis)
        else:
            lo = np.floor(src)
            t = (src - lo).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
            lo = lo.astype(np.int64)
            x = np.take(x, np.minimum(lo, last), axis=axis) * (1 - t) + np.take(x, np.minimum(lo + 1, last), axis=axis) * t
    return x.astype(np.float32)


x = RNG_OLD.standard_normal([1, 2, 3, 4]).astype(np.float32)
save_tensor("legacy_resize_input", x)
for name, op, opset, mode, scales in [("upsample7_nearest", "Upsample", 7, "nearest", [1, 1, 2, 2.5]),
                                      ("upsample9_linear", "Upsample", 9, "linear", [1, 1, 2, 1.5]),
                                      ("resize10_nearest_down", "Resize", 10, "nearest", [1, 1, 0.7, 0.6]),
                                      ("resize10_linear", "Resize", 10, "linear", [1, 1, 1.5, 0.6])]:
    y = legacy_resized(x, scales, mode)
    save_tensor(name + "_expected", y)
    scales_init = [init("scales", np.array(scales, np.float32))] if opset > 7 else []
    attrs = {"mode": mode, **({"scales": scales} if opset == 7 else {})}
    save(name, [helper.make_node(op, ["X"] + [t.name for t in scales_init], ["Y"], name="resize", **attrs)],
         [vinfo("X", list(x.shape))], [vinfo("Y", list(y.shape))], scales_init, opset, ir_version=5)
# One nearest rounding cannot scale one axis up (floor) and another down (ceil).
save("resize10_nearest_mixed", [helper.make_node("Resize", ["X", "scales"], ["Y"], name="resize", mode="nearest")],
     [vinfo("X", [1, 2, 3, 4])], [vinfo("Y", [1, 2, 6, 2])], [init("scales", np.array([1, 1, 2, 0.5], np.float32))],
     10, ir_version=5)

# What the converter cannot upgrade: BatchNormalization over every activation
# (spatial=0) has no opset-9 form. The converter's message names no op; when
# the node is unnamed, its label must be the one the file gives it.
old_save("opset8_bn_spatial0", [
    helper.make_node("Conv", ["X", "W"], ["c"], name="conv", kernel_shape=[3, 3]),
    helper.make_node("BatchNormalization", ["c", "s", "s", "s", "s"], ["bn"], name="bn", spatial=0),
    helper.make_node("Relu", ["bn"], ["Y"], name="relu")],
    [vinfo("X", ["N", 3, 5, 5])], [vinfo("Y", ["N", 4, 3, 3])],
    [init("W", CNN_W["W"]), init("s", np.ones([4, 3, 3], np.float32))], 8, 3)
# A per-channel bias the opset-6 way (broadcast along axis 1), which the
# converter would line up with axis 0.
old_save("opset6_bias_axis1", [
    helper.make_node("Conv", ["X", "W"], ["c"], name="conv", kernel_shape=[3, 3]),
    helper.make_node("Add", ["c", "B"], ["Y"], name="bias", broadcast=1, axis=1)],
    [vinfo("X", [1, 3, 5, 5])], [vinfo("Y", [1, 4, 3, 3])], [init("W", CNN_W["W"]), init("B", CNN_W["B"])], 6, 3)
old_save("opset7_unnamed_bn_spatial0", [
    helper.make_node("Conv", ["X", "W"], ["c"], name="conv", kernel_shape=[3, 3]),
    helper.make_node("Relu", ["c"], ["r"]),
    helper.make_node("BatchNormalization", ["r", "s", "s", "s", "s"], ["bn"], spatial=0),
    helper.make_node("Relu", ["bn"], ["Y"], name="relu")],
    [vinfo("X", ["N", 3, 5, 5])], [vinfo("Y", ["N", 4, 3, 3])],
    [init("W", CNN_W["W"]), init("s", np.ones([4, 3, 3], np.float32))], 7, 3)
# Unsupported ops are reported as the file has them, not converted (Upsample
# would become Resize; kiln's Upsample has no cubic mode); calls of
# model-local functions block the conversion.
old_save("opset9_upsample", [
    helper.make_node("Upsample", ["X", "scales"], ["u"], name="up", mode="cubic"),
    helper.make_node("Relu", ["u"], ["Y"], name="relu")],
    [vinfo("X", ["N", 3, 2, 2])], [vinfo("Y", ["N", 3, 4, 4])], [init("scales", np.array([1, 1, 2, 2], np.float32))],
    9, 4)
relu_fn = helper.make_function("custom", "Act", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"], name="r")],
                               [helper.make_opsetid("", 10)], [])
save("opset10_function", [helper.make_node("Act", ["X"], ["Y"], name="act", domain="custom")],
     [vinfo("X", ["N", 4])], [vinfo("Y", ["N", 4])], opset=10, functions=[relu_fn], extra_opsets=[("custom", 1)])

# --- unsupported: one report listing every problem ---
save("unsupported_many", [
    helper.make_node("Det", ["X"], ["a"], name="det"),
    helper.make_node("Multinomial", ["a"], ["b"]),
    helper.make_node("BatchNormalization", ["X4", "s", "s", "s", "s"], ["c"], name="bn_train", training_mode=1),
    helper.make_node("MaxPool", ["X4"], ["d", "idx"], name="pool_idx", kernel_shape=[2, 2]),
    helper.make_node("Relu", ["b"], ["Y"], name="relu")],
    [vinfo("X", ["N", 4]), vinfo("X4", ["N", 3, 4, 4])], [vinfo("Y", None), vinfo("idx", None, TensorProto.INT64), vinfo("c", None)],
    [init("s", np.ones([3], np.float32))], opset=15, check=False)
# Pow with an integer exponent (cast to f32) and with an integer base (unsupported).
save("pow_int_exponent", [helper.make_node("Pow", ["X", "E"], ["Y"], name="pow")],
     [vinfo("X", ["N", 4]), vinfo("E", ["N", 4], TensorProto.INT64)], [vinfo("Y", None)], opset=15)
save("pow_int_base", [helper.make_node("Pow", ["X", "E"], ["Y"], name="pow")],
     [vinfo("X", ["N", 4], TensorProto.INT64), vinfo("E", ["N", 4])], [vinfo("Y", None, TensorProto.INT64)], opset=15)
save("layernorm_stash_double", [helper.make_node("LayerNormalization", ["X", "s"], ["Y"], name="ln", stash_type=11)],
     [vinfo("X", ["N", 4])], [vinfo("Y", None)], [init("s", np.ones([4], np.float32))], opset=17)
save("unsupported_dropout_training", [
    helper.make_node("Dropout", ["X", "", "t"], ["Y"], name="drop")],
    [vinfo("X", ["N", 4])], [vinfo("Y", None)], [init("t", np.array(True))])
# torchvision 0.14's Swin: F.dropout(attn, p=0.0) in training mode.
save("dropout_training_zero_ratio", [
    helper.make_node("Dropout", ["X", "r", "t"], ["Y"], name="drop")],
    [vinfo("X", ["N", 4])], [vinfo("Y", None)], [init("r", np.array(0.0, np.float32)), init("t", np.array(True))])
# Einsum, lowered by the importer: attention's batched product (values
# checked against numpy), an implicit output, and operands kiln cannot take
# listed with another node conversion finds unsupported, in one report.
EIN_Q = RNG.standard_normal((2, 2, 3, 4)).astype(np.float32)
EIN_K = RNG.standard_normal((2, 2, 5, 4)).astype(np.float32)
save("einsum_attention", [helper.make_node("Einsum", ["Q", "K"], ["Y"], name="ein", equation="bhid, bhjd -> bhij")],
     [vinfo("Q", [2, 2, 3, 4])], [vinfo("Y", None)], [init("K", EIN_K)])
save_tensor("einsum_attention_input", EIN_Q)
save_tensor("einsum_attention_expected", np.einsum("bhid,bhjd->bhij", EIN_Q, EIN_K))
save("einsum_implicit", [helper.make_node("Einsum", ["A", "B"], ["Y"], name="ein", equation="ij,jk")],
     [vinfo("A", [3, 4])], [vinfo("Y", None)], [init("B", np.ones([4, 5], np.float32))])
save("unsupported_einsum_int", [
    helper.make_node("Einsum", ["A", "B"], ["Y"], name="ein_int", equation="ij,jk->ik"),
    helper.make_node("Dropout", ["X", "", "t"], ["D"], name="drop")],
    [vinfo("A", [3, 4], TensorProto.INT64), vinfo("X", [3, 3])],
    [vinfo("Y", None, TensorProto.INT64), vinfo("D", None)], [init("B", np.ones([4, 5], np.int64)), init("t", np.array(True))])
# Range: constant operands fix the size; a float range longer than an
# operand stays a node (constant-fold's), an integer one folds at import.
save("range_f32", [helper.make_node("Range", ["s", "l", "d"], ["R"], name="range"),
                   helper.make_node("Add", ["X", "R"], ["Y"], name="add")],
     [vinfo("X", ["N", 20])], [vinfo("Y", None)],
     [init("s", np.array(0.5, np.float32)), init("l", np.array(-9.25, np.float32)), init("d", np.array(-0.5, np.float32))])
save("range_i64", [helper.make_node("Range", ["s", "l", "d"], ["R"], name="range"),
                   helper.make_node("Cast", ["R"], ["Rf"], name="cast", to=TensorProto.FLOAT),
                   helper.make_node("Add", ["X", "Rf"], ["Y"], name="add")],
     [vinfo("X", ["N", 3])], [vinfo("Y", None)],
     [init("s", np.array(10, np.int64)), init("l", np.array(2, np.int64)), init("d", np.array(-3, np.int64))])
save("symbolic_dim", [helper.make_node("Relu", ["X"], ["Y"], name="r")], [vinfo("X", ["N", "C"])], [vinfo("Y", None)])
# paddle2onnx's spelling of dynamic dims: dim_value -1.
save("minus_one_dims", [helper.make_node("Relu", ["X"], ["Y"], name="r")], [vinfo("X", [-1, 3, -1, -1])],
     [vinfo("Y", [-1, 3, -1, -1])])
# Resize needs constant scales/sizes, and a symbolic batch at scale 1; the
# cubic Resize converts. Attribute values are checked before conversion.
save("unsupported_resize", [
    helper.make_node("Resize", ["X", "", "S"], ["a"], name="runtime_scales"),
    helper.make_node("Resize", ["X", "", "batch2"], ["b"], name="batch_scaled"),
    helper.make_node("Resize", ["X", "", "", "size_b1"], ["c"], name="batch_sized"),
    helper.make_node("Resize", ["X", "", "up2"], ["d"], name="cubic", mode="cubic")],
    [vinfo("X", ["N", 1, 2, 2]), vinfo("S", [4])],
    [vinfo("a", None), vinfo("b", None), vinfo("c", None), vinfo("d", None)],
    [init("batch2", np.array([2, 1, 2, 2], np.float32)), init("up2", np.array([1, 1, 2, 2], np.float32)),
     init("size_b1", np.array([1, 1, 4, 4], np.int64))], check=False)
single("unsupported_resize_rounding", "Resize", {"nearest_mode": "nearest_even"},
       inits=[init("roi", np.zeros([0], np.float32)), init("scales", np.array([1, 2], np.float32))])

# Nodes out of order: valid once sorted.
save("unsorted_nodes", [helper.make_node("Relu", ["T"], ["Y"], name="second"),
                        helper.make_node("Sigmoid", ["X"], ["T"], name="first")],
     [vinfo("X", ["N", 4])], [vinfo("Y", ["N", 4])], check=False)

save_tensor("tensor_file", np.arange(6, dtype=np.float32).reshape(2, 3))
