/**
 * The strip of trace time: one row per kind of thing along the trace
 * offset (findings, instructions decoded, system calls, gaps), drawn as
 * inline SVG from the model's {@link TraceStripData}. Every mark has a
 * `<title>` tooltip, so it needs no script; text from the trace (symbol
 * names in finding tooltips) is escaped.
 */
import type { ReportFinding, ReportModel } from './report-model.js';
import { clip, escapeHtml as e, num, px, shortBytes, shortCount, svgOpen } from './svg-markup.js';

const W = 1000;
const LEFT = 118;
const RIGHT = 12;
const PLOT = W - LEFT - RIGHT;
const LANE = 22;
const GAP = 6;
const TOP = 6;

const SEVERITY_COLOR = ['#98a2b3', '#475467', '#b54708', '#b42318'];
const SEVERITY_NAME = ['', 'low', 'medium', 'high'];
const COLOR = { insns: '#1849a9', syscall: '#7a5af8', disabled: '#98a2b3', overflow: '#f79009', error: '#d92d20', axis: '#5b6573', grid: '#eaecf0' };

/** The slice of trace offset `offset`, as the model cut it. */
function binOf(offset: number, bytes: number, bins: number): number {
  if (!(offset > 0) || bytes <= 0) return 0;
  return Math.min(bins - 1, Math.floor((offset * bins) / bytes));
}

function hexOffset(n: number): string {
  return `0x${Math.max(0, Math.floor(n)).toString(16)}`;
}

/** One line naming a finding, for a tooltip. */
function findingLine(f: ReportFinding): string {
  const t = f.transfer;
  const where = t === null ? '' : `: ${t.kind} ${t.fromSymbol ?? t.from} → ${t.toSymbol ?? t.to}`;
  return `${f.detector}/${f.kind} (${f.severity}) at ${hexOffset(f.offset)}${where}`;
}

/** Height in [0, 1] of a count on a log scale up to `max` (so that one event still shows). */
function logScale(c: number, max: number): number {
  return c <= 0 || max <= 0 ? 0 : Math.log1p(c) / Math.log1p(max);
}

