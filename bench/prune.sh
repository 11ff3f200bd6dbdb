#!/bin/sh
# make bench-prune: W1 (fmnist-cnn, 3 epochs, the recipe of WORKLOADS.md), then
# pare prune for each scheme and method at several sparsities, each followed by
# 2 epochs of fine-tuning (lr 0.01, cosine), beside PyTorch's global L1
# unstructured pruning with the same fine-tuning, in the same run.
# usage: bench/prune.sh PARE   env: THREADS=2 SPARSITIES="0.5 0.75 0.9 0.95"
#        SET=full|all|quick (quick: unstructured, pattern, 2:4 at 0.9 only; all: full, then every
#        method on every other scheme too, about 14 hours more at 1 thread) REUSE=1 (keep the
#        trained W1, the peer's lines and every run already logged, and go on with the rest: the
#        full set takes about 3 hours at 2 threads, so it can be run in parts) PART=k/n (below)
#        LOG=file (default bench/results/prune.jsonl, kept in the tree)
# Order: what the targets need first (one-shot unstructured, pattern and 2:4, every method at
# 90% and on 2:4), then one-shot for the other schemes, then every method at the other
# sparsities, then (SET=all) every method on the other schemes.
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out/prune
mkdir -p "$out"
threads=${THREADS:-2}
sps=${SPARSITIES:-"0.5 0.75 0.9 0.95"}
set_=${SET:-full}
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    "$here/../scripts/deps.sh" --bench || { echo "bench-prune: PyTorch (python3-torch) is needed for the peer" >&2; exit 1; }
fi
# The log is kept in the tree (bench/results/), so a run that takes longer than one machine's
# life can be resumed on the next: W1 is retrained there, and if its file is byte-identical to
# the one the log was made with (training is deterministic at a given thread count), the logged
# runs still hold and only the missing ones run.
log=${LOG:-$here/results/prune.jsonl}
mkdir -p "$(dirname "$log")"
base=$out/w1.pare
# PART=k/n runs only every n-th run from the k-th on, so n processes (one per core, THREADS=1)
# can share the list; they append to the same log, one line per run. Part 1 trains W1 and runs
# the peer; start the others once W1 is there.
part=${PART:-1/1}
part_k=${part%/*}
part_n=${part#*/}
if [ "$part_k" != 1 ] && [ ! -f "$base" ]; then
    echo "bench-prune: no W1 yet ($base): start PART=1/$part_n first, which trains it" >&2
    exit 1
fi
logged_sum() { sed -n 's/.*"stage": *"base".*"sha256": *"\([0-9a-f]*\)".*/\1/p' "$log" 2>/dev/null | head -n 1; }
if [ "${REUSE:-0}" != 1 ] || [ ! -f "$base" ]; then
    echo "== training W1 (pare, 3 epochs)"
    env -u OPENBLAS_CORETYPE "$pare" train --model fmnist-cnn --epochs 3 --threads "$threads" --out "$base" \
        --checkpoint "$out/w1.ckpt" --quiet --json > "$out/w1.jsonl"
    sum=$(sha256sum "$base" | cut -d' ' -f1)
    if [ "${REUSE:-0}" = 1 ] && [ "$(logged_sum)" = "$sum" ]; then
        echo "== W1 is byte-identical to the logged one ($sum): keeping the logged runs"
    else
        [ "${REUSE:-0}" = 1 ] && [ -s "$log" ] && echo "== W1 differs from the logged one: starting the log again"
        sed "s/^{/{\"engine\":\"pare\",\"stage\":\"base\",\"sha256\":\"$sum\",/" "$out/w1.jsonl" > "$log"
    fi
fi
# The peer (part 1): PyTorch trains W1, then prunes it at each sparsity with no line in the log
# yet (a run cut short by the machine's end goes on where it stopped; its dense line is kept once).
if [ "$part_k" = 1 ]; then
    todo=""
    for sp in $sps; do
        grep -q "\"engine\": \"torch\".*\"target\": $sp," "$log" || todo="$todo $sp"
    done
    if [ -n "$todo" ]; then
        echo "== PyTorch: training W1, then global L1 at$todo"
        dense_logged=$(grep -c '"engine": "torch", "stage": "dense"' "$log" || true)
        (cd "$here/peers" && env -u OPENBLAS_CORETYPE /usr/bin/python3 torch_prune.py "$threads" $todo) |
            while IFS= read -r line; do
                case $line in *'"stage": "dense"'*) [ "$dense_logged" -gt 0 ] && continue ;; esac
                printf '%s\n' "$line" >> "$log"
            done
    fi
fi
nrun=0
run() { # tag, then pare prune options
    tag=$1
    shift
    nrun=$((nrun + 1))
    [ $(((nrun - 1) % part_n)) = $((part_k - 1)) ] || return 0
    if grep -F "\"tag\": \"$tag\"" "$log" | grep -qv '"failed"'; then
        echo "== pare prune $tag: logged already"
        return 0
    fi
    echo "== pare prune $tag"
    env -u OPENBLAS_CORETYPE "$pare" prune "$base" --threads "$threads" --finetune 2 --quiet --json \
        --out "$out/tmp$part_k.pare" "$@" |
        /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("layers",None); d["engine"]="pare"; d["tag"]=sys.argv[1]; print(json.dumps(d))' "$tag" >> "$log" ||
        echo "{\"engine\":\"pare\",\"tag\":\"$tag\",\"failed\":true}" >> "$log"
}
if [ "$set_" = quick ]; then
    sps=0.9
fi
for sp in $sps; do
    run "oneshot unstructured $sp" --scheme unstructured --global --sparsity "$sp"
done
run "oneshot 2:4" --scheme 2:4
case " $sps " in *" 0.9 "*) run "oneshot pattern 0.9" --scheme pattern --sparsity 0.9 ;; esac
methods() { # sparsity: every method on unstructured and pattern at it
    for m in gmp imp admm admm-progressive bip; do
        run "$m unstructured $1" --method "$m" --scheme unstructured --global --sparsity "$1" --imp-rounds 3
        [ "$1" = 0.5 ] || run "$m pattern $1" --method "$m" --scheme pattern --sparsity "$1" --imp-rounds 3 --rho 0.1
    done
}
case " $sps " in *" 0.9 "*) methods 0.9 ;; esac
for m in gmp imp admm admm-progressive bip; do
    run "$m 2:4" --method "$m" --scheme 2:4 --imp-rounds 3
done
if [ "$set_" = full ] || [ "$set_" = all ]; then
    for s in block:4x4 punched:8x4 darb pattern filter channel column auto; do
        for sp in $sps; do
            case $s in pattern) [ "$sp" = 0.5 ] && continue ;; esac
            run "oneshot $s $sp" --scheme "$s" --sparsity "$sp"
        done
    done
    for s in 4:8 1:4; do
        run "oneshot $s" --scheme "$s"
    done
fi
for sp in $sps; do
    [ "$sp" = 0.9 ] || methods "$sp"
done
if [ "$set_" = all ]; then
    for s in block:4x4 darb punched:8x4 filter channel column auto; do
        for sp in $sps; do
            for m in gmp imp admm admm-progressive bip; do
                run "$m $s $sp" --method "$m" --scheme "$s" --sparsity "$sp" --imp-rounds 3
            done
        done
    done
fi
/usr/bin/python3 "$here/prune_summary.py" "$log"
