// Runs one ONNX model once under ONNX Runtime (onnxruntime-node, CPU) and writes its output,
// the oracle of make bench-onnx.
//
// usage: node bench/peers/ort_run.js MODEL.onnx INPUT.bin OUTPUT.bin [BATCH] [SEED]
//
// INPUT.bin holds float32 little-endian samples, NCHW. When it does not exist it is created:
// BATCH (1) samples of the model's input shape, seeded pseudo-normal values (SEED, 1). The
// output is written as float32 little-endian; one JSON line on stdout says the shapes.
// ORT_OPTIMIZED=PATH saves the model as ONNX Runtime optimised it (to see which ops ran:
// QLinearConv for a QDQ model that runs in int8).
'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');
const { normals } = require('./normals');

async function main() {
  const [model, inPath, outPath, batchArg, seedArg] = process.argv.slice(2);
  if (!model || !inPath || !outPath) {
    console.error('usage: node ort_run.js MODEL.onnx INPUT.bin OUTPUT.bin [BATCH] [SEED]');
    process.exit(2);
  }
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  if (process.env.ORT_OPTIMIZED) opts.optimizedModelFilePath = process.env.ORT_OPTIMIZED;
  const session = await ort.InferenceSession.create(model, opts);
  const meta = session.inputMetadata && session.inputMetadata[0];
  const shape = meta && meta.shape;
  if (!shape || shape.length !== 4 || shape.slice(1).some((d) => typeof d !== 'number')) {
    console.error(`ort_run: ${model}: the input shape is not N x C x H x W with known C, H, W`);
    process.exit(1);
  }
  const per = shape[1] * shape[2] * shape[3];
  let data;
  if (fs.existsSync(inPath)) {
    const buf = fs.readFileSync(inPath);
    if (buf.length % (4 * per) !== 0) {
      console.error(`ort_run: ${inPath}: ${buf.length} bytes is not a whole number of samples`);
      process.exit(1);
    }
    data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  } else {
    const batch = Number(batchArg || 1);
    data = normals(batch * per, Number(seedArg || 1));
    fs.writeFileSync(inPath, Buffer.from(data.buffer));
  }
  const n = data.length / per;
  let outs = [];
  // one sample at a time: the exported models may fix the batch to 1
  for (let i = 0; i < n; i++) {
    const x = new ort.Tensor('float32', data.subarray(i * per, (i + 1) * per), [1, shape[1], shape[2], shape[3]]);
    const r = await session.run({ [session.inputNames[0]]: x });
    outs.push(Float32Array.from(r[session.outputNames[0]].data));
  }
  const total = outs.reduce((a, o) => a + o.length, 0);
  const all = new Float32Array(total);
  let at = 0;
  for (const o of outs) { all.set(o, at); at += o.length; }
  fs.writeFileSync(outPath, Buffer.from(all.buffer));
  console.log(JSON.stringify({ model, samples: n, input: shape.slice(1), outputs_per_sample: total / n }));
}

main().catch((e) => { console.error(`ort_run: ${e.message}`); process.exit(1); });
