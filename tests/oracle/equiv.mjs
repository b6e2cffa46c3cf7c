#!/usr/bin/env node
// equiv.mjs — onnxruntime equivalence oracle for bnfold.
//
// Runs an ORIGINAL and a FOLDED ONNX model in onnxruntime-node (CPU, graph
// optimisations disabled so ORT's own fusions cannot hide a difference) on
// identical, seeded, pseudo-random inputs and compares every output by name.
//
// Usage:
//   node equiv.mjs ORIGINAL.onnx FOLDED.onnx [options]
//   node equiv.mjs --pairs FILE [options]        one JSON line per pair
//   node equiv.mjs --ref DIR MODEL.onnx [options] compare MODEL against the
//                                                 ONNX test_data_set DIR
//                                                 (input_K.pb / output_K.pb)
//
// Options:
//   --seed N        PRNG seed (default 1)
//   --rtol X        relative tolerance (default 1e-5)
//   --atol X        absolute tolerance (default 1e-5)
//   --rtol16 X      relative tolerance for float16/bfloat16 outputs (default 1e-2)
//   --atol16 X      absolute tolerance for float16/bfloat16 outputs (default 1e-2)
//   --rel-floor X   denominator floor of max_rel_err (default: atol)
//   --runs N        independent random input sets (default 2; seeds N, N+1, ...)
//   --dim N         size for symbolic dims that are not batch/spatial (default 2)
//   --batch N       size for a symbolic first dim (default 1)
//   --spatial N     size for symbolic dims at index >= 2 of rank >= 3 inputs
//                   (default 32, a multiple of the usual total stride)
//   --shape NAME=D1,D2,...   force the shape of input NAME (repeatable)
//   --int-range LO,HI        inclusive range of integer inputs (default 0,1)
//   --threads N     ORT intra-op threads (default 0 = ORT default)
//   --node-modules DIR       where onnxruntime-node is installed
//   --expose-bn     also compare the output tensor of every BatchNormalization
//                   of the original's main graph (it keeps its name when folded:
//                   the layer then produces it), by adding those tensors as extra
//                   graph outputs of both models in memory. Much stronger than
//                   final outputs alone (softmax heads hide a lot).
//   --expose NAME   also compare the intermediate tensor NAME (repeatable)
//   --peak-rtol X   exposed tensors only: an element also passes when
//                   |a-b| <= X * max|a over the tensor| (default 5e-5). fp32
//                   rounding of a fold is ~1e-6 of the tensor's peak and grows
//                   through deep nets (1e-5 seen in onnx-light resnet50); a
//                   wrong fold is off by far more. 0 = element criterion only.
//   --json          single mode: print one JSON object instead of text
//
// Pass criterion per element: |a-b| <= atol OR |a-b| <= rtol*|a| (a = original;
// NaN matches NaN, +-Inf matches the same Inf). Per output it reports
// max_abs_err, max_rel_err (|a-b| / max(|a|, floor), floor = atol unless
// --rel-floor is given, so values that are ~0 do not blow the ratio up),
// n (elements), n_fail and margin = max |a-b| / max(atol, rtol*|a|): the
// output passes iff margin <= 1. worst_index/worst_a/worst_b locate it.
//
// Exit codes: 0 all outputs equivalent, 1 some output differs (values, names,
// shapes or dtypes), 2 load/run/usage error. In --pairs mode: 2 if any pair
// errored, else 1 if any differed, else 0.
//
// Pairs file: one pair per line, `ORIG<TAB>FOLDED[<TAB>rtol<TAB>atol]`; blank
// lines and lines starting with '#' are ignored. A line may instead be a JSON
// object {"original", "folded", "rtol", "atol", "rtol16", "atol16", "ref", "ref_rtol", "ref_atol",
// "compare", "expose_bn", "expose", "shapes", "seed", "runs", "id"}; with "ref"
// (a test_data_set dir) the folded model (and the original, when given) is also
// compared against the stored outputs (default rtol 1e-3, atol 1e-4), and
// "compare": false skips the original-vs-folded comparison. Every output line is a JSON object with
// the fields of --json plus "original", "folded" and "id".

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ONNX_TYPES, Pb, parseValueInfo } from './onnx_wire.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- arguments

