/**
 * The HTML report: one self-contained file (inline CSS and a small inline
 * script, nothing fetched) that shows one or more {@link ReportModel}s.
 *
 * Three pictures are inline SVG made here, server-side (svg-*.ts): each
 * code-reuse chain on the call graph, a strip of trace time with findings,
 * system calls and gaps, and per-function coverage as a treemap. They need
 * no script: their tooltips are SVG `<title>`s.
 *
 * - Readable without JavaScript: all content is in the markup; sections
 *   and findings collapse with <details>/<summary>.
 * - With JavaScript: a filter box hides rows and findings that do not
 *   contain the text typed, and buttons open or close every section.
 * - Hostile input: every string that comes from a trace, a binary
 *   (symbol names, paths) or a manifest is HTML-escaped; a Content
 *   Security Policy allows only this file's own script (by hash) and no
 *   network access, so even a missed escape could not run code.
 */
import { createHash } from 'node:crypto';
import type { GadgetEvidence, InsnEvidence } from '../analyses/finding.js';
import { longestChain, verdict, type Capped, type ReportFinding, type ReportModel } from './report-model.js';
import { chainGraphSvg } from './svg-chain.js';
import { coverageTreemapSvg } from './svg-coverage.js';
import { escapeHtml, num } from './svg-markup.js';
import { traceStripSummary, traceStripSvg } from './svg-timeline-strip.js';

export { escapeHtml } from './svg-markup.js';

const VERSION = '0.1.0';

const e = escapeHtml;

function pct(a: number, b: number): string {
  return b === 0 ? '–' : `${((100 * a) / b).toFixed(1)}%`;
}

/** "showing N of M" when a list was capped. */
function capNote<T>(c: Capped<T>, what: string): string {
  return c.items.length < c.total ? `<p class="cap">Showing the first ${num(c.items.length)} of ${num(c.total)} ${e(what)} (the report caps its lists).</p>` : '';
}

