#!/usr/bin/env node
// ort_fusion.mjs — which BatchNormalization nodes onnxruntime's own
// optimizer folds, against which bnfold folds.  Prints TAP.
//
// Usage:
//   node ort_fusion.mjs --bnfold BNFOLD [--testdata DIR] [--corpus DIR]
//                       [--workdir DIR] [--node-modules DIR] [--only SUBSTRING]
//
// For every fixture of DIR/expected.json and every model of the corpus
// (CORPUS/INDEX.tsv; skipped with a message when the folder is absent):
//   - bnfold MODEL --report R -o /dev/null (default options: like ORT, it
//     treats an initializer listed as a graph input as overridable, IR >= 4);
//   - onnxruntime-node opens MODEL with graphOptimizationLevel 'basic' and
//     optimizedModelFilePath, so ORT writes the model as it optimized it;
//   - every BatchNormalization of the original (subgraphs included) is
//     matched by its output tensor name, which a fusion hands to the layer:
//       kept      a BatchNormalization still produces it,
//       fused     another node produces it, or it is gone and the BN read a
//                 node's output (ORT fused it, perhaps further on into the
//                 next node),
//       constant  it became an initializer, or every input of the BN was one
//                 (constant folding, not a fusion);
//     bnfold's folds are the bn_output of its report's fusions.
// One TAP line per model: "every BN ORT fuses, bnfold folds too"; it fails
// listing each BN ORT fuses that bnfold leaves.  Where bnfold's reason is
// understood (see explain()) the line is a TODO (a known limit of bnfold)
// or passes with a note (bnfold refuses undefined arithmetic on purpose).
// BNs bnfold folds and ORT does not (the patterns ORT lacks) are listed as
// diagnostics.  A model ORT cannot load is a SKIP line with ORT's message.
// A table closes the output.

import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { modelNodes } from './onnx_wire.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');

function parseArgs(argv) {
  const o = {
    bnfold: path.join(ROOT, 'build', 'bnfold'), testdata: path.join(ROOT, 'testdata'),
    corpus: path.resolve(ROOT, '..', 'shared', 'corpus'), workdir: null,
    nodeModules: path.join(ROOT, 'tests', 'node_modules'), only: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === '--bnfold') o.bnfold = v();
    else if (a === '--testdata') o.testdata = v();
    else if (a === '--corpus') o.corpus = v();
    else if (a === '--workdir') o.workdir = v();
    else if (a === '--node-modules') o.nodeModules = v();
    else if (a === '--only') o.only.push(v());
    else { process.stderr.write(`ort_fusion.mjs: unknown argument ${a}\n`); process.exit(2); }
  }
  return o;
}

// ---------------------------------------------------------------- TAP

