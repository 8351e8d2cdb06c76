// Side-by-side batch-1 latency of kiln and ONNX Runtime (CPU, one thread)
// on a list of ONNX models, in one process run so both see the same machine
// state. For each model: `kiln compile` (its wall time is printed), kiln's
// latency via kiln_bench_model (C++, runtime::Artifact), ONNX Runtime's via
// onnxruntime-node with intraOpNumThreads=1 and graphOptimizationLevel
// 'all'. Rounds alternate kiln and ORT so a noisy neighbour on the shared
// CPUs hits both sides; each side's median / p90 is the median over rounds.
//
// ORT is timed around `await session.run()`, which includes the JS binding
// (tensor wrapping, the N-API call, promise resolution). An Identity model
// measures that overhead; it is reported, and not subtracted.
//
// Usage (bench/run_compare.sh passes all of this):
//   node compare_ort.mjs --kiln BIN --bench-model BIN --ort-dir DIR
//        --workdir DIR --identity MODEL.onnx [--iterations N] [--warmup N]
//        [--rounds N] NAME=MODEL.onnx ...
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

function parseArgs(argv) {
  const opts = { iterations: 200, warmup: 20, rounds: 3, models: [] };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--kiln') opts.kiln = next();
    else if (a === '--bench-model') opts.benchModel = next();
    else if (a === '--ort-dir') opts.ortDir = next();
    else if (a === '--workdir') opts.workdir = next();
    else if (a === '--identity') opts.identity = next();
    else if (a === '--iterations') opts.iterations = Number(next());
    else if (a === '--warmup') opts.warmup = Number(next());
    else if (a === '--rounds') opts.rounds = Number(next());
    else if (a.includes('=')) {
      const eq = a.indexOf('=');
      opts.models.push({ name: a.slice(0, eq), path: a.slice(eq + 1) });
    } else throw new Error(`unknown argument ${a}`);
  }
  for (const k of ['kiln', 'benchModel', 'ortDir', 'workdir', 'identity'])
    if (!opts[k]) throw new Error(`missing --${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
  return opts;
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
// Nearest-rank percentile, as kiln_bench_model computes it.
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round((p / 100) * s.length) - 1))];
};

// "MACs: 693 K per sample" from `kiln inspect` -> 693e3 (3 significant
// digits: plenty for a GFLOP/s column).
function inspectMacs(kiln, model) {
  const out = run(kiln, ['inspect', model]).stdout;
  const m = out.match(/^MACs: ([\d.]+)\s*([KMGT]?) per sample/m);
  if (!m) return NaN;
  return Number(m[1]) * { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]];
}

function kilnLatency(opts, so) {
  const r = run(opts.benchModel, [so, '--json', '--iterations', String(opts.iterations), '--warmup', String(opts.warmup)]);
  return JSON.parse(r.stdout);
}

// Inputs with the shapes kiln used (batch 1) and the same value recipe; the
// values do not change either side's speed, the shapes must match.
function makeFeeds(ort, session, kilnInputs) {
  const feeds = {};
  session.inputNames.forEach((name, i) => {
    const info = kilnInputs.find((k) => k.name === name) ?? kilnInputs[i];
    const n = info.dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    let s = 12345;
    for (let j = 0; j < n; ++j) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      data[j] = (s >>> 8) / (1 << 23) - 1;
    }
    feeds[name] = new ort.Tensor('float32', data, info.dims);
  });
  return feeds;
}

// Wall time per run, plus the process's CPU time (user + system, all of
// Node's threads: with one intra-op thread that is ORT's thread plus the
// binding) so a ratio that ignores time stolen by other processes can be
// formed, as kiln_bench_model does with its thread CPU time.
async function ortLatency(session, feeds, opts) {
  for (let i = 0; i < opts.warmup; ++i) await session.run(feeds);
  const us = [], cpuUs = [];
  for (let i = 0; i < opts.iterations; ++i) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    us.push(Number(process.hrtime.bigint() - t0) / 1e3);
    const c = process.cpuUsage(c0);
    cpuUs.push(c.user + c.system);
  }
  return { median_us: median(us), p90_us: percentile(us, 90), cpu_median_us: median(cpuUs) };
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const require = createRequire(path.join(path.resolve(opts.ortDir), 'package.json'));
  const ort = require('onnxruntime-node');
  const sessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };

  const peak = JSON.parse(run(opts.benchModel, ['--peak', '--json']).stdout);
  console.log(`onnxruntime-node ${ort.env.versions?.node ?? '?'}; single-core FP32 peak ${fmt(peak.peak_gflops)} GFLOP/s ` +
              `(ymm ${fmt(peak.ymm_gflops)}, zmm ${fmt(peak.zmm_gflops)}; ${peak.method})`);

  const rows = [];
  for (const model of opts.models) {
    const so = path.join(opts.workdir, `${model.name}.so`);
    const row = { name: model.name };
    try {
      const t0 = process.hrtime.bigint();
      const c = run(opts.kiln, ['compile', model.path, '-o', so]);
      row.compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
      console.log(`${model.name}: kiln compile ${fmt(row.compileMs, 0)} ms wall (${c.stderr.trim().replace(/^kiln: /, '')})`);
      row.macs = inspectMacs(opts.kiln, model.path);
      const session = await ort.InferenceSession.create(model.path, sessionOptions);
      let feeds = null;
      const k = [], o = [];
      for (let r = 0; r < opts.rounds; ++r) {
        const kr = kilnLatency(opts, so);
        feeds ??= makeFeeds(ort, session, kr.inputs);
        k.push(kr);
        o.push(await ortLatency(session, feeds, opts));
      }
      row.kiln = { median: median(k.map((x) => x.median_us)), p90: median(k.map((x) => x.p90_us)),
                   cpuMedian: median(k.map((x) => x.cpu_median_us)) };
      row.ort = { median: median(o.map((x) => x.median_us)), p90: median(o.map((x) => x.p90_us)),
                  cpuMedian: median(o.map((x) => x.cpu_median_us)) };
      await session.release?.();
    } catch (e) {
      row.error = String(e.message ?? e).split('\n').slice(0, 3).join(' | ');
      console.log(`${model.name}: ${row.error}`);
    }
    rows.push(row);
  }

  // The binding's fixed cost: Identity on a 1x3x64x64 tensor does no work.
  // Measured last, with the binding warm (measured first it read ~2x high).
  const identity = await ort.InferenceSession.create(opts.identity, sessionOptions);
  const idFeeds = makeFeeds(ort, identity, [{ name: identity.inputNames[0], dims: [1, 3, 64, 64] }]);
  const idRounds = [];
  for (let r = 0; r < opts.rounds; ++r) idRounds.push(await ortLatency(identity, idFeeds, opts));
  const idLat = { median_us: median(idRounds.map((x) => x.median_us)), p90_us: median(idRounds.map((x) => x.p90_us)),
                  cpu_median_us: median(idRounds.map((x) => x.cpu_median_us)) };
  console.log(`ORT JS binding overhead (Identity 1x3x64x64): median ${fmt(idLat.median_us)} us, p90 ${fmt(idLat.p90_us)} us, ` +
              `CPU time median ${fmt(idLat.cpu_median_us)} us`);

  const header = ['model', 'MMACs', 'compile ms', 'kiln med us', 'kiln p90 us', 'ORT med us', 'ORT p90 us',
                  'ORT/kiln (wall)', 'ORT/kiln (CPU)', 'kiln GFLOP/s (CPU)', '% peak'];
  const table = rows.map((r) => {
    if (r.error || !r.kiln) return [r.name, 'error', '', '', '', '', '', '', '', '', ''];
    // Per CPU second, like the peak (see bench/fma_peak.cpp).
    const gflops = (2 * r.macs) / (r.kiln.cpuMedian * 1e3);
    return [r.name, fmt(r.macs / 1e6, 2), fmt(r.compileMs, 0), fmt(r.kiln.median), fmt(r.kiln.p90), fmt(r.ort.median),
            fmt(r.ort.p90), fmt(r.ort.median / r.kiln.median, 2) + 'x',
            fmt(r.ort.cpuMedian / r.kiln.cpuMedian, 2) + 'x', fmt(gflops), fmt((100 * gflops) / peak.peak_gflops)];
  });
  console.log(`\nbatch 1, one thread each side; ${opts.rounds} rounds x ${opts.iterations} runs (after ${opts.warmup} warm-up), ` +
              `median over rounds; ` +
              `ORT times include ~${fmt(idLat.median_us)} us of JS binding overhead (not subtracted); ` +
              `CPU = per-run CPU-time medians (kiln: its thread; ORT: the Node process)`);
  console.log('| ' + header.join(' | ') + ' |');
  console.log('|' + header.map((h, i) => (i ? '---:' : '---')).join('|') + '|');
  for (const t of table) console.log('| ' + t.join(' | ') + ' |');
}

main().catch((e) => {
  console.error(`compare_ort: ${e.stack ?? e}`);
  process.exit(1);
});
