#!/usr/bin/python3
"""Summarises bench/out/train.jsonl: per model and engine, the median images/s
over epochs (all epochs, and without the first), median seconds per epoch, peak
RSS (max over runs, in MiB; /usr/bin/time reports KiB), final test accuracy; and
pare/torch ratios."""
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ep = defaultdict(list)
rss = defaultdict(list)
final = defaultdict(list)
for r in rows:
    key = (r.get("model"), r.get("engine"))
    if r.get("event") == "rss":
        rss[key].append(r["max_rss_kib"] / 1024.0)
    elif r.get("event") == "epoch" or ("epoch" in r and "event" not in r):
        ips = r.get("images_per_s", r.get("img_per_s"))
        secs = r.get("seconds", r.get("wall_s"))
        ep[key].append((r["epoch"], ips, secs, r["test_acc"]))
models = sorted({k[0] for k in ep})
out = []
print(f"{'model':<11} {'engine':<6} {'img/s (median)':>14} {'w/o epoch 1':>12} {'s/epoch':>8} {'peak RSS MiB':>13} {'test acc':>9}")
for m in models:
    stat = {}
    for e in ("pare", "torch"):
        v = ep.get((m, e))
        if not v:
            continue
        last = max(x[0] for x in v)
        accs = [x[3] for x in v if x[0] == last]
        s = dict(ips=statistics.median(x[1] for x in v),
                 ips_late=statistics.median([x[1] for x in v if x[0] > 1] or [x[1] for x in v]),
                 secs=statistics.median(x[2] for x in v), rss=max(rss.get((m, e), [float("nan")])),
                 acc=statistics.median(accs))
        stat[e] = s
        print(f"{m:<11} {e:<6} {s['ips']:>14.0f} {s['ips_late']:>12.0f} {s['secs']:>8.2f} {s['rss']:>13.0f} {100*s['acc']:>8.2f}%")
    if "pare" in stat and "torch" in stat:
        p, t = stat["pare"], stat["torch"]
        ratio = dict(model=m, throughput_ratio=round(p["ips"] / t["ips"], 3),
                     rss_ratio=round(p["rss"] / t["rss"], 3), acc_diff_points=round(100 * (p["acc"] - t["acc"]), 2))
        out.append(ratio)
        print(f"{m:<11} ratio  pare/torch throughput {ratio['throughput_ratio']:.2f}x, peak RSS {ratio['rss_ratio']:.2f}x, "
              f"accuracy {ratio['acc_diff_points']:+.2f} points")
for o in out:
    print(json.dumps(o))