function usage(msg) {
  if (msg) process.stderr.write(`equiv.mjs: ${msg}\n`);
  process.stderr.write(
    'usage: node equiv.mjs ORIGINAL.onnx FOLDED.onnx [--seed N] [--rtol X] [--atol X] [--runs N] [--json]\n' +
    '       node equiv.mjs --pairs FILE [options]\n' +
    '       node equiv.mjs --ref TEST_DATA_SET_DIR MODEL.onnx [options]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    seed: 1, rtol: 1e-5, atol: 1e-5, rtol16: 1e-2, atol16: 1e-2, runs: 2,
    dim: 2, batch: 1, spatial: 32, shapes: {}, intLo: 0, intHi: 1, threads: 0,
    json: false, peakRtol: 5e-5, exposeBn: false, expose: [], pairs: null, ref: null, nodeModules: null, positional: [],
  };
  const num = (name, v) => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x)) usage(`${name} needs a number, got ${v}`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    let key = a, val;
    if (a.startsWith('--') && eq > 0) { key = a.slice(0, eq); val = a.slice(eq + 1); }
    const next = () => (val !== undefined ? val : argv[++i]);
    switch (key) {
      case '--seed': o.seed = num(key, next()) >>> 0; break;
      case '--rtol': o.rtol = num(key, next()); break;
      case '--atol': o.atol = num(key, next()); break;
      case '--rtol16': o.rtol16 = num(key, next()); break;
      case '--atol16': o.atol16 = num(key, next()); break;
      case '--rel-floor': o.relFloor = num(key, next()); break;
      case '--runs': o.runs = Math.max(1, num(key, next()) | 0); break;
      case '--dim': o.dim = num(key, next()) | 0; break;
      case '--batch': o.batch = num(key, next()) | 0; break;
      case '--spatial': o.spatial = num(key, next()) | 0; break;
      case '--threads': o.threads = num(key, next()) | 0; break;
      case '--json': o.json = true; break;
      case '--expose-bn': o.exposeBn = true; break;
      case '--peak-rtol': o.peakRtol = num(key, next()); break;
      case '--expose': o.expose.push(next()); break;
      case '--pairs': o.pairs = next(); break;
      case '--ref': o.ref = next(); break;
      case '--node-modules': o.nodeModules = next(); break;
      case '--shape': {
        const s = next() || '';
        const k = s.lastIndexOf('=');
        if (k <= 0) usage(`--shape wants NAME=D1,D2,..., got ${s}`);
        const dims = s.slice(k + 1) === '' ? [] : s.slice(k + 1).split(/[,x]/).map((d) => num('--shape', d));
        o.shapes[s.slice(0, k)] = dims;
        break;
      }
      case '--int-range': {
        const [lo, hi] = (next() || '').split(',').map((d) => num('--int-range', d));
        o.intLo = lo; o.intHi = hi;
        break;
      }
      case '-h': case '--help': usage();
      // falls through (usage exits)
      default:
        if (a.startsWith('--')) usage(`unknown option ${a}`);
        o.positional.push(a);
    }
  }
  return o;
}

// ---------------------------------------------------------------- ORT loading

function loadOrt(nodeModules) {
  const tries = [];
  if (nodeModules) tries.push(path.resolve(nodeModules, 'onnxruntime-node'));
  if (process.env.BNFOLD_NODE_MODULES) tries.push(path.resolve(process.env.BNFOLD_NODE_MODULES, 'onnxruntime-node'));
  tries.push('onnxruntime-node');
  tries.push(path.resolve(HERE, '..', 'node_modules', 'onnxruntime-node'));
  const req = createRequire(import.meta.url);
  const errors = [];
  for (const t of tries) {
    try {
      return req(t);
    } catch (e) {
      errors.push(`${t}: ${e.message.split('\n')[0]}`);
    }
  }
  throw new Error('cannot load onnxruntime-node (install it with ' +
    '`cd tests && ONNXRUNTIME_NODE_INSTALL=skip npm ci`): ' + errors.join('; '));
}

// ---------------------------------------------------------------- protobuf
// (the reader, Pb, is in onnx_wire.mjs)

function encVarint(n) {
  const b = [];
  while (n > 127) { b.push((n & 127) | 128); n = Math.floor(n / 128); }
  b.push(n);
  return Buffer.from(b);
}
function encField(no, payload) { return Buffer.concat([encVarint(no * 8 + 2), encVarint(payload.length), payload]); }

// Main-graph facts needed to expose intermediates: BN output names, graph
// output names, every tensor name produced by a main-graph node.
function parseGraphNodes(buf) {
  let graph = null;
  for (const [f, wt, v] of new Pb(buf).fields()) if (f === 7 && wt === 2) graph = v;
  const res = { bnOutputs: [], outputs: new Set(), produced: new Set() };
  if (!graph) return res;
  for (const [f, , v] of graph.fields()) {
    if (f === 12) res.outputs.add(parseValueInfo(v).name);
    else if (f === 1) {
      let op = '', domain = '';
      const outs = [];
      for (const [nf, , nv] of v.fields()) {
        if (nf === 2) outs.push(nv.string());
        else if (nf === 4) op = nv.string();
        else if (nf === 7) domain = nv.string();
      }
      for (const o of outs) if (o) res.produced.add(o);
      if (op === 'BatchNormalization' && (domain === '' || domain === 'ai.onnx') && outs[0]) res.bnOutputs.push(outs[0]);
    }
  }
  return res;
}

