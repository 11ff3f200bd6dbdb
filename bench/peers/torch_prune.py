#!/usr/bin/python3
"""PyTorch peer of `pare prune` on W1: train fmnist-cnn with the recipe of
WORKLOADS.md (3 epochs), then for each sparsity prune a copy with
torch.nn.utils.prune.global_unstructured (L1) over every conv and linear
weight and fine-tune 2 epochs (lr 0.01, cosine, masks kept). One JSON line
per sparsity. usage: torch_prune.py THREADS SPARSITY [SPARSITY ...]"""
import copy, json, sys, time

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from torch_train import fmnist_cnn, split


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        return sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item() for i in range(0, len(x), 1000)) / len(x)


def train(model, x, y, epochs, lr, seed):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    spe = (len(x) + 127) // 128
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * spe, eta_min=0.0)
    gen = torch.Generator().manual_seed(seed)
    lossf = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            b = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            lossf(model(x[b]), y[b]).backward()
            opt.step()
            sched.step()


def main():
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    xtr, ytr = split("train", 0)
    xte, yte = split("t10k", 0)
    base = fmnist_cnn()
    t0 = time.perf_counter()
    train(base, xtr, ytr, 3, 0.05, 0)
    dense = evaluate(base, xte, yte)
    print(json.dumps(dict(engine="torch", stage="dense", test_acc=dense, train_s=round(time.perf_counter() - t0, 1))), flush=True)
    for sp in map(float, sys.argv[2:]):
        m = copy.deepcopy(base)
        params = [(mod, "weight") for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
        t0 = time.perf_counter()
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sp)
        pruned = evaluate(m, xte, yte)
        train(m, xtr, ytr, 2, 0.01, 0)
        final = evaluate(m, xte, yte)
        z = sum((mod.weight == 0).sum().item() for mod, _ in params)
        n = sum(mod.weight.numel() for mod, _ in params)
        print(json.dumps(dict(engine="torch", scheme="unstructured", method="global-l1", target=sp, sparsity=round(z / n, 4),
                              acc_before=dense, acc_pruned=pruned, acc_final=final,
                              seconds=round(time.perf_counter() - t0, 1))), flush=True)


if __name__ == "__main__":
    main()