const STYLE = `
:root{--fg:#1d2430;--mute:#5b6573;--line:#d9dee5;--bg:#fff;--panel:#f6f8fa;--high:#b42318;--med:#b54708;--low:#475467;--ok:#067647;--accent:#1849a9}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header.top{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--panel);display:flex;gap:16px;align-items:center;flex-wrap:wrap;position:sticky;top:0;z-index:2}
header.top h1{font-size:18px;margin:0 12px 0 0}
header.top .tools{display:flex;gap:8px;align-items:center}
header.top input{font:inherit;padding:5px 8px;border:1px solid var(--line);border-radius:6px;width:260px}
header.top button{font:inherit;padding:4px 10px;border:1px solid var(--line);border-radius:6px;background:#fff;cursor:pointer}
#matches{color:var(--mute)}
main{padding:8px 24px 40px;max-width:1280px}
nav.runs ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:8px}
nav.runs a{display:inline-block;padding:4px 10px;border:1px solid var(--line);border-radius:14px;text-decoration:none;color:var(--fg)}
section.run{border-top:2px solid var(--line);margin-top:18px;padding-top:8px}
h2{font-size:20px;margin:10px 0 6px}
h3{font-size:16px;margin:0}
details.sec{margin:12px 0;border:1px solid var(--line);border-radius:8px;background:#fff}
details.sec>summary{padding:8px 12px;cursor:pointer;background:var(--panel);border-radius:8px;font-weight:600}
details.sec>.body{padding:8px 14px}
.verdict{padding:10px 14px;border-radius:8px;font-weight:600;margin:8px 0}
.verdict.bad{background:#fef3f2;color:var(--high);border:1px solid #fecdca}
.verdict.ok{background:#ecfdf3;color:var(--ok);border:1px solid #abefc6}
table{border-collapse:collapse;margin:6px 0;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--mute);font-weight:600;background:var(--panel)}
table.kv th{width:180px;background:none}
code,.mono,td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.sev{display:inline-block;min-width:58px;text-align:center;border-radius:10px;padding:0 8px;font-size:12px;font-weight:700;color:#fff;margin-right:6px}
.sev.high{background:var(--high)}.sev.medium{background:var(--med)}.sev.low{background:var(--low)}
details.finding{border:1px solid var(--line);border-radius:6px;margin:8px 0}
details.finding>summary{padding:6px 10px;cursor:pointer}
details.finding>.body{padding:4px 12px 10px}
.chain{border-left:4px solid var(--high);background:#fffbfa;padding:6px 10px;margin:8px 0;border-radius:4px}
.chain table{width:auto;min-width:60%}
.chain th{background:none}
.chain td.insns{font-weight:600}
.sym{color:var(--accent)}
.mute,.cap{color:var(--mute)}
.bar{display:inline-block;width:160px;height:10px;background:#eef1f5;border-radius:5px;vertical-align:middle;overflow:hidden;margin-right:6px}
.bar>i{display:block;height:100%;background:var(--ok)}
ul.plain{list-style:none;padding-left:0;margin:4px 0}
ul.cols{columns:3 280px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;padding-left:18px}
.tl td.fn{white-space:nowrap}
.hidden-by-filter{display:none!important}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:4px 0 8px}
.card{border:1px solid var(--line);border-radius:8px;padding:6px 14px;min-width:150px;background:var(--panel)}
.card b{display:block;font-size:20px}
.card span{color:var(--mute);font-size:12px}
nav.runs .sev{min-width:0}
figure.pic{margin:8px 0 12px;overflow-x:auto}
figure.pic figcaption{color:var(--mute);font-size:12.5px;margin-top:4px}
svg.pic{display:block;max-width:100%;height:auto;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
svg.pic text{font-size:11px;fill:var(--fg)}
svg.pic text.lane{font-family:system-ui,sans-serif;font-size:12px;fill:var(--mute)}
svg.pic text.tick{font-size:10.5px;fill:var(--mute)}
svg.pic text.fn{font-size:12px;font-weight:600}
svg.pic text.sub{font-size:10.5px;fill:var(--mute)}
svg.pic text.step{font-size:10.5px;font-weight:700;fill:#d92d20}
svg.pic text.edge-label{font-family:system-ui,sans-serif;font-size:11.5px;font-weight:700}
svg.pic text.edge-label.hijack{fill:var(--high)}
svg.pic text.edge-label.expected{fill:var(--ok)}
svg.pic text.tile{font-size:10.5px}
svg.pic text.tile.light{fill:#fff}
svg.pic g.node:hover rect,svg.pic g.tile:hover rect{stroke-width:2.5}
.key{display:inline-flex;align-items:center;gap:4px;margin-right:12px;white-space:nowrap}
.key i{display:inline-block;width:12px;height:10px;border-radius:2px}
footer{color:var(--mute);padding:12px 24px;border-top:1px solid var(--line)}
`;

/** The filter box and the open/close buttons; the page works without it. */
const SCRIPT = `
(function(){
  var tools=document.getElementById('tools');
  if(tools)tools.hidden=false;
  var box=document.getElementById('filter'),out=document.getElementById('matches');
  var items=Array.prototype.slice.call(document.querySelectorAll('[data-f]'));
  function apply(){
    var q=box.value.trim().toLowerCase(),shown=0;
    items.forEach(function(el){
      var hit=!q||el.textContent.toLowerCase().indexOf(q)>=0;
      el.classList.toggle('hidden-by-filter',!hit);
      if(hit)shown++;
      if(hit&&q){for(var p=el.parentElement;p;p=p.parentElement){if(p.tagName==='DETAILS')p.open=true;}}
    });
    out.textContent=q?shown+' matching':'';
  }
  box.addEventListener('input',apply);
  function all(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});}
  document.getElementById('expand').addEventListener('click',function(){all(true);});
  document.getElementById('collapse').addEventListener('click',function(){all(false);});
})();
`;