// Model bytes with extra graph outputs appended. Protobuf merges a repeated
// embedded message field (ModelProto.graph = 7), so appending a second graph
// field that only holds GraphProto.output (12) entries {name} adds outputs
// without re-serialising the model; ORT infers their types.
function withExtraOutputs(buf, names) {
  if (!names.length) return buf;
  const vis = names.map((n) => encField(12, encField(1, Buffer.from(n, 'utf8'))));
  return Buffer.concat([buf, encField(7, Buffer.concat(vis))]);
}

// Graph inputs that are not initializers (what a caller must feed).
function parseModelInputs(file) {
  const buf = fs.readFileSync(file);
  const model = new Pb(buf);
  let graph = null;
  for (const [f, wt, v] of model.fields()) if (f === 7 && wt === 2) graph = v;
  if (!graph) throw new Error(`${file}: no graph in model`);
  const inputs = [], inits = new Set();
  for (const [f, , v] of graph.fields()) {
    if (f === 11) inputs.push(parseValueInfo(v));
    else if (f === 5 || f === 15) {
      // TensorProto.name = 8; SparseTensorProto.values = 1 (a TensorProto)
      const t = f === 5 ? v : [...v.fields()].filter(([ff]) => ff === 1).map(([, , vv]) => vv)[0];
      if (!t) continue;
      for (const [tf, , tv] of t.fields()) if (tf === 8) inits.add(tv.string());
    }
  }
  return inputs.filter((i) => !inits.has(i.name));
}

// TensorProto file -> {name, type, dims, data(typed array)}.
function readTensorProto(file) {
  const buf = fs.readFileSync(file);
  const r = new Pb(buf);
  const t = { name: '', dtype: 0, dims: [], raw: null, floats: [], ints32: [], ints64: [], doubles: [], uints64: [], external: false };
  const packedOrOne = (wt, v, readOne, out) => {
    if (wt === 2) { while (!v.eof()) out.push(readOne(v)); } else out.push(readOne(v));
  };
  for (const [f, wt, v] of r.fields()) {
    switch (f) {
      case 1: packedOrOne(wt, v, (x) => Number(x.varint64()), t.dims); break;
      case 2: t.dtype = v.varint(); break;
      case 4: packedOrOne(wt, v, (x) => { const y = x.buf.readFloatLE(x.pos); x.pos += 4; return y; }, t.floats); break;
      case 5: packedOrOne(wt, v, (x) => Number(x.varint64()), t.ints32); break;
      case 7: packedOrOne(wt, v, (x) => x.varint64(), t.ints64); break;
      case 8: t.name = v.string(); break;
      case 9: t.raw = v.bytes(); break;
      case 10: packedOrOne(wt, v, (x) => { const y = x.buf.readDoubleLE(x.pos); x.pos += 8; return y; }, t.doubles); break;
      case 11: packedOrOne(wt, v, (x) => BigInt.asUintN(64, x.varint64()), t.uints64); break;
      case 14: t.external = v.varint() === 1; break;
      default: break;
    }
  }
  const type = ONNX_TYPES[t.dtype];
  if (t.external) throw new Error(`${file}: external data not supported`);
  const n = t.dims.reduce((a, b) => a * b, 1);
  const Ctor = {
    float32: Float32Array, uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
    int32: Int32Array, int64: BigInt64Array, bool: Uint8Array, float16: Uint16Array, float64: Float64Array,
    uint32: Uint32Array, uint64: BigUint64Array,
  }[type];
  if (!Ctor) throw new Error(`${file}: unsupported tensor type ${type || t.dtype}`);
  let data;
  if (t.raw) {
    const copy = Buffer.from(t.raw); // aligned copy
    data = new Ctor(copy.buffer, copy.byteOffset, copy.byteLength / Ctor.BYTES_PER_ELEMENT);
    data = data.slice();
  } else if (type === 'float32') data = Float32Array.from(t.floats);
  else if (type === 'float64') data = Float64Array.from(t.doubles);
  else if (type === 'int64') data = BigInt64Array.from(t.ints64);
  else if (type === 'uint64' || type === 'uint32') data = type === 'uint64' ? BigUint64Array.from(t.uints64) : Uint32Array.from(t.uints64.map(Number));
  else data = Ctor.from(t.ints32); // int32, int16, int8, uint16, uint8, bool, float16 (bits)
  if (data.length !== n) throw new Error(`${file}: ${data.length} elements for dims [${t.dims}]`);
  return { name: t.name, type, dims: t.dims, data };
}

