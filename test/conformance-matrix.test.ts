/**
 * docs/conformance.md is complete and every proof it names exists: the
 * rows are checked against libipt's own sources (every packet type, event
 * type, erratum and error code of intel-pt.h.in; every option ptdump and
 * ptxed parse), and each proof resolves to a reference case that the
 * ptdump/ptxed conformance suites run, or to a named test in a test file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/oracle.js';
import { loadManifest, PTSCOPE_VECTORS, VECTORS } from './helpers/vectors.js';

const LIBIPT = join(REPO_ROOT, '..', 'shared', 'libipt-src');
const DOC = readFileSync(join(REPO_ROOT, 'docs', 'conformance.md'), 'utf8');

interface Row {
  feature: string;
  proof: string;
}

/** The table rows: first column's code spans (the feature names) and the proof cell. */
function rows(): Row[] {
  const out: Row[] = [];
  for (const line of DOC.split('\n')) {
    const m = /^\| (.+?) \| (.+) \|$/.exec(line);
    if (!m || m[1] === 'libipt' || m[1].startsWith('---')) continue;
    out.push({ feature: m[1], proof: m[2] });
  }
  return out;
}

/** Names in a C enum or struct block of intel-pt.h.in. */
function block(header: string, start: string, item: RegExp): string[] {
  const from = header.indexOf(start);
  const body = header.slice(from, header.indexOf('\n};', from));
  return [...body.matchAll(item)].map((m) => m[1]!);
}

/** A ptxed/ptdump option as the matrix names it (the filter and CPUID families are one row each). */
function optionRow(option: string): string {
  if (/^--filter:addr\d_/.test(option)) return '--filter:addr0..3_cfg/_a/_b';
  if (option.startsWith('--cpuid-0x15')) return '--cpuid-0x15';
  return option;
}

function section(title: string): Row[] {
  const from = DOC.indexOf(`\n## ${title}\n`);
  expect(from, `section ${title}`).toBeGreaterThan(0);
  const end = DOC.indexOf('\n## ', from + 5);
  const text = DOC.slice(from, end < 0 ? DOC.length : end);
  return rows().filter((r) => text.includes(`| ${r.feature} | ${r.proof} |`));
}

function features(title: string): Set<string> {
  return new Set(section(title).flatMap((r) => [...r.feature.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/ \(.*$/, ''))));
}

describe('docs/conformance.md covers libipt', () => {
  const header = readFileSync(join(LIBIPT, 'libipt', 'include', 'intel-pt.h.in'), 'utf8');

  it('has a row for every packet type', () => {
    const want = block(header, 'enum pt_packet_type {', /\b(ppt_[a-z0-9_]+)/g);
    expect(want.length).toBeGreaterThan(25);
    const have = features('Packets');
    expect(want.filter((p) => !have.has(p))).toEqual([]);
  });

  it('has a row for every event type', () => {
    const want = block(header, 'enum pt_event_type {', /\b(ptev_[a-z0-9_]+)/g);
    expect(want.length).toBeGreaterThan(30);
    const have = features('Events');
    expect(want.filter((e) => !have.has(e))).toEqual([]);
  });

  it('has a row for every erratum', () => {
    const want = block(header, 'struct pt_errata {', /uint32_t ([a-z0-9]+):1;/g).filter((e) => e !== 'reserved');
    expect(want.length).toBeGreaterThanOrEqual(10);
    const have = features('Errata');
    expect(want.filter((e) => !have.has(e))).toEqual([]);
  });

  it('has a row for every error code', () => {
    const want = block(header, 'enum pt_error_code {', /\b(pte_[a-z0-9_]+)/g).filter((e) => e !== 'pte_ok');
    const have = features('Error codes');
    expect(want.filter((e) => !have.has(e))).toEqual([]);
  });

  it('has a row for every ptdump and ptxed option', () => {
    const ptdump = new Set([...readFileSync(join(LIBIPT, 'ptdump', 'src', 'ptdump.c'), 'utf8').matchAll(/"(--[a-z0-9:-]+)/g)].map((m) => optionRow(m[1]!)));
    const ptxed = new Set([...readFileSync(join(LIBIPT, 'ptxed', 'src', 'ptxed.c'), 'utf8').matchAll(/strcmp\(arg, "(--[^"]+)"\)/g)].map((m) => optionRow(m[1]!)));
    expect(ptxed.size).toBeGreaterThan(50);
    const dumpRows = features('ptdump options');
    const xedRows = features('ptxed options');
    expect([...ptdump].filter((o) => !dumpRows.has(o))).toEqual([]);
    expect([...ptxed].filter((o) => !xedRows.has(o))).toEqual([]);
  });
});

describe('every proof in docs/conformance.md exists', () => {
  const suites = [...loadManifest(VECTORS), ...loadManifest(PTSCOPE_VECTORS)];
  const byName = new Map(suites.map((c) => [c.name, c]));

  it('every row has a proof, an n/a reason or a declared gap', () => {
    const all = rows();
    expect(all.length).toBeGreaterThan(150);
    for (const r of all) {
      const refs = [...r.proof.matchAll(/`((?:ptdump|ptxed|case):[^`]+|test\/[^`#]+#[^`]+)`/g)];
      const ok = refs.length > 0 || r.proof.startsWith('n/a: ') || r.proof.startsWith('**gap**: ');
      expect(ok, `${r.feature}: ${r.proof}`).toBe(true);
    }
  });

  it('every case named is a reference case with that output (run by the ptdump/ptxed conformance tests)', () => {
    let n = 0;
    for (const r of rows()) {
      for (const m of r.proof.matchAll(/`(ptdump|ptxed|case):([^`]+)`/g)) {
        const c = byName.get(m[2]!);
        expect(c, `${r.feature}: no case ${m[2]}`).toBeDefined();
        if (m[1] === 'ptdump') expect(c!.ptdump, `${m[2]} has no ptdump expectation`).toBeTruthy();
        if (m[1] === 'ptxed') expect(c!.ptxed, `${m[2]} has no ptxed expectation`).toBeTruthy();
        if (m[1] === 'case') expect(Boolean(c!.ptdump) || Boolean(c!.ptxed)).toBe(true);
        n++;
      }
    }
    expect(n).toBeGreaterThan(200);
  });

  it('every test named exists in its file', () => {
    for (const r of rows()) {
      for (const m of r.proof.matchAll(/`(test\/[^`#]+)#([^`]+)`/g)) {
        const file = join(REPO_ROOT, m[1]!);
        expect(existsSync(file), `${r.feature}: ${m[1]}`).toBe(true);
        expect(readFileSync(file, 'utf8').includes(m[2]!), `${r.feature}: "${m[2]}" in ${m[1]}`).toBe(true);
      }
    }
  });
});
