"""Writes the small ONNX models and .npy files the CLI tests use into OUT_DIR.

Expected outputs are computed here with plain numpy, independently of kiln:
  tiny_cnn.onnx  image f32[N,2,5,5] -> Conv(3x3, pad 1) -> Relu -> MaxPool(2)
                 -> Flatten ("features:0") -> Gemm -> Softmax ("head/probs")
  gather.onnx    data f32[N,4], idx i64[3] -> Gather(axis 1) ("picked")
  conv_bn_relu.onnx  image f32[N,3,6,6] -> Conv(3x3, pad 1) -> BatchNormalization
                 -> Relu ("features/relu:0") -> GlobalAveragePool -> Flatten
                 -> Gemm -> Softmax ("probs"); the optimizer's test model: BN
                 folds into the Conv and the Relu fuses into it, so both
                 outputs' producers change. No expected values: the tests
                 compare -O0 against -O2, and compiled code against -O0.
  any_size.onnx  image f32[N,3,H,W] -> Conv(3x3, pad 1) -> Relu
                 -> GlobalAveragePool -> Flatten ("pooled"); H and W are
                 symbolic, for `kiln compile --shape`.
  ens_*.onnx     small classifiers for the ensemble tests (ensemble_members).
  bench_conv.onnx  image f32[N,16,6,6] -> Conv(16, 3x3, pad 1, no bias)
                 ("features"): 82944 MACs per sample, for `kiln bench`;
                 bench_conv_fixed.onnx is the same exported with a fixed
                 batch of 2 (image f32[2,16,6,6]).
plus numpy-written .npy files (v2.0 header, Fortran order, bool, i32) for the
reader's compatibility tests. Also used as fuzzing seeds by run-fuzzer.sh.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save_model(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def conv2d_same_3x3(x, w, b):
    n, c, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), dtype=np.float64)
    for i in range(h):
        for j in range(wd):
            patch = padded[:, :, i:i + 3, j:j + 3]
            out[:, :, i, j] = np.einsum("nckl,mckl->nm", patch, w)
    return out + b[None, :, None, None]


def tiny_cnn(out_dir, rng):
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    fc_w = rng.standard_normal((4, 12)).astype(np.float32)
    fc_b = rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["features:0"], axis=1),
        helper.make_node("Gemm", ["features:0", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["head/probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 2, 5, 5])],
        [helper.make_tensor_value_info("head/probs", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("features:0", TensorProto.FLOAT, ["N", 12])],
        initializer=[numpy_helper.from_array(a, name) for a, name in
                     [(w, "w"), (b, "b"), (fc_w, "fc_w"), (fc_b, "fc_b")]])
    save_model(graph, os.path.join(out_dir, "tiny_cnn.onnx"))

    image = rng.uniform(-1, 1, (2, 2, 5, 5)).astype(np.float32)
    relu = np.maximum(conv2d_same_3x3(image.astype(np.float64), w, b), 0)
    pool = relu[:, :, :4, :4].reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5))
    features = pool.reshape(2, 12)
    logits = features @ fc_w.T + fc_b
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.save(os.path.join(out_dir, "tiny_cnn_image.npy"), image)
    np.save(os.path.join(out_dir, "tiny_cnn_expected_probs.npy"), probs.astype(np.float32))
    np.save(os.path.join(out_dir, "tiny_cnn_expected_features.npy"), features.astype(np.float32))


def gather(out_dir, rng):
    graph = helper.make_graph(
        [helper.make_node("Gather", ["data", "idx"], ["picked"], axis=1)], "gather",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("picked", TensorProto.FLOAT, ["N", 3])])
    save_model(graph, os.path.join(out_dir, "gather.onnx"))
    data = rng.standard_normal((3, 4)).astype(np.float32)
    idx = np.array([3, 0, -1], dtype=np.int64)
    np.save(os.path.join(out_dir, "gather_data.npy"), data)
    np.save(os.path.join(out_dir, "gather_idx.npy"), idx)
    np.save(os.path.join(out_dir, "gather_expected_picked.npy"), np.ascontiguousarray(data[:, idx]))


def conv_bn_relu(out_dir, rng):
    channels = 4
    params = {
        "w": rng.standard_normal((channels, 3, 3, 3)),
        "b": rng.standard_normal(channels),
        "gamma": rng.uniform(0.5, 1.5, channels),
        "beta": rng.standard_normal(channels),
        "mean": rng.standard_normal(channels),
        "var": rng.uniform(0.5, 2.0, channels),
        "fc_w": rng.standard_normal((5, channels)),
        "fc_b": rng.standard_normal(5),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["features/relu:0"]),
        helper.make_node("GlobalAveragePool", ["features/relu:0"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "conv_bn_relu",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("features/relu:0", TensorProto.FLOAT, ["N", channels, 6, 6])],
        initializer=[numpy_helper.from_array(a.astype(np.float32), name) for name, a in params.items()])
    save_model(graph, os.path.join(out_dir, "conv_bn_relu.onnx"))
    np.save(os.path.join(out_dir, "conv_bn_relu_image.npy"), rng.uniform(-1, 1, (3, 3, 6, 6)).astype(np.float32))


def any_size(out_dir, rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["pooled"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "any_size",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    save_model(graph, os.path.join(out_dir, "any_size.onnx"))


def ensemble_members(out_dir, rng):
    """Small classifiers for `kiln ensemble create` / `kiln compile --ensemble`:
    x f32[N,6] -> Gemm -> Softmax ("probs", 4 classes): ens_a, ens_b, ens_c;
    ens_logits_a, ens_logits_b end at the Gemm ("logits"); ens_five has 5
    classes and ens_wide takes f32[N,7], for the mismatch errors."""
    def member(name, classes=4, features=6, softmax=True):
        w = rng.standard_normal((classes, features)).astype(np.float32)
        b = rng.standard_normal(classes).astype(np.float32)
        out = "probs" if softmax else "logits"
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"], transB=1)]
        if softmax:
            nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        graph = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", classes])],
            initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
        save_model(graph, os.path.join(out_dir, name + ".onnx"))

    for name in ["ens_a", "ens_b", "ens_c"]:
        member(name)
    for name in ["ens_logits_a", "ens_logits_b"]:
        member(name, softmax=False)
    member("ens_five", classes=5)
    member("ens_wide", features=7)


def bench_conv(out_dir, rng):
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    for name, batch in [("bench_conv", "N"), ("bench_conv_fixed", 2)]:
        graph = helper.make_graph(
            [helper.make_node("Conv", ["image", "w"], ["features"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
            name,
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 16, 6, 6])],
            [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, 16, 6, 6])],
            initializer=[numpy_helper.from_array(w, "w")])
        save_model(graph, os.path.join(out_dir, name + ".onnx"))


def numpy_files(out_dir):
    counting = np.arange(6, dtype=np.float32).reshape(2, 3)
    with open(os.path.join(out_dir, "np_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, counting, version=(2, 0))
    np.save(os.path.join(out_dir, "np_fortran.npy"), np.asfortranarray(counting))
    np.save(os.path.join(out_dir, "np_bool.npy"), np.array([True, False, True]))
    np.save(os.path.join(out_dir, "np_i32.npy"), np.array([[-7, 8]], dtype=np.int32))
    np.save(os.path.join(out_dir, "np_f64.npy"), counting.astype(np.float64))


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240601)
    tiny_cnn(out_dir, rng)
    gather(out_dir, rng)
    conv_bn_relu(out_dir, rng)
    any_size(out_dir, rng)
    numpy_files(out_dir)
    ensemble_members(out_dir, rng)
    bench_conv(out_dir, rng)


if __name__ == "__main__":
    main()