// ---------------------------------------------------------------- numbers

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Bell-shaped value in [-1, 1] (mean of three uniforms, rescaled).
function normalish(rng) { return (rng() + rng() + rng() - 1.5) / 1.5; }

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
function floatToHalfBits(x) {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  let e = ((b >>> 23) & 0xff) - 127 + 15;
  let m = b & 0x7fffff;
  if (((b >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    m |= 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}
function halfBitsToFloat(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function bf16BitsToFloat(h) { u32[0] = (h & 0xffff) << 16; return f32[0]; }

// Tensor data -> array of JS numbers (float16/bfloat16 decoded).
function toNumbers(type, data) {
  if (type === 'float16') {
    if (typeof Float16Array !== 'undefined' && data instanceof Float16Array) return Array.from(data);
    return Array.from(data, halfBitsToFloat);
  }
  if (type === 'bfloat16') return Array.from(data, bf16BitsToFloat);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, Number);
  if (Array.isArray(data)) return data; // strings
  return data;
}

// ---------------------------------------------------------------- inputs

function resolveShape(inp, opts, params) {
  if (opts.shapes[inp.name]) return opts.shapes[inp.name].slice();
  const shape = inp.shape || [];
  const rank = shape.length;
  return shape.map((d, i) => {
    if (typeof d === 'number' && d > 0) return d;
    const key = typeof d === 'string' && d !== '' && d !== '?' ? d : null;
    if (key && params.has(key)) return params.get(key);
    let v;
    if (i === 0 && rank >= 2) v = opts.batch;
    else if (rank >= 3 && i >= 2) v = opts.spatial;
    else v = opts.dim;
    if (key) params.set(key, v);
    return v;
  });
}

function makeInput(ort, inp, dims, rng, opts) {
  const n = dims.reduce((a, b) => a * b, 1);
  const ints = (Ctor, conv = (x) => x) => {
    const a = new Ctor(n);
    const span = opts.intHi - opts.intLo + 1;
    for (let i = 0; i < n; i++) a[i] = conv(opts.intLo + Math.floor(rng() * span));
    return a;
  };
  let data;
  switch (inp.type) {
    case 'float32': data = new Float32Array(n); for (let i = 0; i < n; i++) data[i] = normalish(rng); break;
    case 'float64': data = new Float64Array(n); for (let i = 0; i < n; i++) data[i] = normalish(rng); break;
    case 'float16': data = new Uint16Array(n); for (let i = 0; i < n; i++) data[i] = floatToHalfBits(normalish(rng)); break;
    case 'int64': data = ints(BigInt64Array, BigInt); break;
    case 'uint64': data = ints(BigUint64Array, (x) => BigInt(Math.max(0, x))); break;
    case 'int32': data = ints(Int32Array); break;
    case 'uint32': data = ints(Uint32Array); break;
    case 'int16': data = ints(Int16Array); break;
    case 'uint16': data = ints(Uint16Array); break;
    case 'int8': data = ints(Int8Array); break;
    case 'uint8': data = ints(Uint8Array); break;
    case 'bool': data = new Uint8Array(n); for (let i = 0; i < n; i++) data[i] = rng() < 0.5 ? 1 : 0; break;
    default: throw new Error(`input ${inp.name}: unsupported input type ${inp.type}`);
  }
  return new ort.Tensor(inp.type, data, dims);
}

// ---------------------------------------------------------------- compare

function isHalf(type) { return type === 'float16' || type === 'bfloat16'; }

function compareTensor(name, ta, tb, tol, peakRtol = 0) {
  const res = { name, n: 0, max_abs_err: 0, max_rel_err: 0, n_fail: 0, margin: 0, dtype: ta.type, shape: ta.dims.slice() };
  const problems = [];
  if (ta.type !== tb.type) problems.push(`dtype ${ta.type} vs ${tb.type}`);
  if (ta.dims.length !== tb.dims.length || ta.dims.some((d, i) => d !== tb.dims[i])) {
    problems.push(`shape [${ta.dims}] vs [${tb.dims}]`);
  }
  if (problems.length) { res.ok = false; res.problem = problems.join(', '); return res; }
  const a = toNumbers(ta.type, ta.data), b = toNumbers(tb.type, tb.data);
  const rtol = isHalf(ta.type) ? tol.rtol16 : tol.rtol, atol = isHalf(ta.type) ? tol.atol16 : tol.atol;
  res.rtol = rtol; res.atol = atol;
  res.n = a.length;
  if (ta.type === 'string') {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) res.n_fail++;
    res.ok = res.n_fail === 0;
    if (!res.ok) res.problem = `${res.n_fail} strings differ`;
    return res;
  }
  let worst = -1;
  let peak = 0;
  for (let i = 0; i < a.length; i++) { const v = Math.abs(a[i]); if (v > peak && Number.isFinite(v)) peak = v; }
  res.peak = peak;
  // Intermediate tensors: fp32 rounding differences scale with the tensor's
  // magnitude (and accumulate from upstream folds), not with each element, so
  // also accept |a-b| <= peakRtol * max|a| there.
  const floorAbs = Math.max(atol, peakRtol * peak);
  if (peakRtol) res.peak_rtol = peakRtol;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (x === y) continue; // also equal infinities
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    let abs = Math.abs(x - y);
    if (Number.isNaN(abs)) abs = Infinity; // NaN vs number, Inf vs other
    const ax = Math.abs(x);
    const rel = abs / Math.max(Number.isFinite(ax) ? ax : 0, tol.relFloor !== undefined ? tol.relFloor : atol, 1e-30);
    const m = abs / Math.max(floorAbs, rtol * (Number.isFinite(ax) ? ax : 0));
    if (abs > res.max_abs_err) res.max_abs_err = abs;
    if (rel > res.max_rel_err) res.max_rel_err = rel;
    if (m > res.margin) { res.margin = m; worst = i; }
    if (!(abs <= floorAbs || abs <= rtol * ax)) res.n_fail++;
  }
  if (worst >= 0) { res.worst_index = worst; res.worst_a = a[worst]; res.worst_b = b[worst]; }
  res.ok = res.n_fail === 0;
  if (!res.ok) res.problem = `${res.n_fail}/${res.n} elements out of tolerance`;
  return res;
}

// Merge the per-run results of one output (keep worst numbers).
function mergeRes(acc, r) {
  if (!acc) return { ...r };
  acc.ok = acc.ok && r.ok;
  acc.n_fail += r.n_fail;
  if (r.max_abs_err > acc.max_abs_err) acc.max_abs_err = r.max_abs_err;
  if (r.max_rel_err > acc.max_rel_err) acc.max_rel_err = r.max_rel_err;
  if (r.margin > acc.margin) {
    acc.margin = r.margin;
    for (const k of ['worst_index', 'worst_a', 'worst_b']) acc[k] = r[k];
  }
  if (!r.ok && !acc.problem) acc.problem = r.problem;
  else if (!r.ok && r.problem !== acc.problem && !/^\d+\/\d+ elements/.test(r.problem)) acc.problem = r.problem;
  return acc;
}

// ---------------------------------------------------------------- sessions

class StageError extends Error {
  constructor(stage, err) {
    super(err && err.message ? err.message : String(err));
    this.stage = stage;
  }
}

async function createSession(ort, file, opts, stage, expose = []) {
  const so = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'disabled',
    logSeverityLevel: 4,
    enableCpuMemArena: false,
  };
  if (opts.threads > 0) { so.intraOpNumThreads = opts.threads; so.interOpNumThreads = 1; }
  try {
    if (!fs.existsSync(file)) throw new Error(`no such file: ${file}`);
    if (!expose.length) return await ort.InferenceSession.create(file, so);
    // Written beside the model, so that external data files resolve as for the model itself.
    const tmp = path.join(path.dirname(file), `.equiv-${process.pid}-${path.basename(file)}`);
    fs.writeFileSync(tmp, withExtraOutputs(fs.readFileSync(file), expose));
    try {
      return await ort.InferenceSession.create(tmp, so);
    } finally {
      fs.unlinkSync(tmp);
    }
  } catch (e) {
    throw new StageError(stage, e);
  }
}

