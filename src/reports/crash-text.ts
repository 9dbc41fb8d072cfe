/**
 * `ptscope crash` as text: the crash, whether the core belongs to the
 * trace, the root-cause set with the chain from each root cause to the
 * crash, and what could not be established.
 */
import type { ChainStep, CrashReport, ReportPlace } from '../analyses/crash/crash.js';

function where(p: ReportPlace): string {
  const l = p.location;
  const sym = l.symbol ? `${l.module ?? '?'}!${l.symbol}` : (l.module ?? 'unmapped');
  return `${p.ip} ${sym}${l.line ? ` (${shortPath(l.line)})` : ''}`;
}

function shortPath(fileLine: string): string {
  const i = fileLine.lastIndexOf('/');
  return i >= 0 ? fileLine.slice(i + 1) : fileLine;
}

function stepLine(s: ChainStep): string {
  return `    ${s.kind.padEnd(13)} ${where(s)}  ${s.instruction}  -- ${s.what}${s.distance > 0 ? ` [${s.distance} insns before the crash]` : ''}`;
}

export function crashText(r: CrashReport): string[] {
  const out: string[] = [];
  out.push(`crash      ${r.program} killed by ${r.signal ?? 'no signal'}`);
  out.push(`  at       ${where(r.crash)}  ${r.crash.instruction}`);
  out.push(`  fault    ${r.crash.what}`);
  out.push(`core       ${r.core.path} (${r.core.source})${r.core.matchesTrace ? '' : ': DOES NOT MATCH THE TRACE'}`);
  for (const c of r.core.checks) out.push(`  check    ${c}`);
  const re = r.reverseExecution;
  out.push(`window     ${r.window.instructions} instructions analysed of ${r.window.traced} traced${r.window.lastGap ? `; last gap: ${r.window.lastGap}` : ''}`);
  out.push(`reverse    ${(re.knownRegisterValues * 100).toFixed(1)}% register values known, ${re.resolvedAddresses}/${re.memoryAccesses} memory addresses resolved, ${re.unresolvedStores} unresolved stores, ${re.conflicts} conflicts`);
  if (r.rootCauses.length === 0) {
    out.push('root cause not established');
  } else {
    out.push(`root cause (${r.confidence}):`);
    for (const c of r.rootCauses) {
      const site = c.callSite ? `, in a library call from ${where(c.callSite)}` : '';
      out.push(`  #${c.rank} ${c.kind}: ${where(c)}  ${c.instruction}${site}`);
      out.push(`     ${c.what}; ran ${c.distance} instructions before the crash`);
      out.push('     chain to the crash:');
      for (const s of c.chain) out.push(stepLine(s));
    }
  }
  for (const n of r.notes) out.push(`note       ${n}`);
  return out;
}
