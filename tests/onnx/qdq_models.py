#!/usr/bin/python3
"""Quantized (QDQ) ONNX models made outside pare, with inputs and reference
outputs, for the import test (tests/test_onnx_export.c, "onnx_qdq_external").

usage: /usr/bin/python3 tests/onnx/qdq_models.py OUTDIR

OUTDIR gets NAME.onnx, NAME.in.bin and NAME.out.bin (raw little-endian float32,
NCHW) per model, and manifest.txt with one line per model:

    case NAME FILE IN OUT N C H W OUT_PER_SAMPLE TOL FAKEQUANTS QPARAMS

TOL is the largest difference the import may show (two steps of the output's
quantization), FAKEQUANTS the fakequant layers the import must make, QPARAMS
the weights and biases that must come with qparams.

  qdq_conv   built with onnx.helper in ONNX Runtime's static-quantization form:
             uint8 activations (one with an int8 zero point), per-channel int8
             weights, int32 biases, a depthwise conv with a per-tensor weight.
             The reference is ONNX's arithmetic in numpy (onnx 1.12 has no
             reference evaluator).
  torch_qat  a PyTorch 1.13 model prepared for quantization-aware training
             (FakeQuantize, 7-bit activations as PyTorch's reduce_range gives,
             per-channel weights) exported at opset 13; the reference is
             PyTorch's own output.
"""
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def quantize(x, s, zp, lo, hi):
    """ONNX QuantizeLinear in float32: rint(x / s) + zp, saturated."""
    q = np.rint(x.astype(np.float32) / np.float32(s)) + zp
    return np.clip(q, lo, hi)


def dequantize(q, s, zp):
    return ((q - zp).astype(np.float32) * np.float32(s)).astype(np.float32)


def qdq(x, s, zp, lo=0, hi=255):
    return dequantize(quantize(x, s, zp, lo, hi), s, zp)