function symbolSpan(s: string | null): string {
  return s === null ? '' : ` <span class="sym">&lt;${e(s)}&gt;</span>`;
}

function insnLine(i: InsnEvidence): string {
  return `<code>${e(i.address)}</code>  <code>${e(i.text || '(bytes not in the image)')}</code>`;
}

function gadgetRow(g: GadgetEvidence, i: number): string {
  const insns = g.insns.map((x) => e(x.text)).join('; ');
  return (
    `<tr class="gadget" data-f><td class="mute">${i + 1}</td><td class="mono">${e(g.address)}</td>` +
    `<td class="mono insns">${insns || '<span class="mute">(bytes not in the image)</span>'}</td>` +
    `<td class="mono sym">${g.symbol === null ? '' : e(g.symbol)}</td>` +
    `<td class="mute">${e(g.enteredBy)}${g.length > 0 ? `, ${g.length} insns` : ''}</td></tr>`
  );
}

/** A colour key entry (the colour is one of ours, never from the data). */
function key(color: string, label: string): string {
  return `<span class="key"><i style="background:${color}"></i>${e(label)}</span>`;
}

function chainPicture(f: ReportFinding): string {
  const g = f.graph;
  if (g === null || g.nodes.length === 0) return '';
  const more = g.nodesTotal > g.nodes.length ? ` ${num(g.nodesTotal - g.nodes.length)} more functions are not drawn.` : '';
  return (
    `<figure class="pic chain-pic">${chainGraphSvg(g, `${f.detector}/${f.kind}: the chain of ${num(f.chainTotal)} gadgets on the call graph`)}` +
    `<figcaption>${key('#98a2b3', 'recent calls')}${key('#b42318', '✕ hijacked return')}${key('#d92d20', 'gadget steps (numbered)')}` +
    `${key('#067647', 'expected return')}${key('#c0c6cf', 'static call edge')} · blocks: ${key('#32d583', 'ran')}${key('#d0d5dd', 'never ran')}${key('#d92d20', 'gadget')}${e(more)}</figcaption></figure>`
  );
}

function chainBlock(f: ReportFinding, heading: string): string {
  if (f.chain === null || f.chain.length === 0) return '';
  const more = f.chainTotal > f.chain.length ? `<p class="cap">… ${num(f.chainTotal - f.chain.length)} more gadgets not shown.</p>` : '';
  return (
    `<div class="chain"><strong>${e(heading)}</strong> <span class="mute">(${num(f.chainTotal)} gadget${f.chainTotal === 1 ? '' : 's'})</span>` +
    chainPicture(f) +
    `<table><tr><th>#</th><th>gadget</th><th>instructions</th><th>symbol</th><th>entered by</th></tr>${f.chain.map(gadgetRow).join('')}</table>${more}</div>`
  );
}

/** The thread a finding ran in (process and thread id, as perf script's `pid/tid`). */
function threadRow(f: ReportFinding): string {
  if (f.pid === null || f.tid === null) return '';
  return `<tr><th>thread</th><td class="mono">${f.pid}/${f.tid}${f.pid === f.tid ? ' <span class="mute">(main thread)</span>' : ''}</td></tr>`;
}

/** `12/14 (name)` for a run's heading, or '' when the stream is not one thread's. */
function threadLabel(m: ReportModel): string {
  const t = m.thread;
  if (t === null) return '';
  return `${t.pid}/${t.tid}${t.name !== null ? ` (${t.name})` : ''}${t.pid === t.tid ? ', main thread' : ''}`;
}

