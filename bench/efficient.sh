#!/bin/sh
# make bench-efficient: W1 (fmnist-cnn, Fashion-MNIST 60k/10k, the recipe of
# WORKLOADS.md: SGD momentum 0.9, lr 0.05 cosine, wd 5e-4, batch 128, seed 0,
# 3 epochs) trained densely and with each efficient-training technique alone
# and combined; records test accuracy, training FLOPs (from --json), the
# training loop's wall time and the whole run's, and prints a table of ratios
# against dense. Medians over REPEAT runs; configurations alternate within a
# repeat so drifts of a shared machine spread over all of them.
# usage: bench/efficient.sh PARE_BINARY
#   env: THREADS=2 REPEAT=1 EPOCHS=3 LIMIT= (train on the first N only)
#        CONFIGS="dense sparse90 ..." (a subset, in that order)
#        APPEND=1 (keep results.jsonl's earlier lines: add configurations to a run)
#        SUMMARY=1 (no runs: the table of the results.jsonl there is)
#        OUT=DIR (results there instead of bench/out/efficient)
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out/efficient}
mkdir -p "$out"
threads=${THREADS:-2}
repeat=${REPEAT:-1}
epochs=${EPOCHS:-3}
limit=${LIMIT:+--limit $LIMIT}
configs=${CONFIGS:-"dense sparse90 freeze-prog freeze-prog-cache freeze-cka sieve20 drop-data drop-batch grad-mask combined combined-cache combined-late combined-late-grow"}

opts_of() {
    case $1 in
    dense) echo "" ;;
    sparse90) echo "--sparse-train 0.9" ;;
    freeze-prog) echo "--freeze-from 2 --freeze-units 2" ;;
    freeze-cka) echo "--freeze-cka 0.99 --freeze-check 235" ;;
    sieve20) echo "--sieve 0.2" ;;
    drop-data) echo "--drop-data 0.3" ;;
    drop-batch) echo "--drop-batch 0.5" ;;
    grad-mask) echo "--grad-mask 0.5" ;;
    combined) echo "--sparse-train 0.9 --freeze-from 2 --freeze-units 2 --sieve 0.2" ;;
    freeze-prog-cache) echo "--freeze-from 2 --freeze-units 2 --cache-frozen 4096" ;;
    combined-cache) echo "--sparse-train 0.9 --freeze-from 2 --freeze-units 2 --sieve 0.2 --cache-frozen 4096" ;;
    combined-late) echo "--sparse-train 0.9 --freeze-from 3 --freeze-units 2 --sieve 0.2 --cache-frozen 4096" ;;
    combined-late-grow) echo "--sparse-train 0.9 --freeze-from 3 --freeze-units 2 --sieve 0.2 --cache-frozen 4096 --sparse-every 200 --sparse-grow 0.1" ;;
    *) echo "bench-efficient: unknown configuration $1" >&2; exit 2 ;;
    esac
}

log=$out/results.jsonl
if [ "${SUMMARY:-0}" = 1 ]; then repeat=0; else [ "${APPEND:-0}" = 1 ] || : > "$log"; fi
echo "bench-efficient: W1 fmnist-cnn, $epochs epochs, $threads threads, $repeat repeat(s), OPENBLAS_CORETYPE unset"
for r in $(seq 1 "$repeat"); do
    for c in $configs; do
        o=$(opts_of "$c")
        echo "== run $r: $c ($o)"
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        env -u OPENBLAS_CORETYPE "$pare" train --model fmnist-cnn --data fashion-mnist --epochs "$epochs" \
            --batch 128 --lr 0.05 --momentum 0.9 --wd 5e-4 --schedule cosine --seed 0 --threads "$threads" \
            $limit $o --out "$out/$c.pare" --checkpoint "$out/$c.ckpt" --json --quiet > "$out/run.jsonl"
        t1=$(date +%s.%N)
        /usr/bin/python3 - "$out/run.jsonl" "$c" "$r" "$t0" "$t1" "$o" >> "$log" <<'PY'
import json, sys
path, config, run, t0, t1, opts = sys.argv[1:]
ep = [json.loads(l) for l in open(path) if '"event":"epoch"' in l]
print(json.dumps({
    "config": config, "run": int(run), "options": opts,
    "test_acc": ep[-1].get("test_acc", -1),
    "flops": sum(e["flops"] for e in ep), "flops_dense": sum(e["flops_dense"] for e in ep),
    "train_seconds": sum(e["seconds"] for e in ep), "wall_seconds": float(t1) - float(t0),
    "examples": sum(e["examples"] for e in ep),
    "units_frozen_end": ep[-1]["units_frozen"], "sparsity_end": ep[-1]["sparsity"],
    "epoch_seconds": [e["seconds"] for e in ep], "epoch_test_acc": [e.get("test_acc", -1) for e in ep]}))
PY
        tail -n 1 "$log"
        rm -f "$out/$c.ckpt"
    done
done
/usr/bin/python3 - "$log" > "$out/results.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["config"], []).append(r)
med = {c: {k: statistics.median(x[k] for x in v) for k in ("test_acc", "flops", "train_seconds", "wall_seconds")}
       for c, v in by.items()}
n = max(len(v) for v in by.values())
print("W1 fmnist-cnn, Fashion-MNIST 60k/10k (or --limit), the WORKLOADS.md recipe; medians of %d run(s). "
      "Times are the training loop's (the epochs' `seconds`); a shared, noisy machine." % n)
print()
print("| configuration | test acc | Δ acc (points) | training TFLOP | FLOP ratio | train s | wall ratio | "
      "saving: wall / FLOP |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
d = med.get("dense")
for c, m in med.items():
    opts = by[c][0]["options"] or "(dense)"
    fr = m["flops"] / d["flops"] if d else float("nan")
    wr = m["train_seconds"] / d["train_seconds"] if d else float("nan")
    fs, ws = 1 - fr, 1 - wr
    agree = "%.2f" % (ws / fs) if abs(fs) > 0.02 else "n/a (no FLOP saving)"
    print("| %s `%s` | %.2f%% | %+.2f | %.1f | %.3f (%.2fx less) | %.0f | %.3f (%.2fx less) | %s |" % (
        c, opts, 100 * m["test_acc"], 100 * (m["test_acc"] - d["test_acc"]) if d else 0, m["flops"] * 1e-12,
        fr, 1 / fr if fr > 0 else 0, m["train_seconds"], wr, 1 / wr if wr > 0 else 0, agree))
PY
cat "$out/results.md"
