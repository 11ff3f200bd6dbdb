#!/usr/bin/python3
"""Writes the torchvision models of make bench-engine as ONNX files for ONNX Runtime.

usage: /usr/bin/python3 bench/peers/export_onnx.py OUTDIR MODEL...

MODEL is a pare zoo name (resnet18, vgg16, mobilenetv2-224); OUTDIR/MODEL.onnx gets the
torchvision model of the same shapes with random weights (weights=None, torch seed 0),
in eval mode, batch 1, input 3x224x224, opset 13. One JSON line per model on stdout.
"""
import json
import os
import sys
import time

import torch
import torchvision

# pare zoo name -> torchvision constructor name
TORCHVISION = {
    "resnet18": "resnet18",
    "vgg16": "vgg16",
    "mobilenetv2-224": "mobilenet_v2",
}


def build(name):
    """The torchvision model for a pare zoo name, seeded, in eval mode."""
    torch.manual_seed(0)
    net = getattr(torchvision.models, TORCHVISION[name])(weights=None)
    return net.eval()


def main(argv):
    if len(argv) < 3 or any(m not in TORCHVISION for m in argv[2:]):
        sys.stderr.write("usage: export_onnx.py OUTDIR MODEL...  (MODEL: %s)\n" % ", ".join(TORCHVISION))
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for name in argv[2:]:
        t0 = time.perf_counter()
        net = build(name)
        example = torch.randn(1, 3, 224, 224)
        path = os.path.join(outdir, name + ".onnx")
        tmp = path + ".part"
        with torch.no_grad():
            torch.onnx.export(net, example, tmp, opset_version=13, input_names=["input"],
                              output_names=["logits"], do_constant_folding=True)
        os.replace(tmp, path)
        print(json.dumps({"engine": "ort", "event": "export", "model": name,
                          "torchvision": TORCHVISION[name], "path": path, "bytes": os.path.getsize(path),
                          "opset": 13, "torch": torch.__version__,
                          "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