function findingBlock(f: ReportFinding, index: number): string {
  const parts: string[] = [];
  const t = f.transfer;
  if (t !== null) {
    parts.push(
      `<table class="kv"><tr><th>transfer</th><td class="mono">${e(t.kind)} ${e(t.from)}${symbolSpan(t.fromSymbol)} → ${e(t.to)}${symbolSpan(t.toSymbol)}</td></tr>` +
        (t.source ? `<tr><th>at source</th><td>${insnLine(t.source)}</td></tr>` : '') +
        (t.target.length > 0 ? `<tr><th>at target</th><td>${t.target.map(insnLine).join('<br>')}</td></tr>` : '') +
        threadRow(f) +
        `<tr><th>trace offset</th><td class="mono">0x${f.offset.toString(16)}</td></tr>` +
        (f.cr3 !== null ? `<tr><th>address space</th><td class="mono">cr3 ${e(f.cr3)}</td></tr>` : '') +
        `</table>`,
    );
  } else {
    parts.push(`<p class="mono">${f.pid !== null && f.tid !== null ? `thread ${f.pid}/${f.tid}, ` : ''}trace offset 0x${f.offset.toString(16)}</p>`);
  }
  parts.push(chainBlock(f, 'Gadget chain'));
  if (f.callPath.length > 0) {
    parts.push(
      `<p><strong>Recent calls</strong> <span class="mute">(oldest first)</span></p><table><tr><th>call site</th><th>callee</th></tr>` +
        f.callPath.map((c) => `<tr><td class="mono">${e(c.site)}${symbolSpan(c.siteSymbol)}</td><td class="mono">${e(c.target)}${symbolSpan(c.targetSymbol)}</td></tr>`).join('') +
        `</table>`,
    );
  }
  const details = Object.entries(f.details);
  if (details.length > 0) {
    parts.push(`<table class="kv">${details.map(([k, v]) => `<tr><th>${e(k)}</th><td class="mono">${e(String(v))}</td></tr>`).join('')}</table>`);
  }
  return (
    `<details class="finding" data-f${index < 5 ? ' open' : ''}><summary><span class="sev ${e(f.severity)}">${e(f.severity.toUpperCase())}</span>` +
    `<strong>${e(f.detector)}/${e(f.kind)}</strong> — ${e(f.message)}</summary><div class="body">${parts.join('')}</div></details>`
  );
}

function section(id: string, title: string, body: string, open: boolean): string {
  return `<details class="sec" id="${e(id)}"${open ? ' open' : ''}><summary>${title}</summary><div class="body">${body}</div></details>`;
}

function statCards(m: ReportModel): string {
  const cov = m.coverage.filter((c) => c.unavailable === null);
  const fr = cov.reduce((a, c) => a + c.functionsRan, 0);
  const ft = cov.reduce((a, c) => a + c.functions, 0);
  const cards: [string, string][] = [
    ['instructions', num(m.trace.instructions)],
    ['control transfers', num(m.trace.transfers)],
    ['trace bytes', num(m.trace.bytes)],
    ['functions that ran', ft > 0 ? `${num(fr)} / ${num(ft)}` : '–'],
    ['findings', num(m.findings.total)],
  ];
  return `<div class="cards">${cards.map(([k, v]) => `<div class="card"><b>${v}</b><span>${e(k)}</span></div>`).join('')}</div>`;
}

function stripFigure(m: ReportModel): string {
  const svg = traceStripSvg(m);
  if (svg === '') return '';
  return (
    `<figure class="pic strip-pic">${svg}<figcaption>${key('#b42318', 'finding (high)')}${key('#b54708', 'medium')}${key('#1849a9', 'instructions (log scale)')}` +
    `${key('#7a5af8', 'system calls')}${key('#98a2b3', 'tracing disabled')}${key('#f79009', 'overflow')}${key('#d92d20', 'decode error')}<br>${e(traceStripSummary(m))}</figcaption></figure>`
  );
}