const results = []; // {ok, desc, skip, todo, diag: []}
const clean = (s) => String(s).replace(/#/g, 'No.').replace(/\s+/g, ' ').trim();
function tap(ok, desc, diag = [], skip = null, todo = null) {
  results.push({ ok: skip ? true : ok, desc: clean(desc), skip, todo, diag });
}

function emit(trailer) {
  const w = (s) => process.stdout.write(s + '\n');
  w('TAP version 13');
  w(`1..${results.length}`);
  results.forEach((r, k) => {
    const directive = r.skip ? ` # SKIP ${clean(r.skip)}` : r.todo ? ` # TODO ${clean(r.todo)}` : '';
    w(`${r.ok ? 'ok' : 'not ok'} ${k + 1} - ${r.desc}${directive}`);
    for (const d of r.diag) for (const l of String(d).split('\n')) w(`# ${l}`);
  });
  for (const l of trailer) w(l ? `# ${l}` : '#');
  const failed = results.filter((r) => !r.ok && !r.todo).length, skipped = results.filter((r) => r.skip).length;
  const todo = results.filter((r) => r.todo).length;
  w(`# ${results.length - failed - skipped - todo} passed, ${failed} failed, ${skipped} skipped, ${todo} todo`);
  return failed ? 1 : 0;
}

// ---------------------------------------------------------------- models

function loadOrt(nodeModules) {
  const req = createRequire(import.meta.url);
  const tries = [path.resolve(nodeModules, 'onnxruntime-node'), 'onnxruntime-node'];
  const errors = [];
  for (const t of tries) {
    try { return req(t); } catch (e) { errors.push(`${t}: ${e.message.split('\n')[0]}`); }
  }
  throw new Error('cannot load onnxruntime-node (install it with ' +
    '`cd tests && ONNXRUNTIME_NODE_INSTALL=skip npm ci`): ' + errors.join('; '));
}

const isBn = (n) => n.op === 'BatchNormalization' && (n.domain === '' || n.domain === 'ai.onnx');

// The BNs of the original and what became of each in ORT's optimized model.
function classify(orig, opt) {
  const producer = new Map();
  for (const n of opt.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const origProducer = new Map();
  for (const n of orig.nodes) for (const o of n.outputs) if (o) origProducer.set(o, n);
  return orig.nodes.filter(isBn).map((bn) => {
    const out = bn.outputs[0] || '';
    const p = producer.get(out);
    const e = { name: bn.name, out, graph: bn.graph, layer: origProducer.get(bn.inputs[0]) };
    const allConst = bn.inputs.every((i) => !i || orig.initializers.has(i) ||
      (origProducer.get(i) && origProducer.get(i).op === 'Constant'));
    if (p && isBn(p)) e.fate = 'kept';
    else if (opt.initializers.has(out) || allConst) e.fate = 'constant';
    else if (p) { e.fate = 'fused'; e.by = p.op; } else if (e.layer && e.layer.graph === bn.graph) {
      // renamed on: fused, then the layer took a later node's output too
      e.fate = 'fused';
      e.by = `${e.layer.op} (output renamed further)`;
    } else e.fate = 'eliminated'; // e.g. the branch of an If whose condition is constant
    return e;
  });
}

const isOnnx = (n, op) => n.op === op && (n.domain === '' || n.domain === 'ai.onnx');
const LAYERS = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'];

// The Mul/Add nodes of the original that read a layer's output and a
// constant (an initializer, a Constant, or computed from those alone, which
// ORT folds first), and what became of each in ORT's optimized model,
// matched by output name as for BNs.
function classifyAffine(orig, opt) {
  const producer = new Map();
  for (const n of opt.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const origProducer = new Map();
  for (const n of orig.nodes) for (const o of n.outputs) if (o) origProducer.set(o, n);
  const constLike = (name, depth) => {
    if (orig.initializers.has(name)) return true;
    const p = origProducer.get(name);
    return !!p && (p.op === 'Constant' ||
      (depth < 8 && p.inputs.length > 0 && p.inputs.every((i) => !i || constLike(i, depth + 1))));
  };
  const out = [];
  for (const n of orig.nodes) {
    if (!(isOnnx(n, 'Mul') || isOnnx(n, 'Add')) || n.inputs.length !== 2 || !n.outputs[0]) continue;
    const side = n.inputs.findIndex((i) => {
      const p = origProducer.get(i);
      return p && LAYERS.some((op) => isOnnx(p, op)) && p.outputs[0] === i && p.graph === n.graph;
    });
    if (side < 0 || !constLike(n.inputs[1 - side], 0)) continue;
    const o = n.outputs[0];
    const p = producer.get(o);
    const e = { name: n.name, op: n.op, out: o, graph: n.graph };
    if (p && p.op === n.op) e.fate = 'kept';
    else if (opt.initializers.has(o)) e.fate = 'constant';
    else { e.fate = 'fused'; e.by = p ? p.op : '(output renamed further)'; }
    out.push(e);
  }
  return out;
}

// Every Mul/Add ORT fuses into its layer, bnfold folds too, or says why it
// refuses on purpose.
function compareAffine(nodes, rep) {
  const folded = new Set((rep.affine_fusions || []).map((f) => f.output));
  const skips = new Map((rep.affine_skipped || []).map((s) => [s.output, s]));
  const lines = [];
  let unexplained = 0;
  const ortFused = nodes.filter((x) => x.fate === 'fused');
  for (const x of ortFused) {
    if (folded.has(x.out)) continue;
    const sk = skips.get(x.out);
    const refused = sk && ['nonpositive_variance', 'non_finite_param', 'overflow', 'shape_conflict',
      'channel_axis_mismatch'].includes(sk.reason);
    if (!refused) unexplained++;
    lines.push(`ORT fuses, bnfold does not: ${x.op} '${x.name}' (output '${x.out}', ${x.graph}) into ${x.by}; ` +
      `bnfold: ${sk ? `${sk.reason}: ${sk.message}` : 'no row'}${refused ? ' [refused on purpose]' : ''}`);
  }
  for (const x of nodes.filter((y) => y.fate !== 'fused' && folded.has(y.out))) {
    lines.push(`bnfold folds, ORT does not: ${x.op} '${x.name}' (output '${x.out}', ${x.graph}); ORT: ${x.fate}`);
  }
  return { ortFused, folded, unexplained, lines };
}

// Why bnfold leaves a BN that ORT fuses, when that is understood:
//   'refused'  the BN's arithmetic is undefined (var + eps <= 0, NaN or Inf):
//              bnfold leaves it on purpose, ORT folds NaN/Inf into the layer;
//              or the layer's channels are not the BN's (ORT's MatMul+BN
//              fusion ignores a Reshape that moves them, and changes the
//              output), or the model's shapes contradict each other;
//   'todo'     a known limit of bnfold (a TAP TODO, not a pass): none now.
// null: not understood, a failure.
function explain(b, skip, orig) {
  if (!skip) return null;
  if (skip.reason === 'nonpositive_variance' || skip.reason === 'non_finite_param' || skip.reason === 'overflow') {
    return { kind: 'refused', text: `bnfold refuses on purpose (${skip.reason})` };
  }
  if (/training_info/.test(skip.message || '')) {
    // ORT runs inference only; the model's training graphs update that tensor
    return { kind: 'refused', text: `bnfold refuses on purpose (${skip.reason}: the training_info assigns it)` };
  }
  if (skip.reason === 'channel_axis_mismatch') {
    // testdata/matmul_reshape_moves_channel_bn.onnx: ORT folds the BN into
    // the MatMul's columns although a Reshape moved them off the BN's axis,
    // and its output changes
    return { kind: 'refused', text: 'bnfold refuses on purpose (channel_axis_mismatch: the layer\'s channels are not the BN\'s)' };
  }
  if (skip.reason === 'shape_conflict') {
    return { kind: 'refused', text: 'bnfold refuses on purpose (shape_conflict: the model contradicts itself)' };
  }
  return null;
}

// BNs ORT fuses and bnfold folds (folded: bn_output -> fusion; skips:
// bn_output -> skip of bnfold's report), with one line per difference.
function compare(bns, folded, skips, orig) {
  const ortFused = bns.filter((b) => b.fate === 'fused');
  const ortOnly = ortFused.filter((b) => !folded.has(b.out));
  const bnfoldOnly = bns.filter((b) => b.fate !== 'fused' && folded.has(b.out));
  const constant = bns.filter((b) => b.fate === 'constant');
  const lines = [], todo = new Set();
  let unexplained = 0;
  for (const b of ortOnly) {
    const s = skips.get(b.out), why = explain(b, s, orig);
    lines.push(`ORT fuses, bnfold does not: BN '${b.name}' (output '${b.out}', ${b.graph}) into ${b.by}` +
      (s ? `; bnfold: ${s.reason}: ${s.message}` : '') + (why ? ` [${why.kind}: ${why.text}]` : ' [not explained]'));
    if (!why) unexplained++;
    else if (why.kind === 'todo') todo.add(why.text);
  }
  for (const b of bnfoldOnly) {
    const f = folded.get(b.out);
    lines.push(`bnfold folds, ORT does not: BN '${b.name}' (output '${b.out}', ${b.graph}) ` +
      `${f.pattern} into ${f.layer_op} '${f.layer}'; ORT: ${b.fate}`);
  }
  for (const b of constant) lines.push(`ORT constant-folds BN '${b.name}' (output '${b.out}'): not a fusion`);
  for (const b of bns.filter((x) => x.fate === 'eliminated')) {
    lines.push(`ORT removes BN '${b.name}' (output '${b.out}', ${b.graph}) with its graph: not a fusion`);
  }
  return { ortFused, ortOnly, bnfoldOnly, both: ortFused.length - ortOnly.length, constant, lines, todo, unexplained };
}

function bnfoldReport(bnfold, model, reportPath) {
  const r = spawnSync(bnfold, [model, '-o', os.devNull, '-q', '--report', reportPath], { encoding: 'utf8' });
  if (r.error) return { error: `cannot run ${bnfold}: ${r.error.message}` };
  if (r.status !== 0) return { error: `bnfold exit ${r.status}: ${(r.stderr || '').trim().split('\n')[0]}` };
  try { return { report: JSON.parse(fs.readFileSync(reportPath, 'utf8')).inputs[0] }; } catch (e) { return { error: `report: ${e.message}` }; }
}

async function ortOptimize(ort, model, optPath) {
  try { fs.unlinkSync(optPath); } catch { /* none yet */ }
  let s;
  try {
    s = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'], graphOptimizationLevel: 'basic', optimizedModelFilePath: optPath,
      logSeverityLevel: 4, enableCpuMemArena: false,
    });
  } catch (e) {
    return { error: (e && e.message ? e.message : String(e)).split('\n')[0] };
  }
  try { await s.release(); } catch { /* ignore */ }
  if (!fs.existsSync(optPath)) return { error: 'ORT wrote no optimized model' };
  return {};
}

// ---------------------------------------------------------------- main

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const trailer = [];
  let ort;
  try {
    ort = loadOrt(o.nodeModules);
    if (ort.env) ort.env.logLevel = 'fatal';
  } catch (e) {
    tap(false, 'onnxruntime-node loads', [e.message]);
    return emit(trailer);
  }
  if (!fs.existsSync(o.bnfold)) {
    tap(false, 'bnfold binary present', [`no executable at ${o.bnfold}`]);
    return emit(trailer);
  }
  const work = o.workdir ? path.resolve(o.workdir) : fs.mkdtempSync(path.join(os.tmpdir(), 'ort-fusion-'));
  fs.mkdirSync(work, { recursive: true });

  const models = [];
  try {
    const fx = JSON.parse(fs.readFileSync(path.join(o.testdata, 'expected.json'), 'utf8')).fixtures;
    for (const f of fx) models.push({ label: `testdata/${f.file}`, file: path.join(o.testdata, f.file) });
  } catch (e) {
    tap(false, `read ${path.join(o.testdata, 'expected.json')}`, [e.message]);
  }
  const index = path.join(o.corpus, 'INDEX.tsv');
  if (fs.existsSync(index)) {
    const rows = fs.readFileSync(index, 'utf8').split('\n').slice(1).filter((l) => l.trim());
    for (const r of rows) {
      const rel = r.split('\t')[0];
      models.push({ label: rel, file: path.join(o.corpus, rel) });
    }
  } else {
    trailer.push(`corpus: ${index} not found, corpus models not checked`);
  }

  const table = [];
  const totals = { ort: 0, bnfold: 0, both: 0, ortOnly: 0, bnfoldOnly: 0 };
  let control = null, affControl = null;
  let k = 0;
  for (const m of models) {
    if (o.only.length && !o.only.some((s) => m.label.includes(s))) continue;
    const tag = `${String(k++).padStart(3, '0')}_${m.label.replace(/[/\\]/g, '__')}`;
    const rep = bnfoldReport(o.bnfold, m.file, path.join(work, `${tag}.report.json`));
    if (rep.error) {
      tap(false, `${m.label}: bnfold reports its folds`, [rep.error]);
      continue;
    }
    const optPath = path.join(work, `${tag}.ort.onnx`);
    const ortRes = await ortOptimize(ort, m.file, optPath);
    const folded = new Map((rep.report.fusions || []).map((f) => [f.bn_output, f]));
    if (ortRes.error) {
      tap(true, `${m.label}: every BN ORT fuses, bnfold folds too`, [],
        `ORT 1.30 cannot load the model (${ortRes.error.slice(0, 160)})`);
      table.push([m.label, String(rep.report.counts.bn_found), 'n/a', String(folded.size), '-', '-', 'ORT cannot load']);
      continue;
    }
    let bns, orig, optModel;
    try {
      orig = modelNodes(fs.readFileSync(m.file));
      optModel = modelNodes(fs.readFileSync(optPath));
      bns = classify(orig, optModel);
    } catch (e) {
      tap(false, `${m.label}: read the original and ORT's optimized model`, [e.message]);
      continue;
    }
    fs.unlinkSync(optPath);
    const skips = new Map((rep.report.skipped || []).map((s) => [s.bn_output, s]));
    const c = compare(bns, folded, skips, orig);
    const { ortFused, ortOnly, bnfoldOnly, both, constant } = c;
    const desc = `${m.label}: every BN ORT fuses, bnfold folds too ` +
      `(BN ${bns.length}, ORT fuses ${ortFused.length}, bnfold folds ${folded.size}, both ${both})`;
    if (c.unexplained) tap(false, desc, c.lines);
    else if (c.todo.size) tap(false, desc, c.lines, null, [...c.todo].join('; '));
    else tap(true, desc, c.lines);
    if (!control && both > 0) control = { label: m.label, bns, orig, both };
    const aff = classifyAffine(orig, optModel);
    if (aff.length) {
      const a = compareAffine(aff, rep.report);
      tap(a.unexplained === 0, `${m.label}: every Mul/Add ORT fuses into a layer, bnfold folds too ` +
        `(Mul/Add ${aff.length}, ORT fuses ${a.ortFused.length}, bnfold folds ${a.folded.size})`, a.lines);
      if (!affControl && a.ortFused.length > 0 && a.unexplained === 0) affControl = { label: m.label, aff };
    }
    totals.ort += ortFused.length;
    totals.bnfold += folded.size;
    totals.both += both;
    totals.ortOnly += ortOnly.length;
    totals.bnfoldOnly += bnfoldOnly.length;
    const pats = {};
    for (const b of bnfoldOnly) pats[folded.get(b.out).pattern] = (pats[folded.get(b.out).pattern] || 0) + 1;
    table.push([m.label, String(bns.length), String(ortFused.length), String(folded.size), String(both),
      String(ortOnly.length), Object.entries(pats).map(([p, n]) => `${p}:${n}`).join(',') +
      (constant.length ? `${Object.keys(pats).length ? ' ' : ''}ORT-constant:${constant.length}` : '')]);
  }

  // Negative control: the comparison must fail a model whose fusions
  // bnfold had not made.
  if (control) {
    const c = compare(control.bns, new Map(), new Map(), control.orig);
    tap(c.unexplained === control.both && c.ortOnly.length === control.both,
      `control: ${control.label} with bnfold's folds taken away fails with ${control.both} BN(s) ORT fuses alone`,
      c.unexplained === control.both ? [] : c.lines);
  } else if (!o.only.length) {
    tap(false, 'control: a model where ORT and bnfold both fold', ['none found']);
  }

  if (affControl) {
    const a = compareAffine(affControl.aff, {});
    tap(a.unexplained === a.ortFused.length && a.ortFused.length > 0,
      `control: ${affControl.label} with bnfold's Mul/Add folds taken away fails with ${a.ortFused.length} node(s) ORT fuses alone`);
  } else if (!o.only.length) {
    tap(false, 'control: a model where ORT and bnfold both fold a Mul/Add', ['none found']);
  }

  trailer.push('', 'BatchNormalization nodes: ORT 1.30 basic-level optimizer (optimizedModelFilePath) against bnfold (default options)');
  const head = ['model', 'BN', 'ORT fuses', 'bnfold folds', 'both', 'ORT only', 'bnfold only (pattern) / note'];
  const rows = [head, ...table];
  const widths = head.map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  for (const r of rows) trailer.push(r.map((x, j) => x.padEnd(widths[j])).join('  ').trimEnd());
  trailer.push(`totals: ORT fuses ${totals.ort}, bnfold folds ${totals.bnfold}, both ${totals.both}, ` +
    `ORT only ${totals.ortOnly}, bnfold only ${totals.bnfoldOnly}`);
  if (!o.workdir) fs.rmSync(work, { recursive: true, force: true });
  return emit(trailer);
}

main().then((code) => { process.exitCode = code; }, (e) => {
  process.stdout.write(`TAP version 13\n1..1\nnot ok 1 - ort_fusion.mjs crashed\n# ${String(e && e.stack ? e.stack : e).split('\n').join('\n# ')}\n`);
  process.exitCode = 1;
});
