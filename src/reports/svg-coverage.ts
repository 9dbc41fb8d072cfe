/**
 * Per-function coverage of one module as a treemap: each function is a
 * tile whose area is its number of static blocks and whose colour is the
 * share of them the trace ran (grey: never ran). The functions that ran
 * fill the left part and those that never ran the right part, each part as
 * wide as its share of the blocks. Functions beyond the model's cap share
 * one hatched tile. Tiles are laid out by the squarified
 * algorithm (Bruls, Huizing, van Wijk 2000): rows of tiles whose aspect
 * ratios stay close to 1. Names are escaped; each tile's `<title>` gives
 * the function, its entry and its counts.
 */
import type { CoverageTile, ReportCoverage } from './report-model.js';
import { clip, escapeHtml as e, num, px, svgOpen } from './svg-markup.js';

const W = 1000;
const H = 300;

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Item {
  area: number;
  tile: CoverageTile;
  rest: boolean;
}

/** Worst aspect ratio of a row of areas laid along a side of length `side`. */
function worst(row: readonly Item[], side: number): number {
  let sum = 0;
  let min = Infinity;
  let max = 0;
  for (const r of row) {
    sum += r.area;
    min = Math.min(min, r.area);
    max = Math.max(max, r.area);
  }
  if (sum <= 0 || side <= 0) return Infinity;
  const s2 = side * side;
  const sum2 = sum * sum;
  return Math.max((s2 * max) / sum2, sum2 / (s2 * min));
}

/** Lay `items` (areas already scaled to the rectangle, largest first) out in `box`. */
function squarify(items: readonly Item[], box: Rect): { item: Item; rect: Rect }[] {
  const placed: { item: Item; rect: Rect }[] = [];
  let free = { ...box };
  let row: Item[] = [];
  const layRow = (): void => {
    const sum = row.reduce((a, r) => a + r.area, 0);
    if (sum <= 0) return;
    if (free.w >= free.h) {
      // A column on the left.
      const w = Math.min(free.w, sum / free.h);
      let y = free.y;
      for (const r of row) {
        const h = (r.area / sum) * free.h;
        placed.push({ item: r, rect: { x: free.x, y, w, h } });
        y += h;
      }
      free = { x: free.x + w, y: free.y, w: free.w - w, h: free.h };
    } else {
      // A row on top.
      const h = Math.min(free.h, sum / free.w);
      let x = free.x;
      for (const r of row) {
        const w = (r.area / sum) * free.w;
        placed.push({ item: r, rect: { x, y: free.y, w, h } });
        x += w;
      }
      free = { x: free.x, y: free.y + h, w: free.w, h: free.h - h };
    }
    row = [];
  };
  for (const item of items) {
    const side = Math.min(free.w, free.h);
    if (row.length === 0 || worst([...row, item], side) <= worst(row, side)) {
      row.push(item);
    } else {
      layRow();
      row.push(item);
    }
  }
  layRow();
  return placed;
}

/** Fill colour for a share of blocks ran: grey for none, light to dark green. */
function fill(share: number): string {
  if (share <= 0) return '#eef1f5';
  const t = Math.min(1, share);
  // #d1fadf → #067647
  const mix = (a: number, b: number): number => Math.round(a + (b - a) * t);
  return `rgb(${mix(0xd1, 0x06)},${mix(0xfa, 0x76)},${mix(0xdf, 0x47)})`;
}

/** The treemap of one module (empty string without tiles); `id` is unique in the page. */
export function coverageTreemapSvg(c: ReportCoverage, id: string): string {
  const hatch = `${id}-hatch`;
  const items: Item[] = c.tiles.filter((t) => t.blocks > 0).map((tile) => ({ area: tile.blocks, tile, rest: false }));
  if (c.rest.functions > 0 && c.rest.blocks > 0) {
    items.push({ area: c.rest.blocks, tile: { name: `${num(c.rest.functions)} more functions`, address: '', blocks: c.rest.blocks, blocksRan: c.rest.blocksRan }, rest: true });
  }
  if (items.length === 0) return '';
  const total = items.reduce((a, i) => a + i.area, 0);
  const ranGroup = items.filter((i) => !i.rest && i.tile.blocksRan > 0);
  const neverGroup = items.filter((i) => i.rest || i.tile.blocksRan === 0);
  const ranArea = ranGroup.reduce((a, i) => a + i.area, 0);
  const split = (W * ranArea) / total;
  const placed: { item: Item; rect: Rect }[] = [];
  for (const [group, box] of [
    [ranGroup, { x: 0, y: 0, w: split, h: H }],
    [neverGroup, { x: split, y: 0, w: W - split, h: H }],
  ] as const) {
    const sum = group.reduce((a, i) => a + i.area, 0);
    if (sum <= 0 || box.w <= 0) continue;
    const scaled = group.map((i) => ({ ...i, area: (i.area * box.w * box.h) / sum })).sort((a, b) => b.area - a.area);
    placed.push(...squarify(scaled, box));
  }
  const out: string[] = [svgOpen('pic treemap', W, H, `Coverage treemap of ${c.module}: ${num(c.functionsRan)} of ${num(c.functions)} functions ran`)];
  out.push(
    `<defs><pattern id="${e(hatch)}" width="6" height="6" patternUnits="userSpaceOnUse"><path d="M0 6L6 0" stroke="#98a2b3" stroke-width="1"/></pattern></defs>`,
  );
  for (const { item, rect } of placed) {
    const t = item.tile;
    const share = t.blocks === 0 ? 0 : t.blocksRan / t.blocks;
    const title = item.rest
      ? `${t.name} (not drawn one by one): ${num(t.blocksRan)} of ${num(t.blocks)} blocks ran`
      : `${t.name} ${t.address}: ${num(t.blocksRan)} of ${num(t.blocks)} blocks ran (${(100 * share).toFixed(1)}%)`;
    const color = item.rest ? '#f2f4f7' : fill(share);
    let label = '';
    const chars = Math.floor((rect.w - 6) / 6.6);
    if (rect.h >= 14 && chars >= 4) {
      const light = share > 0.55 && !item.rest;
      label = `<text x="${px(rect.x + 3)}" y="${px(rect.y + 12)}" class="tile${light ? ' light' : ''}">${e(clip(t.name, chars))}</text>`;
    }
    out.push(
      `<g class="tile${item.rest ? ' rest' : ''}"><title>${e(title)}</title>` +
        `<rect x="${px(rect.x)}" y="${px(rect.y)}" width="${px(Math.max(0.5, rect.w))}" height="${px(Math.max(0.5, rect.h))}" fill="${color}" stroke="#fff" stroke-width="1"/>` +
        (item.rest ? `<rect x="${px(rect.x)}" y="${px(rect.y)}" width="${px(rect.w)}" height="${px(rect.h)}" fill="url(#${e(hatch)})" opacity="0.6"/>` : '') +
        label +
        `</g>`,
    );
  }
  if (split > 0 && split < W) out.push(`<line x1="${px(split)}" y1="0" x2="${px(split)}" y2="${H}" stroke="#1d2430" stroke-width="2"/>`);
  out.push('</svg>');
  return out.join('');
}
