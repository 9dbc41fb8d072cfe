/**
 * A gadget chain drawn on the call graph (the model's {@link ChainGraph}):
 *
 * - left column: the recent call path, oldest caller on top, joined by its
 *   calls (grey);
 * - the function whose return was hijacked carries a red ✕, the hijacked
 *   return is a thick red arrow to the first gadget, and a dashed green
 *   arrow shows where the return should have gone;
 * - right columns: the functions that hold gadgets, in the order the chain
 *   first reaches them, joined by red arrows numbered with the gadget steps;
 * - dotted grey arrows: direct calls the static CFG knows between the
 *   functions shown;
 * - inside each function, its static blocks in address order: green ran,
 *   grey never ran, red holds a gadget.
 *
 * Arrowheads are drawn as paths (no `<marker>` ids, which would have to be
 * unique across the page). Every name is escaped and clipped; the full name
 * is in the node's `<title>`.
 */
import type { ChainEdge, ChainGraph, ChainNode } from './chain-graph.js';
import { clip, escapeHtml as e, num, px, svgOpen } from './svg-markup.js';

const NODE_W = 250;
const NODE_H = 60;
const ROW = NODE_H + 28;
const COL = NODE_W + 130;
const PAD = 16;
const ROWS_PER_COLUMN = 5;

const COLOR = { call: '#98a2b3', staticCall: '#c0c6cf', hijack: '#b42318', gadget: '#d92d20', expected: '#067647', text: '#1d2430', mute: '#5b6573' };
const CELL_COLOR = ['#d0d5dd', '#32d583', '#d92d20'];

interface Box {
  x: number;
  y: number;
}

interface Point {
  x: number;
  y: number;
}

/** Place the nodes: the call path in the first column, the rest in columns to its right. */
function layout(g: ChainGraph): { boxes: Box[]; width: number; height: number } {
  const boxes: Box[] = new Array(g.nodes.length);
  const onPath = g.nodes.map((n, i) => ({ n, i })).filter(({ n }) => n.callDepth >= 0).sort((a, b) => a.n.callDepth - b.n.callDepth);
  const others = g.nodes.map((n, i) => ({ n, i })).filter(({ n }) => n.callDepth < 0);
  let col = 0;
  let rows = 0;
  onPath.forEach(({ i }, r) => (boxes[i] = { x: PAD, y: PAD + r * ROW }));
  rows = onPath.length;
  if (onPath.length > 0) col = 1;
  const perColumn = Math.max(ROWS_PER_COLUMN, onPath.length);
  others.forEach(({ i }, k) => {
    const c = col + Math.floor(k / perColumn);
    const r = k % perColumn;
    boxes[i] = { x: PAD + c * COL, y: PAD + r * ROW };
    rows = Math.max(rows, r + 1);
  });
  const columns = col + Math.ceil(others.length / perColumn);
  return { boxes, width: PAD * 2 + Math.max(1, columns) * COL - (COL - NODE_W), height: PAD * 2 + Math.max(1, rows) * ROW - (ROW - NODE_H) };
}

/** Point of a cubic Bézier at t. */
function bezier(p0: Point, p1: Point, p2: Point, p3: Point, t: number): Point {
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return { x: a * p0.x + b * p1.x + c * p2.x + d * p3.x, y: a * p0.y + b * p1.y + c * p2.y + d * p3.y };
}

/** A filled arrowhead at `tip`, pointing away from `from`. */
function arrowhead(from: Point, tip: Point, color: string, size: number): string {
  const dx = tip.x - from.x;
  const dy = tip.y - from.y;
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len;
  const uy = dy / len;
  const bx = tip.x - ux * size;
  const by = tip.y - uy * size;
  const w = size * 0.45;
  return `<path d="M${px(tip.x)} ${px(tip.y)}L${px(bx - uy * w)} ${px(by + ux * w)}L${px(bx + uy * w)} ${px(by - ux * w)}Z" fill="${color}"/>`;
}

/** The curve of an edge between two boxes: [start, control 1, control 2, end]. */
function route(a: Box, b: Box, same: boolean, lane: number): [Point, Point, Point, Point] {
  if (same) {
    // A loop on the right side of the node.
    const p0 = { x: a.x + NODE_W, y: a.y + 18 };
    const p3 = { x: a.x + NODE_W, y: a.y + NODE_H - 14 };
    const out = 46 + lane * 10;
    return [p0, { x: p0.x + out, y: p0.y - 20 }, { x: p3.x + out, y: p3.y + 20 }, p3];
  }
  if (a.x === b.x) {
    // Same column: an arc on the right, wider for each further edge.
    const down = b.y > a.y;
    const p0 = { x: a.x + NODE_W, y: a.y + NODE_H / 2 + (down ? 6 : -6) };
    const p3 = { x: b.x + NODE_W, y: b.y + NODE_H / 2 + (down ? -6 : 6) };
    const out = 40 + lane * 12 + Math.abs(b.y - a.y) / 8;
    return [p0, { x: p0.x + out, y: p0.y }, { x: p3.x + out, y: p3.y }, p3];
  }
  const right = b.x > a.x;
  const p0 = { x: right ? a.x + NODE_W : a.x, y: a.y + NODE_H / 2 };
  const p3 = { x: right ? b.x : b.x + NODE_W, y: b.y + NODE_H / 2 };
  const dx = Math.max(40, Math.abs(p3.x - p0.x) / 2);
  return [p0, { x: p0.x + (right ? dx : -dx), y: p0.y }, { x: p3.x - (right ? dx : -dx), y: p3.y }, p3];
}