/** The strip as an `<svg>` (empty string for an empty trace). */
export function traceStripSvg(m: ReportModel): string {
  const s = m.strip;
  if (s.bins <= 0 || s.bytes <= 0) return '';
  const bins = s.bins;
  const bw = PLOT / bins;
  const x = (i: number): number => LEFT + i * bw;
  const lanes = ['findings', 'instructions', 'system calls', 'gaps'];
  const laneY = (k: number): number => TOP + k * (LANE + GAP);
  const axisY = laneY(lanes.length) + 2;
  const H = axisY + 34;
  const range = (i: number): string => `trace offsets ${hexOffset((i * s.bytes) / bins)}–${hexOffset(((i + 1) * s.bytes) / bins - 1)}`;
  const out: string[] = [svgOpen('pic strip', W, H, `Trace strip of ${m.title}: findings, instructions, system calls and gaps along ${num(s.bytes)} bytes of trace`)];

  // Lane backgrounds and names.
  lanes.forEach((name, k) => {
    out.push(`<rect x="${LEFT}" y="${px(laneY(k))}" width="${PLOT}" height="${LANE}" fill="#f9fafb" stroke="${COLOR.grid}"/>`);
    out.push(`<text x="${LEFT - 8}" y="${px(laneY(k) + LANE / 2 + 4)}" text-anchor="end" class="lane">${e(name)}</text>`);
  });

  // Findings: one marker per slice, coloured by its highest severity.
  const perBin = new Map<number, ReportFinding[]>();
  for (const f of m.findings.items) {
    const b = binOf(f.offset, s.bytes, bins);
    const list = perBin.get(b) ?? [];
    list.push(f);
    perBin.set(b, list);
  }
  const y0 = laneY(0);
  for (let i = 0; i < bins; i++) {
    const n = s.findings[i] ?? 0;
    if (n <= 0) continue;
    const cx = x(i) + bw / 2;
    const sev = Math.max(0, Math.min(3, s.severity[i] ?? 0));
    const shown = perBin.get(i) ?? [];
    const lines = shown.slice(0, 5).map(findingLine);
    if (n > lines.length) lines.push(`… ${num(n - lines.length)} more`);
    const title = `${num(n)} finding${n === 1 ? '' : 's'} (${SEVERITY_NAME[sev] || 'none'} at most), ${range(i)}\n${lines.join('\n')}`;
    out.push(
      `<g class="finding-mark"><title>${e(title)}</title>` +
        `<line x1="${px(cx)}" y1="${px(y0)}" x2="${px(cx)}" y2="${px(axisY - 2)}" stroke="${SEVERITY_COLOR[sev]}" stroke-width="1" stroke-dasharray="2 2" opacity="0.6"/>` +
        `<path d="M${px(cx - 6)} ${px(y0 + 4)}L${px(cx + 6)} ${px(y0 + 4)}L${px(cx)} ${px(y0 + LANE - 4)}Z" fill="${SEVERITY_COLOR[sev]}"/></g>`,
    );
  }

  // Instructions decoded per slice, log scale, as one path.
  const maxInsns = Math.max(0, ...s.instructions);
  const y1 = laneY(1);
  let bars = '';
  for (let i = 0; i < bins; i++) {
    const h = logScale(s.instructions[i] ?? 0, maxInsns) * (LANE - 2);
    if (h > 0) bars += `M${px(x(i))} ${px(y1 + LANE - 1)}h${px(Math.max(bw, 0.8))}v${px(-h)}h${px(-Math.max(bw, 0.8))}Z`;
  }
  if (bars !== '') out.push(`<path class="insn-bars" d="${bars}" fill="${COLOR.insns}" opacity="0.75"><title>${e(`instructions decoded per slice of trace (log scale; at most ${num(maxInsns)} in a slice)`)}</title></path>`);

  // System calls and gaps: one mark per slice that has any, with its counts.
  const y2 = laneY(2);
  const maxSys = Math.max(0, ...s.syscalls);
  const y3 = laneY(3);
  const mw = Math.max(bw, 2);
  for (let i = 0; i < bins; i++) {
    const sys = s.syscalls[i] ?? 0;
    if (sys > 0) {
      const h = Math.max(4, logScale(sys, maxSys) * (LANE - 2));
      out.push(`<rect class="syscall-mark" x="${px(x(i))}" y="${px(y2 + LANE - 1 - h)}" width="${px(mw)}" height="${px(h)}" fill="${COLOR.syscall}"><title>${e(`${num(sys)} system call${sys === 1 ? '' : 's'}, ${range(i)}`)}</title></rect>`);
    }
    const dis = s.disabled[i] ?? 0;
    const ovf = s.overflows[i] ?? 0;
    const err = s.errors[i] ?? 0;
    if (dis + ovf + err > 0) {
      const color = err > 0 ? COLOR.error : ovf > 0 ? COLOR.overflow : COLOR.disabled;
      const parts = [dis > 0 ? `${num(dis)} tracing disabled` : '', ovf > 0 ? `${num(ovf)} overflow${ovf === 1 ? '' : 's'}` : '', err > 0 ? `${num(err)} decode error${err === 1 ? '' : 's'}` : ''].filter((p) => p !== '');
      out.push(`<rect class="gap-mark" x="${px(x(i))}" y="${px(y3 + 2)}" width="${px(mw)}" height="${LANE - 4}" fill="${color}"><title>${e(`${parts.join(', ')}, ${range(i)}`)}</title></rect>`);
    }
  }

  // Axis: trace offset, and the instructions decoded up to that point.
  const cumulative: number[] = [0];
  for (let i = 0; i < bins; i++) cumulative.push(cumulative[i] + (s.instructions[i] ?? 0));
  out.push(`<line x1="${LEFT}" y1="${px(axisY)}" x2="${LEFT + PLOT}" y2="${px(axisY)}" stroke="${COLOR.axis}"/>`);
  out.push(`<text x="${LEFT - 8}" y="${px(axisY + 13)}" text-anchor="end" class="lane">trace offset</text>`);
  out.push(`<text x="${LEFT - 8}" y="${px(axisY + 27)}" text-anchor="end" class="lane">instructions</text>`);
  for (let k = 0; k <= 4; k++) {
    const i = Math.round((k * bins) / 4);
    const tx = x(i);
    const anchor = k === 0 ? 'start' : k === 4 ? 'end' : 'middle';
    out.push(`<line x1="${px(tx)}" y1="${px(axisY)}" x2="${px(tx)}" y2="${px(axisY + 4)}" stroke="${COLOR.axis}"/>`);
    out.push(`<text x="${px(tx)}" y="${px(axisY + 14)}" text-anchor="${anchor}" class="tick">${e(k === 4 ? shortBytes(s.bytes) : hexOffset((i * s.bytes) / bins))}</text>`);
    out.push(`<text x="${px(tx)}" y="${px(axisY + 28)}" text-anchor="${anchor}" class="tick">${e(shortCount(cumulative[i]))}</text>`);
  }
  out.push('</svg>');
  return out.join('');
}

/** A sentence under the strip, so the counts read without hovering. */
export function traceStripSummary(m: ReportModel): string {
  const s = m.strip;
  const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
  const parts = [
    `${num(sum(s.syscalls))} system calls`,
    `${num(sum(s.disabled))} times tracing was disabled`,
    `${num(sum(s.overflows))} overflows`,
    `${num(sum(s.errors))} decode errors`,
    `${num(sum(s.findings))} findings`,
  ];
  return `${clip(parts.join(', '), 400)}, over ${num(s.bins)} slices of ${shortBytes(Math.max(1, Math.ceil(s.bytes / Math.max(1, s.bins))))} of trace each.`;
}