function summaryTable(m: ReportModel): string {
  const rows: [string, string][] = [];
  if (m.program) {
    rows.push(['program', `<code>${e(m.program.argv.join(' '))}</code>`]);
    rows.push(['outcome', e(m.program.outcome)]);
  }
  rows.push(['bundle', `<code>${e(m.source)}</code>`]);
  if (m.thread !== null) rows.push(['thread', e(threadLabel(m))]);
  if (m.recorder) rows.push(['recorder', e(m.recorder === 'qemu' ? 'qemu (emulated Intel PT)' : 'perf (hardware Intel PT)')]);
  rows.push(['modules', m.modules.map((x) => `<code>${e(x.name)}</code>`).join(', ') || '<span class="mute">none</span>']);
  rows.push(['gaps', `${num(m.trace.gaps)} <span class="mute">(tracing off, e.g. system calls in a user-only trace; overflows; errors)</span>`]);
  rows.push(['decode errors', num(m.trace.decodeErrors)]);
  rows.push(['detectors', m.detectors.map((d) => `${e(d.name)} (${num(d.findings)})`).join(', ')]);
  return statCards(m) + stripFigure(m) + `<table class="kv">${rows.map(([k, v]) => `<tr><th>${e(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function findingsSection(m: ReportModel, id: string): string {
  if (m.findings.total === 0) {
    return section(`${id}-findings`, 'Findings (0)', `<p class="verdict ok">No findings. ${e(verdict(m))}</p>`, true);
  }
  const best = longestChain(m);
  const body =
    (best !== null ? chainBlock(best, `Longest code-reuse chain: ${best.detector}/${best.kind} at trace offset 0x${best.offset.toString(16)}`) : '') +
    capNote(m.findings, 'findings') +
    m.findings.items.map((f, i) => findingBlock(f, i)).join('');
  return section(`${id}-findings`, `Findings (${num(m.findings.total)})`, body, true);
}

function uncheckedSection(m: ReportModel, id: string): string {
  if (m.unchecked.total === 0 && m.notes.length === 0) return '';
  const rows = m.unchecked.items
    .map((u) => `<tr data-f><td>${e(u.detector)}</td><td>${e(u.reason)}</td><td>${num(u.count)}</td><td class="mono">0x${u.firstOffset.toString(16)}</td></tr>`)
    .join('');
  const notes = m.notes.length > 0 ? `<p><strong>Notes</strong></p><ul>${m.notes.map((n) => `<li data-f>${e(n)}</li>`).join('')}</ul>` : '';
  const table = m.unchecked.total > 0 ? `<p class="mute">What the detectors could not check. A trace that could not be fully checked says so instead of passing silently.</p>${capNote(m.unchecked, 'notes')}<table><tr><th>detector</th><th>reason</th><th>count</th><th>first at</th></tr>${rows}</table>` : '';
  return section(`${id}-unchecked`, `Not checked (${num(m.unchecked.total)})`, table + notes, false);
}

function dormantSection(m: ReportModel, id: string): string {
  const d = m.dormant;
  if (d === null) {
    return section(`${id}-dormant`, 'Dormant code', `<p class="mute">No dormant-code analysis is attached to this report.</p>`, false);
  }
  if (d.triggers.total === 0) {
    return section(`${id}-dormant`, 'Dormant code (0)', `<p>The dormant-code analysis (${e(d.source)}) found no triggers.</p>`, false);
  }
  const rows = d.triggers.items
    .map(
      (t) =>
        `<tr data-f><td class="mono">${e(t.function)}<br>${e(t.address)}</td><td class="mono">${t.guard === null ? '' : e(t.guard)}</td><td>${e(t.condition)}</td>` +
        `<td class="mono">${t.input === null ? '<span class="mute">none</span>' : e(t.input)}</td><td>${t.confirmed === null ? 'not replayed' : t.confirmed ? 'yes, it ran' : 'no'}</td></tr>`,
    )
    .join('');
  const notes = d.notes.length > 0 ? `<ul>${d.notes.map((n) => `<li>${e(n)}</li>`).join('')}</ul>` : '';
  return section(
    `${id}-dormant`,
    `Dormant code (${num(d.triggers.total)} triggers)`,
    `<p class="mute">Code that did not run in this trace, and what would make it run (${e(d.source)}).</p>${capNote(d.triggers, 'triggers')}` +
      `<table><tr><th>dormant code</th><th>guard</th><th>condition</th><th>input</th><th>confirmed</th></tr>${rows}</table>${notes}`,
    true,
  );
}

function treemapFigure(c: ReportModel['coverage'][number], id: string): string {
  const svg = coverageTreemapSvg(c, id);
  if (svg === '') return '';
  const rest = c.rest.functions > 0 ? ` The ${num(c.rest.functions)} smallest functions that never ran share the hatched tile.` : '';
  return (
    `<figure class="pic treemap-pic">${svg}<figcaption>Each function is a tile sized by its static blocks; those that ran are left of the line: ${key('#eef1f5', 'never ran')}${key('rgb(209,250,223)', 'few blocks ran')}${key('rgb(6,118,71)', 'all blocks ran')}${e(rest)}</figcaption></figure>`
  );
}

function coverageSection(m: ReportModel, id: string): string {
  const parts: string[] = [];
  let k = 0;
  for (const c of m.coverage) {
    if (c.unavailable !== null) {
      parts.push(`<h3>${e(c.module)}</h3><p class="mute">No static CFG: ${e(c.unavailable)}</p>`);
      continue;
    }
    const frac = c.functions === 0 ? 0 : c.functionsRan / c.functions;
    const ran = c.ran.items
      .map(
        (f) =>
          `<tr data-f><td class="mono">${e(f.name)}</td><td class="mono">${e(f.address)}</td><td><span class="bar"><i style="width:${Math.round((100 * f.blocksRan) / Math.max(1, f.blocks))}%"></i></span>${num(f.blocksRan)}/${num(f.blocks)}</td><td>${num(f.entries)}</td></tr>`,
      )
      .join('');
    const never = c.neverRan.items.map((f) => `<li data-f title="${e(f.address)}">${e(f.name)}</li>`).join('');
    parts.push(
      `<h3>${e(c.module)}</h3><p><span class="bar"><i style="width:${Math.round(100 * frac)}%"></i></span>` +
        `${num(c.functionsRan)} of ${num(c.functions)} functions ran (${pct(c.functionsRan, c.functions)}); ${num(c.blocksRan)} of ${num(c.blocks)} blocks (${pct(c.blocksRan, c.blocks)})` +
        (c.blocksOutsideCfg > 0 ? `; <strong>${num(c.blocksOutsideCfg)} executed blocks start outside the static CFG</strong> (misaligned gadgets, generated code)` : '') +
        `</p>` +
        treemapFigure(c, `${id}-cov-${k++}`) +
        `<details><summary>Functions that ran (${num(c.ran.total)})</summary>${capNote(c.ran, 'functions')}<table><tr><th>function</th><th>entry</th><th>blocks ran</th><th>entries</th></tr>${ran}</table></details>` +
        `<details><summary>Functions that never ran (${num(c.neverRan.total)})</summary>${capNote(c.neverRan, 'functions')}<ul class="cols">${never}</ul></details>`,
    );
  }
  return section(`${id}-coverage`, 'Coverage', parts.join('') || '<p class="mute">No modules.</p>', false);
}

function timelineSection(m: ReportModel, id: string): string {
  const t = m.timeline;
  if (t.calls.total === 0) return section(`${id}-timeline`, 'Timeline of calls (0)', '<p class="mute">No calls were traced.</p>', false);
  const rows = t.calls.items
    .map(
      (c) =>
        `<tr data-f><td class="mono">${num(c.at)}</td><td class="fn mono" style="padding-left:${8 + Math.min(c.depth, 40) * 14}px">${e(c.targetSymbol ?? c.target)}</td>` +
        `<td class="mono mute">${e(c.siteSymbol ?? c.site)}</td></tr>`,
    )
    .join('');
  return section(
    `${id}-timeline`,
    `Timeline of calls (${num(t.calls.total)})`,
    `<p class="mute">Calls in execution order, indented by call depth; time is the number of instructions executed before the call. ` +
      `${num(t.returns)} returns, ${num(t.unmatchedReturns)} matched no open call; deepest nesting ${num(t.maxDepth)}. ` +
      `For a zoomable view, run <code>ptscope timeline</code> and open the JSON in Perfetto UI or speedscope.</p>` +
      capNote(t.calls, 'calls') +
      `<table class="tl"><tr><th>instruction</th><th>callee</th><th>call site</th></tr>${rows}</table>`,
    false,
  );
}

function modulesSection(m: ReportModel, id: string): string {
  const rows = m.modules
    .map(
      (x) =>
        `<tr data-f><td class="mono">${e(x.name)}</td><td class="mono">${e(x.start)}–${e(x.end)}</td><td class="mono">${x.runtime !== null ? `<strong>generated at run time</strong>${x.runtime.firstExecuted !== null ? ` (first ran after ${num(x.runtime.firstExecuted)} instructions)` : ''}` : e(x.originalPath ?? x.file ?? '(raw image)')}</td><td>${num(x.symbols)}</td><td>${x.hasCfg ? 'yes' : 'no'}</td></tr>`,
    )
    .join('');
  return section(`${id}-modules`, `Modules (${num(m.modules.length)})`, `<table><tr><th>module</th><th>run-time range</th><th>path</th><th>symbols</th><th>static CFG</th></tr>${rows}</table>`, false);
}

function runSection(m: ReportModel, i: number): string {
  const id = `run-${i}`;
  const bad = m.findings.total > 0;
  return (
    `<section class="run" id="${id}"><h2>${e(m.title)}${m.thread !== null ? ` <span class="mute">thread ${e(threadLabel(m))}</span>` : ''}</h2>` +
    `<div class="verdict ${bad ? 'bad' : 'ok'}">${e(verdict(m))}</div>` +
    section(`${id}-summary`, 'What was traced', summaryTable(m), true) +
    findingsSection(m, id) +
    uncheckedSection(m, id) +
    dormantSection(m, id) +
    coverageSection(m, id) +
    timelineSection(m, id) +
    modulesSection(m, id) +
    `</section>`
  );
}

export interface HtmlOptions {
  title?: string;
  /** When the report was made, shown in the footer (omitted if not given). */
  generated?: string;
}

/** The report page for one or more traces. */
export function renderHtmlReport(models: readonly ReportModel[], options: HtmlOptions = {}): string {
  const title = options.title ?? (models.length === 1 ? `ptscope report: ${models[0].title}` : 'ptscope report');
  const scriptHash = createHash('sha256').update(SCRIPT, 'utf8').digest('base64');
  const csp = `default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${scriptHash}'; img-src data:; base-uri 'none'; form-action 'none'`;
  const nav =
    models.length > 1
      ? `<nav class="runs" aria-label="traces"><ul>${models
          .map((m, i) => `<li><a href="#run-${i}"><span class="sev ${m.findings.total > 0 ? 'high' : 'low'}">${m.findings.total > 0 ? num(m.findings.total) : 'clean'}</span>${e(m.title)}${m.thread !== null ? ` <span class="mute">${m.thread.pid}/${m.thread.tid}</span>` : ''}</a></li>`)
          .join('')}</ul></nav>`
      : '';
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="${e(csp)}">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="generator" content="ptscope ${VERSION}">` +
    `<title>${e(title)}</title><style>${STYLE}</style></head><body>` +
    `<header class="top"><h1>${e(title)}</h1><div class="tools" id="tools" hidden>` +
    `<input type="search" id="filter" placeholder="Filter: symbol, address, detector…" aria-label="filter">` +
    `<button type="button" id="expand">Expand all</button><button type="button" id="collapse">Collapse all</button><span id="matches"></span></div></header>` +
    `<main>${nav}${models.map(runSection).join('')}</main>` +
    `<footer>Generated by ptscope ${VERSION}${options.generated !== undefined ? ` on ${e(options.generated)}` : ''}. ` +
    `This file is self-contained: it loads nothing from the network.</footer>` +
    `<script>${SCRIPT}</script></body></html>\n`
  );
}
