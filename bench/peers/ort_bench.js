// ONNX Runtime (onnxruntime-node, CPU) latency of one ONNX model: the dense peer of make bench-engine and make bench-onnx.
//
// usage: node bench/peers/ort_bench.js MODEL.onnx THREADS RUNS WARMUP BLOCKS [NAME [VARIANT]]
//
// One session with intraOpNumThreads THREADS, interOpNumThreads 1, graph optimisation level
// 'all', sequential execution; input batch 1 x 3 x 224 x 224 of seeded pseudo-normal values
// (or one sample of the model's own input shape when it is known but for a symbolic
// batch). WARMUP untimed runs, then BLOCKS blocks of RUNS timed runs; prints one JSON line:
// median and p90 over all runs (nearest rank, as pare bench), min, and each block's median. NAME labels the line (default: the file name),
// VARIANT its kind (default 'dense'; bench/qdq.sh says 'float32' and 'int8-qdq': a QDQ model,
// which ONNX Runtime fuses into QLinearConv and runs in int8). ORT_OPTIMIZED=PATH saves the
// model as ONNX Runtime optimised it, to see which kernels ran.
'use strict';

const path = require('path');
const ort = require('onnxruntime-node');
const { normals } = require('./normals');

function nearestRank(sorted, frac) {
  const i = Math.floor(frac * (sorted.length - 1) + 0.5);
  return sorted[Math.min(Math.max(i, 0), sorted.length - 1)];
}

function inputDims(session) {
  const meta = session.inputMetadata && session.inputMetadata[0];
  const shape = meta && meta.shape;
  if (Array.isArray(shape) && shape.length === 4 && shape.every((d) => Number.isInteger(d) && d > 0)) return shape;
  // a symbolic batch (pare's exports say "N"): one sample of the rest
  if (Array.isArray(shape) && shape.length === 4 && shape.slice(1).every((d) => Number.isInteger(d) && d > 0)) {
    return [1, ...shape.slice(1)];
  }
  return [1, 3, 224, 224];
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 5) {
    process.stderr.write('usage: node ort_bench.js MODEL.onnx THREADS RUNS WARMUP BLOCKS [NAME]\n');
    process.exit(2);
  }
  const [file, threads, runs, warmup, blocks] = [args[0], ...args.slice(1, 5).map(Number)];
  const name = args[5] || path.basename(file, '.onnx');
  const variant = args[6] || 'dense';
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  };
  if (process.env.ORT_OPTIMIZED) opts.optimizedModelFilePath = process.env.ORT_OPTIMIZED;
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(file, opts);
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const dims = inputDims(session);
  const count = dims.reduce((a, d) => a * d, 1);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', normals(count, 12345), dims) };

  for (let i = 0; i < warmup; i++) await session.run(feeds);
  const all = [];
  const blockMedians = [];
  for (let b = 0; b < blocks; b++) {
    const block = [];
    for (let i = 0; i < runs; i++) {
      const start = process.hrtime.bigint();
      await session.run(feeds);
      block.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    block.sort((x, y) => x - y);
    blockMedians.push(+nearestRank(block, 0.5).toFixed(4));
    all.push(...block);
  }
  all.sort((x, y) => x - y);
  console.log(JSON.stringify({
    engine: 'ort',
    model: name,
    variant,
    threads,
    ort: require('onnxruntime-node/package.json').version,
    runs_per_block: runs,
    blocks,
    warmup,
    median_ms: +nearestRank(all, 0.5).toFixed(4),
    p90_ms: +nearestRank(all, 0.9).toFixed(4),
    min_ms: +all[0].toFixed(4),
    block_medians_ms: blockMedians,
    load_s: +loadS.toFixed(3),
  }));
  await session.release();
}

main().catch((e) => {
  process.stderr.write(`ort_bench.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
