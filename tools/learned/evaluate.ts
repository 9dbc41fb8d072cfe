/**
 * Honest evaluation of the learned window classifier against the
 * rule-based detectors, on programs neither has been tuned on... for the
 * model at least: the split is BY PROGRAM. Each fold holds out one exploit
 * target (all its binaries, variants and benign runs) and a share of the
 * benign programs; the model is trained on the rest and scores the held-out
 * windows. The pooled held-out scores give precision, recall and ROC AUC.
 * The rules score the same windows: 1 when a default detector reported a
 * finding at a transfer inside the window.
 *
 *   node dist/tools/learned/evaluate.js [--dataset DIR] [--epochs N] [--json OUT] [--markdown]
 *
 * The whole pipeline is deterministic (fixed recording environment, fixed
 * inputs, seeded initialisation and shuffling on tfjs' CPU backend): the
 * README's table is this script's `--markdown` output after
 * `node dist/tools/learned/make-dataset.js`.
 *
 * Ambiguous windows (label -1: after the hijack, no chain transfer inside)
 * are left out of both.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadNetwork, predict, stackWindows } from '../../src/analyses/learned/model.js';
import { readDataset, trainModel, type DatasetWindow } from '../../src/analyses/learned/train.js';

export interface Metrics {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  precision: number;
  recall: number;
  fpr: number;
  auc: number;
}

/** ROC AUC by the rank-sum (Mann-Whitney) statistic; ties count one half. */
export function rocAuc(scores: readonly number[], labels: readonly number[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let rankSumPos = 0;
  let nPos = 0;
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (labels[idx[k]] === 1) {
      rankSumPos += avgRank;
      nPos++;
    }
    i = j + 1;
  }
  const nNeg = labels.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export function metrics(scores: readonly number[], labels: readonly number[], threshold: number): Metrics {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  scores.forEach((s, i) => {
    const p = s >= threshold;
    if (labels[i] === 1) p ? tp++ : fn++;
    else p ? fp++ : tn++;
  });
  return { tp, fp, fn, tn, precision: tp + fp > 0 ? tp / (tp + fp) : NaN, recall: tp + fn > 0 ? tp / (tp + fn) : NaN, fpr: fp + tn > 0 ? fp / (fp + tn) : NaN, auc: rocAuc(scores, labels) };
}

/** Folds: one exploit target each; benign-only programs spread round-robin. */
export function programFolds(windows: readonly DatasetWindow[]): string[][] {
  const exploitGroups = [...new Set(windows.filter((w) => w.kind === 'exploit').map((w) => w.group))].sort();
  const benignOnly = [...new Set(windows.map((w) => w.group))].filter((g) => !exploitGroups.includes(g)).sort();
  const folds = exploitGroups.map((g) => [g]);
  benignOnly.forEach((g, i) => folds[i % folds.length].push(g));
  return folds;
}

const f3 = (v: number): string => (Number.isNaN(v) ? '  n/a' : v.toFixed(3));

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let dataset = 'build/learned/dataset';
  let epochs = 20;
  let jsonOut: string | null = 'build/learned/evaluation.json';
  const markdown = args.includes('--markdown');
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--dataset') dataset = args[++i];
    else if (args[i] === '--epochs') epochs = Number(args[++i]);
    else if (args[i] === '--json') jsonOut = args[++i];
  }
  const all = readDataset(dataset).filter((w) => w.label !== -1);
  const folds = programFolds(all);
  const held: { w: DatasetWindow; score: number; fold: number }[] = [];
  for (const [k, test] of folds.entries()) {
    const train = all.filter((w) => !test.includes(w.group));
    const testRows = all.filter((w) => test.includes(w.group));
    const t0 = Date.now();
    const model = await trainModel(train, { epochs, seed: 1 });
    const net = await loadNetwork(model);
    const scores = await predict(net, stackWindows(testRows));
    net.dispose();
    testRows.forEach((w, i) => held.push({ w, score: scores[i], fold: k }));
    const m = metrics(Array.from(scores), testRows.map((w) => w.label), 0.5);
    console.log(`fold ${k + 1}/${folds.length}: held out ${test.join(', ')}: ${testRows.length} windows (${testRows.filter((w) => w.label === 1).length} attack); trained on ${train.length} in ${((Date.now() - t0) / 1000).toFixed(0)} s; model recall ${f3(m.recall)}, FP ${m.fp}`);
  }
  const labels = held.map((h) => h.w.label);
  const model = metrics(held.map((h) => h.score), labels, 0.5);
  const rules = metrics(held.map((h) => h.w.rule), labels, 0.5);
  // Both together: the rules, or the model.
  const either = metrics(held.map((h) => Math.max(h.w.rule, h.score >= 0.5 ? 1 : 0)), labels, 0.5);
  if (markdown) {
    // The README's table, exactly.
    console.log('');
    console.log(`${folds.length} folds by program, ${held.length.toLocaleString('en-US')} held-out windows, ${labels.filter((l) => l === 1).length} of them attack windows:`);
    console.log('');
    console.log('| detector | precision | recall | FP rate | ROC AUC |');
    console.log('|---|---|---|---|---|');
    for (const [name, m] of [['learned (MLP, threshold 0.5)', model], ['rules (default detectors)', rules], ['rules OR learned', either]] as const) {
      console.log(`| ${name} | ${f3(m.precision)} | ${f3(m.recall)} | ${f3(m.fpr)} | ${f3(m.auc)} |`);
    }
  }
  console.log('');
  console.log(`held-out windows: ${held.length} (${labels.filter((l) => l === 1).length} attack, ${labels.filter((l) => l === 0).length} benign), ${folds.length} folds by program`);
  console.log('detector              precision  recall  FP rate  ROC AUC   TP   FP   FN     TN');
  for (const [name, m] of [['learned (MLP, t=0.5)', model], ['rules (default set)', rules], ['rules OR learned', either]] as const) {
    console.log(`${name.padEnd(21)} ${f3(m.precision).padStart(9)}  ${f3(m.recall).padStart(6)}  ${f3(m.fpr).padStart(7)}  ${f3(m.auc).padStart(7)} ${String(m.tp).padStart(4)} ${String(m.fp).padStart(4)} ${String(m.fn).padStart(4)} ${String(m.tn).padStart(6)}`);
  }
  // Per run: does any window of the run get flagged?
  const runs = new Map<string, { kind: string; model: boolean; rules: boolean; attack: number }>();
  for (const h of held) {
    const r = runs.get(h.w.run) ?? { kind: h.w.kind, model: false, rules: false, attack: 0 };
    r.model ||= h.score >= 0.5;
    r.rules ||= h.w.rule === 1;
    r.attack += h.w.label;
    runs.set(h.w.run, r);
  }
  const ex = [...runs.values()].filter((r) => r.kind === 'exploit');
  const be = [...runs.values()].filter((r) => r.kind === 'benign');
  console.log('');
  console.log(`per run (any window flagged): exploit runs caught: learned ${ex.filter((r) => r.model).length}/${ex.length}, rules ${ex.filter((r) => r.rules).length}/${ex.length}; benign runs flagged: learned ${be.filter((r) => r.model).length}/${be.length}, rules ${be.filter((r) => r.rules).length}/${be.length}`);
  const list = (title: string, pick: (h: (typeof held)[number]) => boolean): void => {
    const hits = held.filter(pick);
    const byRun = new Map<string, number>();
    for (const h of hits) byRun.set(h.w.run, (byRun.get(h.w.run) ?? 0) + 1);
    console.log(`${title}: ${hits.length} windows${hits.length ? ' in ' + [...byRun].map(([r, n]) => `${r} (${n})`).join(', ') : ''}`);
  };
  console.log('');
  list('attack windows the model catches and the rules miss', (h) => h.w.label === 1 && h.score >= 0.5 && h.w.rule === 0);
  list('attack windows the rules catch and the model misses', (h) => h.w.label === 1 && h.score < 0.5 && h.w.rule === 1);
  list('attack windows both miss', (h) => h.w.label === 1 && h.score < 0.5 && h.w.rule === 0);
  list('benign windows only the model flags (its false positives)', (h) => h.w.label === 0 && h.score >= 0.5 && h.w.rule === 0);
  list('benign windows only the rules flag (their false positives)', (h) => h.w.label === 0 && h.score < 0.5 && h.w.rule === 1);
  list('benign windows both flag', (h) => h.w.label === 0 && h.score >= 0.5 && h.w.rule === 1);
  if (jsonOut) {
    writeFileSync(jsonOut, JSON.stringify({ folds, epochs, model, rules, either, windows: held.map((h) => ({ run: h.w.run, group: h.w.group, label: h.w.label, rule: h.w.rule, score: Number(h.score.toFixed(4)), fold: h.fold })) }) + '\n');
    console.log(`\nper-window scores: ${join(jsonOut)}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`evaluate: ${(e as Error).message}`);
    process.exitCode = 2;
  });
}