/** A straight call arrow from a caller down to the callee right below it. */
function straightDown(a: Box, b: Box): [Point, Point, Point, Point] | null {
  if (a.x !== b.x || b.y !== a.y + ROW) return null;
  const p0 = { x: a.x + NODE_W / 2, y: a.y + NODE_H };
  const p3 = { x: b.x + NODE_W / 2, y: b.y };
  return [p0, p0, p3, p3];
}

/** How far the drawing reaches (a Bézier curve stays inside the hull of its control points). */
interface Extent {
  x: number;
  y: number;
}

function edgeSvg(g: ChainGraph, edge: ChainEdge, boxes: Box[], lane: number, extent: Extent): string {
  const a = boxes[edge.from];
  const b = boxes[edge.to];
  if (a === undefined || b === undefined) return '';
  const from = g.nodes[edge.from];
  const to = g.nodes[edge.to];
  const pts = (edge.kind === 'call' ? straightDown(a, b) : null) ?? route(a, b, edge.from === edge.to, lane);
  const [p0, p1, p2, p3] = pts;
  for (const p of pts) {
    extent.x = Math.max(extent.x, p.x + 20);
    extent.y = Math.max(extent.y, p.y + 20);
  }
  const d = `M${px(p0.x)} ${px(p0.y)}C${px(p1.x)} ${px(p1.y)} ${px(p2.x)} ${px(p2.y)} ${px(p3.x)} ${px(p3.y)}`;
  const style =
    edge.kind === 'hijack'
      ? { color: COLOR.hijack, width: 3.5, dash: '' }
      : edge.kind === 'gadget'
        ? { color: COLOR.gadget, width: 1.8, dash: '' }
        : edge.kind === 'expected-return'
          ? { color: COLOR.expected, width: 1.5, dash: '6 4' }
          : edge.kind === 'call'
            ? { color: COLOR.call, width: 1.5, dash: '' }
            : { color: COLOR.staticCall, width: 1.2, dash: '2 3' };
  const what =
    edge.kind === 'hijack'
      ? `hijacked ${edge.via}: ${from.name} → ${to.name}`
      : edge.kind === 'gadget'
        ? `gadget step${edge.steps.length === 1 ? '' : 's'} ${edge.steps.join(', ')} (entered by ${edge.via}): ${from.name} → ${to.name}`
        : edge.kind === 'expected-return'
          ? `where the return should have gone: ${from.name} → ${to.name}`
          : edge.kind === 'call'
            ? `call (recent call path): ${from.name} → ${to.name}`
            : `direct call in the static CFG: ${from.name} → ${to.name}`;
  const tangentFrom = p2.x === p3.x && p2.y === p3.y ? p0 : p2;
  const parts = [
    `<g class="edge ${e(edge.kind)}"><title>${e(what)}</title>`,
    `<path d="${d}" fill="none" stroke="${style.color}" stroke-width="${style.width}"${style.dash ? ` stroke-dasharray="${style.dash}"` : ''}/>`,
    arrowhead(tangentFrom, p3, style.color, edge.kind === 'hijack' ? 12 : 9),
  ];
  const mid = bezier(p0, p1, p2, p3, 0.5);
  if (edge.kind === 'gadget' && edge.steps.length > 0) {
    const label = clip(edge.steps.join(','), 12);
    const w = 8 + label.length * 6.6;
    parts.push(`<rect x="${px(mid.x - w / 2)}" y="${px(mid.y - 8)}" width="${px(w)}" height="16" rx="8" fill="#fff" stroke="${COLOR.gadget}"/>`);
    parts.push(`<text x="${px(mid.x)}" y="${px(mid.y + 4)}" text-anchor="middle" class="step">${e(label)}</text>`);
  } else if (edge.kind === 'hijack') {
    parts.push(`<text x="${px(mid.x)}" y="${px(mid.y - 8)}" text-anchor="middle" class="edge-label hijack">${e(`✕ hijacked ${edge.via}`)}</text>`);
  } else if (edge.kind === 'expected-return') {
    parts.push(`<text x="${px(mid.x)}" y="${px(mid.y + 14)}" text-anchor="middle" class="edge-label expected">expected return</text>`);
  }
  parts.push('</g>');
  return parts.join('');
}

