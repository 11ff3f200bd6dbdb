#!/usr/bin/python3
"""PyTorch eager inference latency of a torchvision model, the dense peer of make bench-engine.

usage: env -u OPENBLAS_CORETYPE /usr/bin/python3 bench/peers/torch_infer.py MODEL THREADS RUNS WARMUP BLOCKS

MODEL is a pare zoo name (resnet18, vgg16, mobilenetv2-224): the torchvision model of the
same shapes, random weights (torch seed 0), eval mode, batch 1, input 3x224x224. WARMUP
untimed runs, then BLOCKS blocks of RUNS timed runs under torch.inference_mode(); prints one
JSON line: median and p90 over all runs (nearest rank, as pare bench), min, and each
block's median.
"""
import json
import sys
import time

import torch
import torchvision

TORCHVISION = {"resnet18": "resnet18", "vgg16": "vgg16", "mobilenetv2-224": "mobilenet_v2"}


def nearest_rank(sorted_ms, frac):
    i = int(frac * (len(sorted_ms) - 1) + 0.5)
    return sorted_ms[min(max(i, 0), len(sorted_ms) - 1)]


def main(argv):
    if len(argv) != 6 or argv[1] not in TORCHVISION:
        sys.stderr.write("usage: torch_infer.py MODEL THREADS RUNS WARMUP BLOCKS  (MODEL: %s)\n"
                         % ", ".join(TORCHVISION))
        return 2
    name = argv[1]
    threads, runs, warmup, blocks = (int(a) for a in argv[2:6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = getattr(torchvision.models, TORCHVISION[name])(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    times = []
    block_medians = []
    with torch.inference_mode():
        for _ in range(warmup):
            net(x)
        for _ in range(blocks):
            block = []
            for _ in range(runs):
                t0 = time.perf_counter()
                net(x)
                block.append((time.perf_counter() - t0) * 1e3)
            block.sort()
            block_medians.append(round(nearest_rank(block, 0.5), 4))
            times.extend(block)
    times.sort()
    print(json.dumps({"engine": "torch", "model": name, "variant": "dense", "threads": threads,
                      "torch": torch.__version__, "runs_per_block": runs, "blocks": blocks,
                      "warmup": warmup, "median_ms": round(nearest_rank(times, 0.5), 4),
                      "p90_ms": round(nearest_rank(times, 0.9), 4), "min_ms": round(times[0], 4),
                      "block_medians_ms": block_medians}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
