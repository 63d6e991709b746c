#!/usr/bin/python3
"""Converts a TensorFlow.js graph model (model.json + .bin shards) into ONNX that OpenCV 4.6 runs.

Only the ops our models use are handled; anything else stops the conversion with its name.
Tensors stay NCHW inside the ONNX graph (the input is [1, 3, H, W]); constants written for TF's
NHWC layout are transposed as they are used. Usage:
  tfjs2onnx.py MODEL.json OUT.onnx --size H W [--output TFNAME[=ONNXNAME]]...
"""
import argparse
import base64
import json
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

OPSET = 10  # Clip with min/max attributes: the only form OpenCV 4.6 reads

OPENCV_HINTS = {"coordinate_transformation_mode"}

NP_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
QUANT_DTYPES = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


def fail(msg):
    sys.exit("tfjs2onnx: " + msg)


def load_weights(model_dir, manifest):
    """Returns {name: ndarray} for every weight of the manifest, dequantized to float32."""
    out = {}
    for group in manifest:
        buf = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            dtype = QUANT_DTYPES[q["dtype"]] if q else NP_DTYPES[w["dtype"]]
            size = count * np.dtype(dtype).itemsize
            arr = np.frombuffer(buf, dtype=dtype, count=count, offset=off).reshape(w["shape"])
            off += size
            if q and q["dtype"] != "float16":
                arr = arr.astype(np.float32) * q["scale"] + q["min"]
            out[w["name"]] = arr.astype(NP_DTYPES[w["dtype"]])
        if off != len(buf):
            fail("weight shards hold %d bytes, manifest uses %d" % (len(buf), off))
    return out


def attr(node, key, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(x).decode() for x in lst["s"]]
        return [int(x) for x in lst.get("i", [])]
    if "i" in a:
        return int(a["i"])
    if "b" in a:
        return bool(a["b"])
    if "f" in a:
        return float(a["f"])
    return default


def nhwc_axis(axis):
    return [0, 2, 3, 1][axis % 4]


