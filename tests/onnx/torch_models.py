#!/usr/bin/python3
"""Small PyTorch models exported to ONNX, with their inputs and outputs, for the
import tests (tests/test_onnx_export.c, "onnx_torch_models").

usage: /usr/bin/python3 tests/onnx/torch_models.py OUTDIR [NAME...]

For each model (all, or the NAMEs given) and each opset it is exported at, OUTDIR
gets NAME.opK.onnx, and once per model NAME.in.bin and NAME.out.bin: the input and
PyTorch's output, raw little-endian float32 in NCHW order. OUTDIR/manifest.txt
lists one line per export:

    case NAME OPSET FILE IN OUT N C H W OUT_PER_SAMPLE ZEROS
    skip NAME OPSET REASON...

ZEROS is the number of exact zeros in the conv and linear weights of a pruned
model (0 for the others). Weights and inputs come from fixed seeds, every model is
in eval mode (dropout off, batch norm on running statistics), and batch norms get
random running statistics so none is the identity.
"""
import os
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune
import torchvision


def randomize_bn(net, seed):
    """Random running statistics and affine parameters in every batch norm."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.data.copy_(0.2 * torch.randn(c, generator=g))


class ConvNet(nn.Module):
    """conv, batch norm, relu, max pooling (plain, padded, ceil mode), dropout, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))   # 8 x 16 x 16
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))   # 16 x 4 x 4
        x = self.pool3(x)                                 # 16 x 2 x 2 (1 x 1 rounding down)
        return self.fc(self.drop(torch.flatten(x, 1)))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(cout)
        self.b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn_b(self.b(F.relu(self.bn_a(self.a(x)))))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNet(nn.Module):
    """Residual blocks, one with a projection shortcut; global average pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.layer1 = Block(16, 16, 1)
        self.layer2 = Block(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class Acts(nn.Module):
    """LeakyReLU, Hardswish, grouped conv, the view-transpose-view channel shuffle,
    ReLU6, a squeeze-and-excitation gate (x * sigmoid(fc(pool(x)))), Hardsigmoid,
    average pooling with and without the padding counted, softmax over channels
    (4-D) and over classes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.se1 = nn.Linear(8, 4)
        self.se2 = nn.Linear(4, 8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.leaky_relu(self.conv1(x), 0.1)
        x = F.hardswish(self.conv2(x))
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        x = F.relu6(3 * x)
        s = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        s = torch.sigmoid(self.se2(F.relu(self.se1(s))))
        x = x * s.view(-1, 8, 1, 1)
        x = F.hardsigmoid(x - 1.5)
        x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)   # 8 x 8
        x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=True)    # 4 x 4
        x = F.softmax(4 * x, dim=1)
        return F.softmax(self.fc(torch.flatten(x, 1)), dim=1)


class Pads(nn.Module):
    """Zero padding (asymmetric) and reflection padding between convs."""

    def __init__(self):
        super().__init__()
        self.pad0 = nn.ZeroPad2d((1, 2, 0, 1))   # left, right, top, bottom
        self.conv1 = nn.Conv2d(3, 6, 3)
        self.refl = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(6, 4, 3)

    def forward(self, x):
        x = F.relu(self.conv1(self.pad0(x)))
        return self.conv2(self.refl(x))


class Pruned(nn.Module):
    """Pruned with torch.nn.utils.prune (L1, unstructured), the masks made permanent."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def pruned():
    net = Pruned()
    for m, amount in ((net.conv1, 0.5), (net.conv2, 0.7), (net.fc, 0.6)):
        prune.l1_unstructured(m, "weight", amount)
        prune.remove(m, "weight")
    return net


# name: (constructor, input shape, opsets, dynamic batch)
MODELS = {
    "convnet": (ConvNet, (2, 3, 32, 32), (9, 11, 13, 17), True),
    "resnet": (ResNet, (2, 3, 16, 16), (11, 13), True),
    "acts": (Acts, (2, 3, 16, 16), (9, 11, 13, 17), False),
    "pads": (Pads, (2, 3, 9, 9), (9, 11, 13, 17), False),
    "pruned": (pruned, (2, 3, 16, 16), (11, 13), False),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=10),
                     (1, 3, 64, 64), (9, 13), False),
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), (1, 3, 64, 64), (13,), True),
}


def zeros_in_weights(net):
    return sum(int((m.weight == 0).sum()) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)))


def main(argv):
    if len(argv) < 2 or any(a not in MODELS for a in argv[2:]):
        sys.stderr.write("usage: torch_models.py OUTDIR [%s]...\n" % "|".join(MODELS))
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # the exporter's advice on shape inference
    lines = []
    for seed, name in enumerate(argv[2:] or MODELS):
        make, shape, opsets, dynamic = MODELS[name]
        torch.manual_seed(1000 + seed)
        net = make().eval()
        randomize_bn(net, 2000 + seed)
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(3000 + seed))
        with torch.no_grad():
            y = net(x)
        x.numpy().astype("<f4").tofile(os.path.join(out, name + ".in.bin"))
        y.numpy().astype("<f4").tofile(os.path.join(out, name + ".out.bin"))
        zeros = zeros_in_weights(net) if name == "pruned" else 0
        for opset in opsets:
            f = "%s.op%d.onnx" % (name, opset)
            axes = {"input": {0: "N"}, "output": {0: "N"}} if dynamic else None
            try:
                with torch.no_grad():
                    torch.onnx.export(net, x, os.path.join(out, f), opset_version=opset,
                                      input_names=["input"], output_names=["output"],
                                      dynamic_axes=axes, do_constant_folding=True)
            except Exception as e:  # an op this opset cannot express
                lines.append("skip %s %d %s" % (name, opset, str(e).splitlines()[0][:200]))
                continue
            lines.append("case %s %d %s %s.in.bin %s.out.bin %d %d %d %d %d %d" %
                         (name, opset, f, name, name, shape[0], shape[1], shape[2], shape[3],
                          y[0].numel(), zeros))
    with open(os.path.join(out, "manifest.txt"), "w") as m:
        m.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
