#!/usr/bin/python3
"""Summarises bench/results/prune.jsonl (make bench-prune): test accuracy after fine-tuning per
scheme x method x sparsity, PyTorch's global L1 beside it, the issue's targets,
and each method's wall time relative to one-shot + fine-tuning."""
import json, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
pare_dense = next((r["test_acc"] for r in rows if r.get("stage") == "base" and r.get("event") == "done"), None)
torch_dense = next((r["test_acc"] for r in rows if r.get("engine") == "torch" and r.get("stage") == "dense"), None)
torch = {r["target"]: r for r in rows if r.get("engine") == "torch" and "target" in r}
runs = [r for r in rows if r.get("engine") == "pare" and "tag" in r]
cell = {}
for r in runs:
    parts = r["tag"].split()
    method, scheme = parts[0], parts[1]
    sp = parts[2] if len(parts) > 2 else "own"
    cell[(scheme, method, sp)] = r
sps = sorted({k[2] for k in cell if k[2] != "own"}, key=float)
print(f"dense W1: pare {100*pare_dense:.2f}%, PyTorch {100*torch_dense:.2f}%" if pare_dense and torch_dense else "dense: ?")
print(f"\n{'scheme':<14} {'method':<17} " + " ".join(f"{float(s)*100:>14.0f}%" for s in sps) + f" {'(own ratio)':>15}")
def fmt(r):
    if not r:
        return ""
    if r.get("failed"):
        return "failed"
    return f"{100*r['acc_final']:.2f} ({100*r['sparsity']:.0f}%)"
keys = sorted({(k[0], k[1]) for k in cell}, key=lambda k: (k[0] != "unstructured", k[0], k[1] != "oneshot", k[1]))
for scheme, method in keys:
    line = f"{scheme:<14} {method:<17} " + " ".join(f"{fmt(cell.get((scheme, method, s))):>15}" for s in sps)
    line += f" {fmt(cell.get((scheme, method, 'own'))):>15}"
    print(line)
def tfmt(s):
    r = torch.get(float(s))
    return f"{100*r['acc_final']:.2f} ({100*r['sparsity']:.0f}%)" if r else ""
print(f"{'unstructured':<14} {'torch global-L1':<17} " + " ".join(f"{tfmt(s):>15}" for s in sps))

print("\nwall time relative to one-shot + fine-tuning (same scheme and sparsity):")
for (scheme, method, sp), r in sorted(cell.items()):
    base = cell.get((scheme, "oneshot", sp))
    if method == "oneshot" or not base or r.get("failed") or base.get("failed"):
        continue
    t = r["seconds_prune"] + r["seconds_finetune"]
    t0 = base["seconds_prune"] + base["seconds_finetune"]
    print(f"  {method:<17} {scheme:<13} {sp:>5}: {t:7.1f} s vs {t0:6.1f} s = {t/t0:.2f}x")

print("\ntargets:")
best90 = max((r["acc_final"] for (s, m, sp), r in cell.items() if s == "unstructured" and sp == "0.9" and not r.get("failed")), default=None)
if best90 is not None and 0.9 in torch:
    t = torch[0.9]["acc_final"]
    print(f"  90% unstructured: pare best {100*best90:.2f}% vs PyTorch {100*t:.2f}%: {'met' if best90 >= t else 'MISSED'}")
bestpat = max((r["acc_final"] for (s, m, sp), r in cell.items() if s == "pattern" and sp == "0.9" and not r.get("failed")), default=None)
if bestpat is not None and pare_dense:
    print(f"  pattern 90%: best {100*bestpat:.2f}% vs dense {100*pare_dense:.2f}%: {100*(pare_dense-bestpat):.2f} points ({'met' if pare_dense - bestpat <= 0.01 else 'MISSED'}, target <= 1.0)")
best24 = max((r["acc_final"] for (s, m, sp), r in cell.items() if s == "2:4" and not r.get("failed")), default=None)
if best24 is not None and pare_dense:
    print(f"  2:4: best {100*best24:.2f}% vs dense {100*pare_dense:.2f}%: {100*(pare_dense-best24):.2f} points ({'met' if pare_dense - best24 <= 0.005 else 'MISSED'}, target <= 0.5)")