// Input descriptions [{name, type, shape}] of what the caller must feed.
function sessionInputs(sess, file) {
  const meta = sess.inputMetadata;
  const names = sess.inputNames;
  let parsed = null;
  const fromFile = () => {
    if (!parsed) {
      parsed = new Map();
      for (const i of parseModelInputs(file)) parsed.set(i.name, i);
    }
    return parsed;
  };
  return names.map((name, k) => {
    let m = null;
    if (Array.isArray(meta)) m = meta.find((x) => x && x.name === name) || meta[k];
    else if (meta && typeof meta === 'object') m = meta[name];
    if (m && m.isTensor === false) return { name, type: 'non-tensor', shape: [] };
    if (m && m.type && Array.isArray(m.shape)) return { name, type: m.type, shape: m.shape };
    const p = fromFile().get(name);
    if (!p) throw new Error(`input ${name}: no metadata from ORT and not found in ${file}`);
    return p;
  });
}

async function runSession(sess, feeds, stage) {
  try {
    return await sess.run(feeds);
  } catch (e) {
    throw new StageError(stage, e);
  }
}

async function release(s) { try { if (s) await s.release(); } catch { /* ignore */ } }

function fmtFeeds(inputs, shapes) {
  return inputs.map((i) => `${i.name}:${i.type}[${shapes.get(i.name).join('x')}]`).join(' ');
}

