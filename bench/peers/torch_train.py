#!/usr/bin/python3
"""PyTorch peer of `pare train`: the same model, data, recipe and thread count.

usage: torch_train.py MODEL EPOCHS THREADS [--limit N] [--batch B] [--lr F] [--test-limit N]
Prints one JSON line per epoch (wall_s of the training loop only, img/s, loss,
test accuracy) and a summary line with the peak RSS. Run with Debian's
/usr/bin/python3 (python3-torch)."""
import argparse, gzip, json, resource, struct, sys, time

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def split(prefix, limit):
    x = idx(f"{DATA}/{prefix}-images-idx3-ubyte.gz")
    y = idx(f"{DATA}/{prefix}-labels-idx1-ubyte.gz")
    if limit:
        x, y = x[:limit], y[:limit]
    x = (x.astype(np.float32) / 255.0 - 0.2860) / 0.3530
    return torch.from_numpy(x).unsqueeze(1).contiguous(), torch.from_numpy(y.astype(np.int64))


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def fmnist_cnn():
    def cbr(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*cbr(1, 32), *cbr(32, 32), nn.MaxPool2d(2), *cbr(32, 64), *cbr(64, 64),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 256), nn.ReLU(), nn.Linear(256, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["lenet", "fmnist-cnn"])
    ap.add_argument("epochs", type=int)
    ap.add_argument("threads", type=int)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--test-limit", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = split("train", a.limit)
    xte, yte = split("t10k", a.test_limit)
    model = lenet() if a.model == "lenet" else fmnist_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    spe = (len(xtr) + a.batch - 1) // a.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs * spe, eta_min=0.0)
    gen = torch.Generator().manual_seed(a.seed)
    lossf = nn.CrossEntropyLoss()
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        t0 = time.perf_counter()
        tot = 0.0
        for i in range(0, len(xtr), a.batch):
            b = perm[i:i + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(b)
        dt = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                          for i in range(0, len(xte), 1000))
        print(json.dumps(dict(engine="torch", model=a.model, epoch=ep + 1, threads=a.threads,
                              wall_s=round(dt, 3), img_per_s=round(len(xtr) / dt, 1),
                              train_loss=round(tot / len(xtr), 5), test_acc=correct / len(xte))), flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(engine="torch", event="done", torch=torch.__version__, peak_rss_mb=round(rss_mb, 1))))


if __name__ == "__main__":
    main()
