// ONNX Runtime side of bench/compare: one process per measurement.
//
//   node compare_ort_worker.mjs --ort-dir DIR --version
//       prints {"onnxruntime_node_version": ..., "node_version": ...}
//   node compare_ort_worker.mjs --ort-dir DIR --model M.onnx --shape NxCxHxW
//        --threads T --warmup W --iterations N [--max-seconds S] [--max-warmup-seconds S]
//       prints one JSON object: per-run milliseconds' min / median / mean /
//       p90, each run timed on its own around `await session.run()` (so the
//       JS binding's tensor wrapping, N-API call and promise are included);
//       the warm-up and the timed runs stop early once they took their S seconds
//   node compare_ort_worker.mjs --ort-dir DIR --model M.onnx --check IN.npy:OUT.npy ...
//       runs each input once (f32 .npy) and writes the first output as .npy
//
// Session options: CPU provider, graphOptimizationLevel 'all',
// intraOpNumThreads T (1 for --check), interOpNumThreads 1, sequential.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

function parseArgs(argv) {
  const o = { check: [] };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--ort-dir') o.ortDir = next();
    else if (a === '--version') o.version = true;
    else if (a === '--model') o.model = next();
    else if (a === '--shape') o.shape = next().split('x').map(Number);
    else if (a === '--threads') o.threads = Number(next());
    else if (a === '--warmup') o.warmup = Number(next());
    else if (a === '--iterations') o.iterations = Number(next());
    else if (a === '--max-seconds') o.maxSeconds = Number(next());
    else if (a === '--max-warmup-seconds') o.maxWarmupSeconds = Number(next());
    else if (a === '--check') o.check.push(next());
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.ortDir) throw new Error('missing --ort-dir');
  return o;
}

// ---- .npy (float32, little-endian, C order) --------------------------------

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.readUInt32BE(0) !== 0x934e554d || buf.toString('latin1', 4, 6) !== 'PY') throw new Error(`${file}: not .npy`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header))
    throw new Error(`${file}: expected little-endian float32 in C order, header ${header.trim()}`);
  const dims = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = dims.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; ++i) data[i] = buf.readFloatLE(start + 4 * i);
  return { dims, data };
}

function writeNpy(file, dims, data) {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.writeUInt32BE(0x934e554d, 0);
  pre.write('PY', 4, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; ++i) body.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

// ---- timing -----------------------------------------------------------------

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const n = s.length;
  return { runs: n, min_ms: s[0], median_ms: s[Math.floor((n - 1) / 2)], mean_ms: s.reduce((a, b) => a + b, 0) / n,
           p90_ms: s[Math.min(n - 1, Math.max(0, Math.round(0.9 * n) - 1))] };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const require = createRequire(path.join(path.resolve(o.ortDir), 'package.json'));
  const ort = require('onnxruntime-node');
  if (o.version) {
    const version = require('onnxruntime-node/package.json').version;
    console.log(JSON.stringify({ onnxruntime_node_version: version, node_version: process.version }));
    return;
  }
  if (!o.model) throw new Error('missing --model');
  const session = await ort.InferenceSession.create(o.model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: o.check.length ? 1 : o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];

  if (o.check.length) {
    for (const pair of o.check) {
      const [src, dst] = pair.split(':');
      const x = readNpy(src);
      const r = await session.run({ [inputName]: new ort.Tensor('float32', x.data, x.dims) });
      writeNpy(dst, r[outputName].dims, r[outputName].data);
    }
    return;
  }

  for (const k of ['shape', 'threads', 'warmup', 'iterations'])
    if (o[k] === undefined || (typeof o[k] === 'number' && !Number.isFinite(o[k]))) throw new Error(`missing --${k}`);
  const n = o.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = 12345;  // uniform [0, 1), as kiln bench fills its inputs
  for (let j = 0; j < n; ++j) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[j] = (s >>> 8) / (1 << 24);
  }
  const feeds = { [inputName]: new ort.Tensor('float32', data, o.shape) };
  let t0 = process.hrtime.bigint();
  await session.run(feeds);
  const firstMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const warmEnd = process.hrtime.bigint() + BigInt(Math.round((o.maxWarmupSeconds ?? 1e9) * 1e9));
  let warmup = 0;
  while (warmup < o.warmup && process.hrtime.bigint() < warmEnd) {
    await session.run(feeds);
    ++warmup;
  }
  const ms = [];
  const capMs = (o.maxSeconds ?? Infinity) * 1e3;
  let totalMs = 0;
  for (let i = 0; i < o.iterations && totalMs < capMs; ++i) {
    t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    totalMs += ms[ms.length - 1];
  }
  console.log(JSON.stringify({ ...stats(ms), first_run_ms: firstMs, warmup_runs: warmup, threads: o.threads,
                               batch: o.shape[0] }));
  await session.release?.();
}

main().catch((e) => {
  console.error(`compare_ort_worker: ${e.stack ?? e}`);
  process.exit(1);
});