def conv(x, w, b, stride=1, pad=0, group=1):
    """A plain float64 convolution (NCHW), rounded to float32."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    og = o // group
    for f in range(o):
        g = f // og
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i:i + stride * oh:stride, j:j + stride * ow:stride]
                y[:, f] += np.tensordot(patch, w[f, :, i, j].astype(np.float64), axes=([1], [0]))
        y[:, f] += b[f]
    return y.astype(np.float32)


def qdq_conv(out):
    rng = np.random.default_rng(7)
    n = 4
    x = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
    x[0, 0, 0, :4] = [0.05, -0.15, 10.0, -10.0]        # ties and both saturations
    inits, nodes = [], []

    def init(name, arr, dtype):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))

    def weights(name, o, shape, per_channel):
        w = rng.normal(scale=0.3, size=(o,) + shape).astype(np.float32)
        amax = np.abs(w.reshape(o, -1)).max(1) if per_channel else np.array([np.abs(w).max()])
        s = (amax / 127).astype(np.float32)
        sb = s.reshape((-1,) + (1,) * len(shape)) if per_channel else s[0]
        codes = np.clip(np.rint(w / sb), -127, 127).astype(np.int8)
        init(name + "_q", codes, np.int8)
        init(name + "_s", s if per_channel else s[0], np.float32)
        init(name + "_z", np.zeros(o, np.int8) if per_channel else np.int8(0), np.int8)
        dq = helper.make_node("DequantizeLinear", [name + "_q", name + "_s", name + "_z"], [name],
                              name=name + "_dq", **({"axis": 0} if per_channel else {}))
        nodes.append(dq)
        return dequantize(codes.astype(np.int64), sb, 0), s

    def bias(name, o, s_in, s_w):
        s = (np.float32(s_in) * s_w).astype(np.float32)   # s_w: one scale per output
        codes = rng.integers(-400, 400, size=o).astype(np.int32)
        init(name + "_q", codes, np.int32)
        init(name + "_s", s, np.float32)
        nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_s"], [name],
                                      name=name + "_dq", axis=0))
        return (codes.astype(np.float32) * s).astype(np.float32)

    def act(src, dst, s, zp, dtype):
        init(dst + "_s", np.float32(s), np.float32)
        init(dst + "_z", zp, dtype)
        nodes.append(helper.make_node("QuantizeLinear", [src, dst + "_s", dst + "_z"], [dst + "_c"],
                                      name=dst + "_q"))
        nodes.append(helper.make_node("DequantizeLinear", [dst + "_c", dst + "_s", dst + "_z"], [dst],
                                      name=dst))

    s0, z0 = 0.04, 128
    act("x", "a0", s0, np.uint8(z0), np.uint8)
    w1, sw1 = weights("w1", 8, (3, 3, 3), True)
    b1 = bias("b1", 8, s0, sw1)
    nodes.append(helper.make_node("Conv", ["a0", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 4))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"], name="relu1"))
    s1 = 0.05
    act("r1", "a1", s1, np.uint8(0), np.uint8)
    w2, sw2 = weights("w2", 8, (1, 3, 3), False)
    b2 = bias("b2", 8, s1, np.full(8, sw2[0], np.float32))
    nodes.append(helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="conv2", pads=[1] * 4,
                                  strides=[2, 2], group=8))
    s2, z2 = 0.03, -5
    act("c2", "a2", s2, np.int8(z2), np.int8)
    nodes.append(helper.make_node("GlobalAveragePool", ["a2"], ["p"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["p"], ["f"], name="flat"))
    s3 = 0.004
    act("f", "a3", s3, np.uint8(120), np.uint8)
    w3, sw3 = weights("w3", 10, (8,), True)
    b3 = bias("b3", 10, s3, sw3)
    nodes.append(helper.make_node("Gemm", ["a3", "w3", "b3"], ["g"], name="fc", transB=1))
    s4 = 0.01
    act("g", "y", s4, np.uint8(128), np.uint8)

    graph = helper.make_graph(nodes, "qdq_conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="qdq_models.py")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(out, "qdq_conv.onnx"))

    a0 = qdq(x, s0, z0)
    r1 = np.maximum(conv(a0, w1, b1, pad=1), 0)
    a1 = qdq(r1, s1, 0)
    a2 = qdq(conv(a1, w2, b2, stride=2, pad=1, group=8), s2, z2, -128, 127)
    f = a2.astype(np.float64).mean(axis=(2, 3)).astype(np.float32)
    a3 = qdq(f, s3, 120)
    g = (a3.astype(np.float64) @ w3.astype(np.float64).T + b3).astype(np.float32)
    y = qdq(g, s4, 128)
    x.tofile(os.path.join(out, "qdq_conv.in.bin"))
    y.tofile(os.path.join(out, "qdq_conv.out.bin"))
    # fakequants: a0 a1 a2 a3 y; qparams: 3 weights, 3 biases
    return f"case qdq_conv qdq_conv.onnx qdq_conv.in.bin qdq_conv.out.bin {n} 3 8 8 10 {2 * s4 + 1e-6:.9g} 5 6"


def torch_qat(out):
    import torch
    import torch.nn as nn
    from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver,
                                       MovingAveragePerChannelMinMaxObserver, QConfig)

    torch.manual_seed(3)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = torch.quantization.QuantStub()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.fc = nn.Linear(8 * 4 * 4, 10)
            self.dequant = torch.quantization.DeQuantStub()

        def forward(self, x):
            x = self.quant(x)
            x = torch.relu(self.c1(x))
            x = torch.relu(self.c2(x))
            return self.dequant(self.fc(x.flatten(1)))

    net = Net().train()
    # FakeQuantize, not the fused observer PyTorch 1.13 cannot export; reduce_range
    # gives activations (0, 127), which the export clamps with a Clip of the codes.
    net.qconfig = QConfig(
        activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0,
                                          quant_max=255, reduce_range=True),
        weight=FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128,
                                      quant_max=127, dtype=torch.qint8,
                                      qscheme=torch.per_channel_symmetric))
    torch.quantization.prepare_qat(net, inplace=True)
    for _ in range(4):
        net(torch.randn(8, 3, 8, 8))
    net.eval()
    net.apply(torch.quantization.disable_observer)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        y = net(x)
    path = os.path.join(out, "torch_qat.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, x, path, opset_version=13, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    x.numpy().astype(np.float32).tofile(os.path.join(out, "torch_qat.in.bin"))
    y.numpy().astype(np.float32).tofile(os.path.join(out, "torch_qat.out.bin"))
    # pare's int8 weights take codes -128..127, as PyTorch's per-channel ones: every
    # weight comes with its qparams (a PyTorch weight rounds to -128 in some channel).
    qp = 0
    for m in (net.c1, net.c2, net.fc):
        fq = m.weight_fake_quant
        s = fq.scale.reshape((-1,) + (1,) * (m.weight.dim() - 1))
        codes = torch.clamp(torch.round(m.weight / s), -128, 127)
        qp += int(codes.min() >= -128 and codes.max() <= 127)
    step = float(net.fc.activation_post_process.scale)
    # PyTorch multiplies by 1 / scale where ONNX divides, and sums convolutions in
    # another order: a code at a tie may land one step apart.
    return f"case torch_qat torch_qat.onnx torch_qat.in.bin torch_qat.out.bin 4 3 8 8 10 {2 * step + 1e-6:.9g} 4 {qp}"


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines = [qdq_conv(out)]
    try:
        lines.append(torch_qat(out))
    except ImportError as e:
        lines.append(f"skip torch_qat no torch: {e}")
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