class Converter:
    """Walks the TF graph from the requested outputs back to the input and emits ONNX nodes."""

    def __init__(self, nodes, weights, size):
        self.nodes = {n["name"]: n for n in nodes}
        self.weights = weights
        self.size = size
        self.onnx_nodes, self.inits = [], []
        self.done = {}  # tf tensor name -> (onnx name, shape or None for constants)
        self.uid = 0

    def fresh(self, base):
        self.uid += 1
        return "%s__%d" % (base, self.uid)

    def const(self, name, arr):
        arr = np.ascontiguousarray(arr)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def emit(self, op, inputs, base, **attrs):
        out = self.fresh(base)
        self.onnx_nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def value(self, tfname):
        """The numpy value of a constant tensor, or None when it is computed."""
        name = tfname.split(":")[0]
        if name in self.weights:
            return self.weights[name]
        return None

    def tensor(self, tfname):
        """ONNX name and NCHW shape of a computed tensor, converting its producer first."""
        name = tfname.split(":")[0]
        if name not in self.done:
            node = self.nodes.get(name)
            if node is None:
                fail("unknown tensor " + name)
            handler = getattr(self, "op_" + node["op"], None)
            if handler is None:
                fail("unsupported op %s (%s)" % (node["op"], name))
            self.done[name] = handler(node, name)
        return self.done[name]

    # --- inputs and plumbing -------------------------------------------------------------------
    def op_Placeholder(self, node, name):
        return ("input", [1, 3, self.size[0], self.size[1]])

    def op_Identity(self, node, name):
        return self.tensor(node["input"][0])

    # --- convolutions --------------------------------------------------------------------------
    def pads(self, node, shape, kh, kw, sh, sw, dh=1, dw=1):
        mode = attr(node, "padding")
        h, w = shape[2], shape[3]
        if mode == "VALID":
            oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
            return [0, 0, 0, 0], oh, ow
        if mode != "SAME":
            fail("padding %s in %s" % (mode, node["name"]))
        oh, ow = -(-h // sh), -(-w // sw)
        ph = max((oh - 1) * sh + (kh - 1) * dh + 1 - h, 0)
        pw = max((ow - 1) * sw + (kw - 1) * dw + 1 - w, 0)
        return [ph // 2, pw // 2, ph - ph // 2, pw - pw // 2], oh, ow

    def conv(self, node, name, depthwise):
        x, shape = self.tensor(node["input"][0])
        w = self.value(node["input"][1])
        if w is None:
            fail("computed weights in " + name)
        kh, kw = w.shape[0], w.shape[1]
        strides = attr(node, "strides", [1, 1, 1, 1])
        dil = attr(node, "dilations", [1, 1, 1, 1]) or [1, 1, 1, 1]
        pads, oh, ow = self.pads(node, shape, kh, kw, strides[1], strides[2], dil[1], dil[2])
        if depthwise:
            cin, mult = w.shape[2], w.shape[3]
            wt = w.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            group, cout = cin, cin * mult
        else:
            wt = w.transpose(3, 2, 0, 1)
            group, cout = 1, w.shape[3]
        ins = [x, self.const(name + "/W", wt.astype(np.float32))]
        fused = attr(node, "fused_ops", []) or []
        args = node["input"][2:]
        if fused[:1] == ["BiasAdd"]:
            ins.append(self.const(name + "/B", self.value(args[0]).astype(np.float32)))
        elif fused:
            fail("fused ops %s in %s" % (fused, name))
        out = self.emit("Conv", ins, name, kernel_shape=[kh, kw], strides=strides[1:3],
                        pads=pads, dilations=dil[1:3], group=group)
        out = self.activation(fused[1:], args[1:], out, name)
        return (out, [1, cout, oh, ow])

    def activation(self, ops, args, x, name):
        for op in ops:
            if op == "Relu":
                x = self.emit("Relu", [x], name)
            elif op == "Relu6":
                x = self.emit("Clip", [x], name, min=0.0, max=6.0)
            elif op == "Prelu":
                x = self.emit("PRelu", [x, self.channel_const(args[0], name + "/alpha")], name)
            else:
                fail("fused activation %s in %s" % (op, name))
        return x

    def op__FusedConv2D(self, node, name):
        return self.conv(node, name, False)

    def op_Conv2D(self, node, name):
        return self.conv(node, name, False)

    def op_DepthwiseConv2dNative(self, node, name):
        return self.conv(node, name, True)

    def op_FusedDepthwiseConv2dNative(self, node, name):
        return self.conv(node, name, True)

    def op_MaxPool(self, node, name):
        x, shape = self.tensor(node["input"][0])
        k, s = attr(node, "ksize"), attr(node, "strides")
        pads, oh, ow = self.pads(node, shape, k[1], k[2], s[1], s[2])
        out = self.emit("MaxPool", [x], name, kernel_shape=k[1:3], strides=s[1:3], pads=pads)
        return (out, [1, shape[1], oh, ow])

    def op_Pad(self, node, name):
        x, shape = self.tensor(node["input"][0])
        p = self.value(node["input"][1]).astype(np.int64)
        order = [0, 3, 1, 2]
        begin, end = [int(p[i][0]) for i in order], [int(p[i][1]) for i in order]
        out = self.emit("Pad", [x], name, pads=begin + end, mode="constant", value=0.0)
        return (out, [d + b + e for d, b, e in zip(shape, begin, end)])

    # --- elementwise ---------------------------------------------------------------------------
    def channel_const(self, tfname, oname):
        """A constant broadcast over NHWC's last axis, reshaped to broadcast over NCHW."""
        v = self.value(tfname).astype(np.float32)
        if v.size == 1:
            return self.const(oname, v.reshape([1]))
        return self.const(oname, v.reshape([-1, 1, 1]))

    def binary(self, node, name, op):
        a, b = node["input"][0], node["input"][1]
        va, vb = self.value(a), self.value(b)
        if va is not None and vb is not None:
            fail("constant-only %s in %s" % (op, name))
        if va is not None:
            if op == "Sub":
                fail("constant minus tensor in " + name)
            a, b, va, vb = b, a, vb, va
        x, shape = self.tensor(a)
        if vb is not None:
            if vb.size == 1 and op in ("Min", "Max"):
                lim = float(vb.reshape(-1)[0])
                kw = {"max": lim, "min": -3.4e38} if op == "Min" else {"min": lim, "max": 3.4e38}
                return (self.emit("Clip", [x], name, **kw), shape)
            return (self.emit(op, [x, self.channel_const(b, name + "/c")], name), shape)
        y, yshape = self.tensor(b)
        big = shape if np.prod(shape) >= np.prod(yshape) else yshape
        return (self.emit(op, [x, y], name), big)

    def op_AddV2(self, node, name):
        return self.binary(node, name, "Add")

    def op_Add(self, node, name):
        return self.binary(node, name, "Add")

    def op_Sub(self, node, name):
        return self.binary(node, name, "Sub")

    def op_Mul(self, node, name):
        return self.binary(node, name, "Mul")

    def op_Maximum(self, node, name):
        return self.binary(node, name, "Max")

    def op_Minimum(self, node, name):
        return self.binary(node, name, "Min")

    def op_Prelu(self, node, name):
        x, shape = self.tensor(node["input"][0])
        alpha = self.channel_const(node["input"][1], name + "/alpha")
        return (self.emit("PRelu", [x, alpha], name), shape)

    def unary(self, node, name, op, **kw):
        x, shape = self.tensor(node["input"][0])
        return (self.emit(op, [x], name, **kw), shape)

    def op_Relu(self, node, name):
        return self.unary(node, name, "Relu")

    def op_Relu6(self, node, name):
        return self.unary(node, name, "Clip", min=0.0, max=6.0)

    def op_Sigmoid(self, node, name):
        return self.unary(node, name, "Sigmoid")

    # --- shape ops -----------------------------------------------------------------------------
    def op_Mean(self, node, name):
        x, shape = self.tensor(node["input"][0])
        axes = sorted(int(a) % 4 for a in self.value(node["input"][1]).reshape(-1))
        if axes != [1, 2]:
            fail("Mean over axes %s in %s" % (axes, name))
        out = self.emit("GlobalAveragePool", [x], name)
        if attr(node, "keep_dims", False):
            return (out, [1, shape[1], 1, 1])
        out = self.emit("Flatten", [out], name, axis=1)
        return (out, [1, shape[1]])

    def op_Reshape(self, node, name):
        x, shape = self.tensor(node["input"][0])
        target = [int(d) for d in self.value(node["input"][1]).reshape(-1)]
        if len(shape) == 4 and (shape[2] != 1 or shape[3] != 1):
            x = self.emit("Transpose", [x], name, perm=[0, 2, 3, 1])
        target = [1 if d == -1 and i == 0 else d for i, d in enumerate(target)]
        out = self.emit("Reshape", [x, self.const(name + "/shape", np.array(target, np.int64))], name)
        if -1 in target:
            target[target.index(-1)] = int(np.prod(shape) // -np.prod(target))
        return (out, target)

    def op_ConcatV2(self, node, name):
        ins = node["input"][:-1]
        axis = int(self.value(node["input"][-1]))
        parts = [self.tensor(i) for i in ins]
        rank = len(parts[0][1])
        ax = nhwc_axis(axis) if rank == 4 else axis % rank
        shape = list(parts[0][1])
        shape[ax] = sum(p[1][ax] for p in parts)
        return (self.emit("Concat", [p[0] for p in parts], name, axis=ax), shape)

    def op_ResizeBilinear(self, node, name):
        x, shape = self.tensor(node["input"][0])
        size = self.value(node["input"][1])
        if size is None:
            size = self.resize_size(node["input"][1], shape)
        if attr(node, "align_corners", False) or attr(node, "half_pixel_centers", False):
            fail("only asymmetric ResizeBilinear is handled: " + name)
        oh, ow = int(size[0]), int(size[1])
        scales = np.array([1, 1, oh / shape[2], ow / shape[3]], np.float32)
        # OpenCV reads coordinate_transformation_mode even in opset 10 (where it means this).
        out = self.emit("Resize", [x, self.const(name + "/scales", scales)], name, mode="linear",
                        coordinate_transformation_mode="asymmetric")
        return (out, [1, shape[1], oh, ow])

    def resize_size(self, tfname, shape):
        """Folds the usual Keras UpSampling2D size: StridedSlice(Shape(x)) * factor."""
        node = self.nodes[tfname.split(":")[0]]
        factor = None
        for i in node["input"]:
            if self.value(i) is not None:
                factor = self.value(i).reshape(-1)
        if node["op"] != "Mul" or factor is None:
            fail("computed resize size in " + tfname)
        return [shape[2] * int(factor[0]), shape[3] * int(factor[-1])]


def check(model):
    """Runs ONNX's checker on a copy without the hints for OpenCV that opset 10 does not know."""
    plain = onnx.ModelProto()
    plain.CopyFrom(model)
    for node in plain.graph.node:
        keep = [a for a in node.attribute if a.name not in OPENCV_HINTS]
        del node.attribute[:]
        node.attribute.extend(keep)
    onnx.checker.check_model(plain)


def convert(model_json, out_path, size, outputs):
    spec = json.load(open(model_json))
    weights = load_weights(os.path.dirname(model_json), spec["weightsManifest"])
    conv = Converter(spec["modelTopology"]["node"], weights, size)
    graph_outputs = []
    for item in outputs:
        tfname, _, oname = item.partition("=")
        x, shape = conv.tensor(tfname)
        oname = oname or tfname.split(":")[0].replace("/", "_")
        conv.onnx_nodes.append(helper.make_node("Identity", [x], [oname], name=oname))
        graph_outputs.append(helper.make_tensor_value_info(oname, TensorProto.FLOAT, shape))
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size[0], size[1]])
    graph = helper.make_graph(conv.onnx_nodes, os.path.basename(model_json), [inp],
                              graph_outputs, conv.inits)
    model = helper.make_model(graph, producer_name="interview-api tfjs2onnx",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 5
    check(model)
    tmp = out_path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, out_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_json")
    ap.add_argument("out")
    ap.add_argument("--size", nargs=2, type=int, required=True, metavar=("H", "W"))
    ap.add_argument("--output", action="append", required=True)
    a = ap.parse_args()
    convert(a.model_json, a.out, a.size, a.output)


if __name__ == "__main__":
    main()
