#!/usr/bin/python3
"""Generates ONNX's node conformance suite (model.onnx + test_data_set_0/*.pb
per case) from the installed python3-onnx, for kiln_conformance to run.

Usage: gen_conformance.py OUTDIR

Only node tests are written (OUTDIR/<case>/...); the model-zoo ("real") cases
need downloads and the "simple"/"pytorch" ones are not per-op checks.
"""
import os
import shutil
import sys
import time

import numpy as np

# Debian's onnx 1.12 predates numpy 1.24, which removed these aliases; its
# test-case modules still use them at import time.
np.float = float
np.int = int
np.bool = bool
np.object = object

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
import onnx.backend.test.case.node as node_cases  # noqa: E402


def serialize_value(value, value_info):
    """Serializes one input/output the way ONNX's own generate-data does."""
    t = value_info.type
    if t.HasField("sequence_type"):
        return numpy_helper.from_list(value, value_info.name).SerializeToString()
    if t.HasField("optional_type"):
        return numpy_helper.from_optional(value, value_info.name).SerializeToString()
    if t.HasField("map_type"):
        return numpy_helper.from_dict(value, value_info.name).SerializeToString()
    return numpy_helper.from_array(np.asarray(value), value_info.name).SerializeToString()


def write_case(outdir, case):
    case_dir = os.path.join(outdir, case.name)
    # A few names are defined twice upstream; like ONNX's generate-data, the
    # later definition wins.
    if os.path.exists(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    graph = case.model.graph
    for i, (inputs, outputs) in enumerate(case.data_sets):
        data_dir = os.path.join(case_dir, f"test_data_set_{i}")
        os.makedirs(data_dir)
        for j, value in enumerate(inputs):
            with open(os.path.join(data_dir, f"input_{j}.pb"), "wb") as f:
                f.write(serialize_value(value, graph.input[j]))
        for j, value in enumerate(outputs):
            with open(os.path.join(data_dir, f"output_{j}.pb"), "wb") as f:
                f.write(serialize_value(value, graph.output[j]))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_conformance.py OUTDIR")
    outdir = sys.argv[1]
    start = time.time()
    cases = node_cases.collect_testcases(None)
    # Regenerate from scratch so cases dropped by an onnx upgrade disappear.
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    written = 0
    failed = []
    for case in cases:
        try:
            write_case(outdir, case)
            written += 1
        except Exception as e:  # a case numpy_helper cannot serialize
            failed.append(f"{case.name}: {e}")
            shutil.rmtree(os.path.join(outdir, case.name), ignore_errors=True)
    for msg in failed:
        print("not written:", msg, file=sys.stderr)
    print(f"onnx {onnx.__version__}: wrote {written} node cases to {outdir} "
          f"({len(failed)} not written) in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