// Compare two models on random inputs. Returns the JSON result object.
async function comparePair(ort, origFile, foldFile, opts, tol) {
  const out = { ok: false, original: origFile, folded: foldFile, outputs: [], error: null };
  let so = null, sf = null;
  try {
    let expose = [];
    if (opts.exposeBn || opts.expose.length) {
      let g;
      try {
        if (!fs.existsSync(origFile)) throw new Error(`no such file: ${origFile}`);
        g = parseGraphNodes(fs.readFileSync(origFile));
      } catch (e) { throw new StageError('load_original', e); }
      const want = [...(opts.exposeBn ? g.bnOutputs : []), ...opts.expose];
      // A BN folded into the Conv after it leaves no tensor of its own:
      // compare only tensors both models still produce.
      let gf;
      try {
        if (!fs.existsSync(foldFile)) throw new Error(`no such file: ${foldFile}`);
        gf = parseGraphNodes(fs.readFileSync(foldFile));
      } catch (e) { throw new StageError('load_folded', e); }
      expose = [...new Set(want)].filter((n) => g.produced.has(n) && !g.outputs.has(n) &&
        (gf.produced.has(n) || !opts.exposeBn || opts.expose.includes(n)));
      const notProduced = opts.expose.filter((n) => !g.produced.has(n));
      if (notProduced.length) throw new StageError('inputs', new Error(`--expose: no main-graph node of the original produces ${notProduced.join(', ')}`));
    }
    so = await createSession(ort, origFile, opts, 'load_original', expose);
    sf = await createSession(ort, foldFile, opts, 'load_folded', expose);
    const exposed = new Set(expose);
    if (expose.length) out.n_exposed = expose.length;
    let inputs;
    try { inputs = sessionInputs(so, origFile); } catch (e) { throw new StageError('inputs', e); }
    const foldNames = new Set(sf.inputNames);
    const origNames = new Set(inputs.map((i) => i.name));
    const extra = sf.inputNames.filter((n) => !origNames.has(n));
    const missing = inputs.filter((i) => !foldNames.has(i.name)).map((i) => i.name);
    const problems = [];
    if (extra.length) problems.push(`folded model requires inputs the original does not: ${extra.join(', ')}`);
    if (missing.length) problems.push(`folded model dropped runtime inputs of the original: ${missing.join(', ')}`);
    const on = [...so.outputNames].sort(), fn = [...sf.outputNames].sort();
    if (on.join('\u0000') !== fn.join('\u0000')) {
      problems.push(`output names differ: original [${on.join(', ')}] vs folded [${fn.join(', ')}]`);
    }
    const merged = new Map();
    for (let run = 0; run < opts.runs && !extra.length; run++) {
      const rng = mulberry32((opts.seed + run * 0x9e3779b9) >>> 0);
      const params = new Map(), shapes = new Map(), feeds = {};
      for (const inp of inputs) {
        const dims = resolveShape(inp, opts, params);
        shapes.set(inp.name, dims);
        try { feeds[inp.name] = makeInput(ort, inp, dims, rng, opts); } catch (e) { throw new StageError('inputs', e); }
      }
      out.inputs = fmtFeeds(inputs, shapes);
      const ro = await runSession(so, feeds, 'run_original');
      const foldFeeds = {};
      for (const n of sf.inputNames) foldFeeds[n] = feeds[n];
      const rf = await runSession(sf, foldFeeds, 'run_folded');
      for (const name of so.outputNames) {
        const a = ro[name], b = rf[name];
        if (!b) continue;
        if (!a || !a.dims || !b.dims) {
          merged.set(name, { name, ok: false, n: 0, max_abs_err: 0, max_rel_err: 0, n_fail: 0, margin: 0, problem: 'non-tensor output not supported' });
          continue;
        }
        const isExp = exposed.has(name);
        const cmp = compareTensor(name, a, b, tol, isExp ? tol.peakRtol : 0);
        if (isExp) cmp.exposed = true;
        merged.set(name, mergeRes(merged.get(name), cmp));
      }
      for (const t of [...Object.values(ro), ...Object.values(rf)]) { try { t.dispose && t.dispose(); } catch { /* */ } }
    }
    out.outputs = [...merged.values()];
    if (problems.length) out.problem = problems.join('; ');
    out.ok = !problems.length && out.outputs.length > 0 && out.outputs.every((r) => r.ok);
    if (!out.outputs.length && !problems.length) out.problem = 'no comparable outputs';
  } catch (e) {
    out.error = e.message;
    out.stage = e.stage || 'internal';
  } finally {
    await release(so);
    await release(sf);
  }
  return out;
}

