/**
 * Findings as text for people: one block per finding (the transfer with
 * disassembly, the call path, the chain gadget by gadget), then what could
 * not be checked, then a summary line per detector.
 */
import type { AnalyzeResult } from '../analyses/analyze.js';
import { threadTitle, type Finding, type InsnEvidence } from '../analyses/finding.js';

function where(addr: string, sym: string | null): string {
  return sym === null ? addr : `${addr} <${sym}>`;
}

function insnLine(i: InsnEvidence): string {
  return `${i.address}  ${i.text || '(not in the image)'}`;
}

export function formatFinding(f: Finding, index: number): string[] {
  const out: string[] = [];
  const thread = threadTitle(f);
  out.push(`[${index}] ${f.severity.toUpperCase()} ${f.detector}/${f.kind}${thread === null ? '' : ` in thread ${thread}`} @ trace offset 0x${f.offset.toString(16)}${f.cr3 ? ` cr3 ${f.cr3}` : ''}`);
  out.push(`    ${f.message}`);
  const t = f.transfer;
  if (t) {
    out.push(`    transfer: ${t.kind} ${where(t.from, t.fromSymbol)} -> ${where(t.to, t.toSymbol)}`);
    if (t.source) out.push(`      at source:  ${insnLine(t.source)}`);
    t.target.forEach((i, k) => out.push(`      ${k === 0 ? 'at target:  ' : '            '}${insnLine(i)}`));
  }
  if (f.callPath.length > 0) {
    out.push(`    recent calls (oldest first):`);
    for (const c of f.callPath) out.push(`      ${where(c.site, c.siteSymbol)} -> ${where(c.target, c.targetSymbol)}`);
  }
  if (f.chain && f.chain.length > 0) {
    out.push(`    chain (${f.chain.length} gadget${f.chain.length === 1 ? '' : 's'}):`);
    f.chain.forEach((g, k) => {
      out.push(`      #${k + 1} ${where(g.address, g.symbol)} via ${g.enteredBy}${g.length > 0 ? `, ${g.length} insns` : ''}`);
      for (const i of g.insns) out.push(`          ${insnLine(i)}`);
    });
  }
  const details = Object.entries(f.details);
  if (details.length > 0) out.push(`    details: ${details.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return out;
}

export function formatFindingsText(r: AnalyzeResult): string[] {
  const out: string[] = [];
  out.push(`analyzed ${r.input}: ${r.flow.instructions} instructions, ${r.flow.transfers} transfers, ${r.flow.gaps} gaps, ${r.flow.errors} decode errors`);
  r.findings.forEach((f, i) => out.push(...formatFinding(f, i + 1)));
  if (r.unchecked.length > 0 || r.notes.length > 0) {
    out.push('unchecked:');
    for (const n of r.notes) out.push(`  ${n}`);
    for (const u of r.unchecked) {
      // Per-CPU streams: the thread the note is about, as findings name theirs.
      const who = u.pid !== undefined && u.tid !== undefined ? threadTitle({ pid: u.pid, tid: u.tid }) : null;
      out.push(`  unchecked: ${who !== null ? `${who} ` : ''}${u.detector}: ${u.reason} (${u.count}x, first at 0x${u.firstOffset.toString(16)})`);
    }
  }
  for (const d of r.detectors) {
    const n = r.findings.filter((f) => f.detector === d.name).length;
    const stats = Object.entries(d.stats).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`).join(' ');
    out.push(`${d.name}: ${n} finding${n === 1 ? '' : 's'}${stats ? ` (${stats})` : ''}`);
  }
  out.push(`${r.findings.length} finding${r.findings.length === 1 ? '' : 's'} in ${r.seconds.toFixed(2)} s (${Math.round(r.instructionsPerSecond)} instructions/s)`);
  return out;
}