function nodeSvg(n: ChainNode, b: Box): string {
  const role = n.gadgets > 0 ? 'gadgets' : n.callDepth >= 0 ? 'caller' : 'other';
  const stroke = n.hijacked ? COLOR.hijack : n.gadgets > 0 ? COLOR.gadget : n.expectedReturn ? COLOR.expected : '#98a2b3';
  const bg = n.gadgets > 0 ? '#fef3f2' : '#fff';
  const ran = n.cells.filter((c) => c > 0).length;
  const title =
    `${n.name}${n.module !== null ? ` in ${n.module}` : ''}${n.entry !== null ? ` at ${n.entry}` : ''}` +
    (n.gadgets > 0 ? `\n${num(n.gadgets)} gadget${n.gadgets === 1 ? '' : 's'} of the chain` : '') +
    (n.hijacked ? '\nits return was hijacked' : '') +
    (n.expectedReturn ? '\nthe hijacked return should have come back here' : '') +
    (n.blocks > 0 ? `\n${num(n.blocks)} static blocks` : '\nno static CFG');
  const sub = [n.module ?? '', n.entry ?? '', n.gadgets > 0 ? `${n.gadgets} gadget${n.gadgets === 1 ? '' : 's'}` : ''].filter((s) => s !== '').join(' · ');
  const parts = [
    `<g class="node ${role}"><title>${e(title)}</title>`,
    `<rect x="${px(b.x)}" y="${px(b.y)}" width="${NODE_W}" height="${NODE_H}" rx="6" fill="${bg}" stroke="${stroke}" stroke-width="${n.hijacked ? 2.5 : 1.3}"/>`,
    `<text x="${px(b.x + 8)}" y="${px(b.y + 17)}" class="fn">${e(clip(n.name, 31))}</text>`,
    `<text x="${px(b.x + 8)}" y="${px(b.y + 32)}" class="sub">${e(clip(sub, 40))}</text>`,
  ];
  if (n.cells.length > 0) {
    const cw = Math.min(8, (NODE_W - 16) / n.cells.length);
    let cells = '';
    n.cells.forEach((c, i) => {
      cells += `<rect x="${px(b.x + 8 + i * cw)}" y="${px(b.y + 41)}" width="${px(Math.max(1, cw - 1))}" height="10" fill="${CELL_COLOR[c] ?? CELL_COLOR[0]}"/>`;
    });
    parts.push(`<g class="cells"><title>${e(`${num(n.blocks)} blocks in address order${n.blocks > n.cells.length ? `, folded into ${n.cells.length} cells` : ''}: green ran, grey never ran, red holds a gadget (${num(ran)} cells ran or hold one)`)}</title>${cells}</g>`);
  }
  if (n.hijacked) {
    const cx = b.x + NODE_W - 14;
    const cy = b.y + 14;
    parts.push(`<circle cx="${px(cx)}" cy="${px(cy)}" r="9" fill="${COLOR.hijack}"/><path d="M${px(cx - 4)} ${px(cy - 4)}L${px(cx + 4)} ${px(cy + 4)}M${px(cx + 4)} ${px(cy - 4)}L${px(cx - 4)} ${px(cy + 4)}" stroke="#fff" stroke-width="2"/>`);
  }
  parts.push('</g>');
  return parts.join('');
}

const EDGE_ORDER: Record<ChainEdge['kind'], number> = { 'static-call': 0, call: 1, 'expected-return': 2, gadget: 3, hijack: 4 };

/** The chain picture (empty string for a graph without nodes). */
export function chainGraphSvg(g: ChainGraph, title: string): string {
  if (g.nodes.length === 0) return '';
  const { boxes, width, height } = layout(g);
  const extent: Extent = { x: width, y: height };
  const out: string[] = [];
  g.nodes.forEach((n, i) => {
    if (boxes[i] !== undefined) out.push(nodeSvg(n, boxes[i]));
  });
  const edges = [...g.edges].sort((a, b) => EDGE_ORDER[a.kind] - EDGE_ORDER[b.kind]);
  // Edges that share a column or a node get their own lane so they do not overlap.
  const lanes = new Map<string, number>();
  for (const edge of edges) {
    const a = boxes[edge.from];
    const key = edge.from === edge.to ? `self${edge.from}` : a !== undefined && boxes[edge.to] !== undefined && a.x === boxes[edge.to].x ? `col${a.x}` : 'x';
    const lane = lanes.get(key) ?? 0;
    lanes.set(key, lane + 1);
    out.push(edgeSvg(g, edge, boxes, lane, extent));
  }
  return svgOpen('pic chain-graph', extent.x, extent.y, title) + out.join('') + '</svg>';
}