// Run one model on the test_data_set DIR inputs, compare with its outputs.
async function compareRef(ort, file, dir, opts, tol, stagePrefix = '') {
  const out = { ok: false, model: file, ref: dir, outputs: [], error: null };
  let s = null;
  try {
    s = await createSession(ort, file, opts, `${stagePrefix}load`);
    let ins = [], outs = [];
    try {
      const list = (re) => fs.readdirSync(dir).filter((f) => re.test(f))
        .sort((x, y) => Number(x.match(/\d+/)[0]) - Number(y.match(/\d+/)[0]));
      ins = list(/^input_\d+\.pb$/).map((f) => readTensorProto(path.join(dir, f)));
      outs = list(/^output_\d+\.pb$/).map((f) => readTensorProto(path.join(dir, f)));
    } catch (e) { throw new StageError(`${stagePrefix}read_ref`, e); }
    // Inputs without names are matched by position against all graph inputs
    // (initializers included, which is how ONNX backend tests count them).
    let allInputs;
    try { allInputs = parseModelInputsAll(file); } catch { allInputs = s.inputNames; }
    const feeds = {};
    ins.forEach((t, k) => {
      const name = t.name || allInputs[k] || s.inputNames[k];
      feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    });
    for (const n of s.inputNames) if (!feeds[n]) throw new StageError(`${stagePrefix}inputs`, new Error(`no reference tensor for input ${n}`));
    const feedsUsed = {};
    for (const n of s.inputNames) feedsUsed[n] = feeds[n];
    const r = await runSession(s, feedsUsed, `${stagePrefix}run`);
    outs.forEach((t, k) => {
      const name = t.name || s.outputNames[k];
      const got = r[name];
      const exp = { type: t.type, dims: t.dims, data: t.data };
      if (!got) {
        out.outputs.push({ name, ok: false, n: 0, max_abs_err: 0, max_rel_err: 0, n_fail: 0, margin: 0, problem: 'model has no such output' });
      } else {
        out.outputs.push(compareTensor(name, exp, got, tol));
      }
    });
    out.ok = out.outputs.length > 0 && out.outputs.every((x) => x.ok);
    if (!out.outputs.length) out.problem = 'no reference outputs';
  } catch (e) {
    out.error = e.message;
    out.stage = e.stage || 'internal';
  } finally {
    await release(s);
  }
  return out;
}

function parseModelInputsAll(file) {
  const buf = fs.readFileSync(file);
  let graph = null;
  for (const [f, wt, v] of new Pb(buf).fields()) if (f === 7 && wt === 2) graph = v;
  const names = [];
  if (graph) for (const [f, , v] of graph.fields()) if (f === 11) names.push(parseValueInfo(v).name);
  return names;
}

// ---------------------------------------------------------------- output

function fmt(x) {
  if (x === undefined || x === null) return '-';
  if (!Number.isFinite(x)) return String(x);
  return x === 0 ? '0' : x.toExponential(2);
}

function humanLines(res) {
  const lines = [];
  if (res.error) lines.push(`ERROR ${res.stage}: ${res.error}`);
  if (res.problem) lines.push(`DIFF  ${res.problem}`);
  const exposed = res.outputs.filter((o) => o.exposed);
  if (exposed.length) {
    const w = (k) => Math.max(0, ...exposed.map((o) => o[k] || 0));
    const bad = exposed.filter((o) => !o.ok).length;
    lines.push(`${bad ? 'DIFF' : 'ok  '}  [${exposed.length} exposed intermediate tensors, ${bad} differ]: ` +
      `max_abs_err=${fmt(w('max_abs_err'))} max_rel_err=${fmt(w('max_rel_err'))} margin=${fmt(w('margin'))}`);
  }
  let shownExposed = 0;
  for (const o of res.outputs) {
    if (o.exposed && o.ok) continue;
    if (o.exposed && ++shownExposed > 10) continue;
    const tag = o.ok ? 'ok  ' : 'DIFF';
    const extra = o.problem ? `  (${o.problem}` + (o.worst_index !== undefined ? `; worst [${o.worst_index}] ${o.worst_a} vs ${o.worst_b}` : '') + ')' : '';
    lines.push(`${tag}  ${o.name}: n=${o.n} max_abs_err=${fmt(o.max_abs_err)} max_rel_err=${fmt(o.max_rel_err)}` +
      ` margin=${fmt(o.margin)}${o.dtype ? ` ${o.dtype}[${(o.shape || []).join('x')}]` : ''}${extra}`);
  }
  if (shownExposed > 10) lines.push(`DIFF  ... and ${shownExposed - 10} more exposed tensors differ`);
  return lines;
}

function exitCodeOf(res) { return res.error ? 2 : res.ok ? 0 : 1; }

function tolFrom(opts, rtol, atol, rtol16, atol16) {
  const t = { rtol: opts.rtol, atol: opts.atol, rtol16: opts.rtol16, atol16: opts.atol16, relFloor: opts.relFloor, peakRtol: opts.peakRtol };
  const given = (x) => x !== undefined && x !== null && x !== '';
  if (given(rtol)) t.rtol = Number(rtol);
  if (given(atol)) t.atol = Number(atol);
  if (given(rtol16)) t.rtol16 = Number(rtol16);
  if (given(atol16)) t.atol16 = Number(atol16);
  return t;
}

async function pairsMode(ort, opts) {
  let text;
  try {
    text = opts.pairs === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(opts.pairs, 'utf8');
  } catch (e) {
    process.stderr.write(`equiv.mjs: cannot read pairs file: ${e.message}\n`);
    return 2;
  }
  let worst = 0;
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const line = raw.replace(/\r$/, '');
    if (!line.trim() || line.startsWith('#')) continue;
    let job;
    if (line.trimStart().startsWith('{')) {
      try { job = JSON.parse(line); } catch (e) {
        const r = { ok: false, id: `line${lineNo}`, outputs: [], error: `bad JSON on line ${lineNo}: ${e.message}`, stage: 'usage' };
        process.stdout.write(JSON.stringify(r) + '\n');
        worst = 2;
        continue;
      }
    } else {
      const [original, folded, rtol, atol] = line.split('\t');
      job = { original, folded, rtol, atol };
    }
    const tol = tolFrom(opts, job.rtol, job.atol, job.rtol16, job.atol16);
    const jopts = { ...opts };
    if (job.seed !== undefined) jopts.seed = Number(job.seed) >>> 0;
    if (job.runs !== undefined) jopts.runs = Math.max(1, Number(job.runs) | 0);
    if (job.expose_bn !== undefined) jopts.exposeBn = !!job.expose_bn;
    if (job.expose) jopts.expose = [...opts.expose, ...job.expose];
    if (job.shapes) jopts.shapes = { ...opts.shapes, ...job.shapes };
    let res;
    const doCompare = !!(job.original && job.folded && job.compare !== false);
    if (doCompare) {
      res = await comparePair(ort, job.original, job.folded, jopts, tol);
    } else {
      res = { ok: true, original: job.original || null, folded: job.folded || null, outputs: [], error: null };
    }
    if (job.ref) {
      const rtol = job.ref_rtol !== undefined ? job.ref_rtol : 1e-3, atol = job.ref_atol !== undefined ? job.ref_atol : 1e-4;
      const rtol_ = { ...tol, rtol, atol };
      if (job.folded) res.ref_folded = await compareRef(ort, job.folded, job.ref, jopts, rtol_);
      if (job.original) res.ref_original = await compareRef(ort, job.original, job.ref, jopts, rtol_);
    }
    if (job.id !== undefined) res.id = job.id;
    if (!doCompare) {
      if (!job.ref) { res.ok = false; res.error = `line ${lineNo}: need ORIGINAL and FOLDED (or "ref")`; res.stage = 'usage'; }
      else {
        const r = res.ref_folded || res.ref_original;
        res.ok = r.ok; res.error = r.error; res.stage = r.stage; res.outputs = r.outputs;
      }
    }
    process.stdout.write(JSON.stringify(res) + '\n');
    worst = Math.max(worst, exitCodeOf(res) === 2 ? 2 : exitCodeOf(res));
  }
  return worst;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let ort;
  try {
    ort = loadOrt(opts.nodeModules);
    if (ort.env) ort.env.logLevel = 'fatal';
  } catch (e) {
    if (opts.json || opts.pairs) {
      process.stdout.write(JSON.stringify({ ok: false, outputs: [], error: e.message, stage: 'ort_missing' }) + '\n');
    } else {
      process.stderr.write(`equiv.mjs: ${e.message}\n`);
    }
    return 2;
  }
  if (opts.pairs) {
    if (opts.positional.length) usage('--pairs takes no positional arguments');
    return pairsMode(ort, opts);
  }
  let res;
  if (opts.ref) {
    if (opts.positional.length !== 1) usage('--ref DIR takes exactly one MODEL');
    res = await compareRef(ort, opts.positional[0], opts.ref, opts, tolFrom(opts));
  } else {
    if (opts.positional.length !== 2) usage('need ORIGINAL.onnx and FOLDED.onnx');
    res = await comparePair(ort, opts.positional[0], opts.positional[1], opts, tolFrom(opts));
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify(res) + '\n');
  } else {
    for (const l of humanLines(res)) process.stdout.write(l + '\n');
    const code = exitCodeOf(res);
    process.stdout.write(code === 0 ? 'EQUIVALENT\n' : code === 1 ? 'DIFFERENT\n' : 'ERROR\n');
  }
  return exitCodeOf(res);
}

process.stdout.on('error', (e) => { if (e && e.code === 'EPIPE') process.exit(process.exitCode || 0); throw e; });

main().then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`equiv.mjs: internal error: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 2;
});
