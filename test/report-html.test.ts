/**
 * The HTML report in a real browser (Debian's chromium, headless, driven by
 * playwright-core; no browser is downloaded): it renders, its sections and
 * the gadget chain are there, the filter works, it reads without
 * JavaScript, it fetches nothing, and a hostile symbol name from the traced
 * binary shows as text and never runs.
 *
 * The hostile binary is the demo's rop_stack program with two symbols
 * renamed in its string table: gadgets of the exploit's chain lie in both
 * functions, so the names reach the chain, the call path, the coverage
 * lists and each of the three pictures (the chain on the call graph, the
 * trace strip's finding tooltips, the coverage treemap).
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/temp-dirs.js';
import { renderHtmlReport, escapeHtml } from '../src/reports/html-report.js';
import { buildBundleReport, type ReportModel } from '../src/reports/report-model.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const DEMO = resolve('demo');
const CHROMIUM = '/usr/bin/chromium';
const HOSTILE = '<img src=x onerror=alert(1)>';
/** A function of the static program that holds the chain's `pop rdi; ret` gadget. */
const VICTIM = 'get_common_cache_info.constprop.0';
/** Closes the inline SVG and opens a script, if it were not escaped. */
const HOSTILE_SVG = '</svg><script>alert(2)';
/** The function that holds the chain's `syscall` gadget. */
const VICTIM_SVG = '__lll_lock_wake_private';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let work: string;
let reportPath: string;
let exploit: ReportModel;
let benign: ReportModel;
let context: BrowserContext;

/** Copy a bundle and rename VICTIM and VICTIM_SVG to the hostile names in its program's symbol string table. */
function hostileBundle(src: string, dst: string): void {
  cpSync(src, dst, { recursive: true });
  const prog = join(dst, 'images', '0-prog');
  const bytes = readFileSync(prog);
  for (const [from, to] of [
    [VICTIM, HOSTILE],
    [VICTIM_SVG, HOSTILE_SVG],
  ]) {
    expect(to.length).toBeLessThanOrEqual(from.length);
    const needle = Buffer.from(`\0${from}\0`, 'latin1');
    const at = bytes.indexOf(needle);
    expect(at).toBeGreaterThan(0);
    expect(bytes.indexOf(needle, at + 1)).toBe(-1);
    // Same offset, shorter name, NUL-terminated: every other string keeps its place.
    bytes.write(to + '\0', at + 1, 'latin1');
  }
  writeFileSync(prog, bytes);
}

async function launch(javaScriptEnabled: boolean): Promise<BrowserContext> {
  const profile = temps.make('ptscope-chromium-');
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    javaScriptEnabled,
    viewport: { width: 1280, height: 1000 },
  });
}

/** Open the report, recording dialogs, console errors (CSP violations included) and every request the page makes. */
async function open(ctx: BrowserContext, path: string): Promise<{ page: Page; dialogs: string[]; requests: string[]; errors: string[] }> {
  const page = await ctx.newPage();
  const dialogs: string[] = [];
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
  });
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto('file://' + path);
  await page.waitForLoadState('load');
  return { page, dialogs, requests, errors };
}

/** The three pictures of run 0, with the elements each must draw. */
const PICTURES = [
  { name: 'chain', figure: '#run-0-findings .chain-pic', marks: ['g.node', 'g.edge.hijack', 'g.edge.gadget', 'g.edge.call', 'g.edge.expected-return', 'g.cells rect'] },
  { name: 'strip', figure: '#run-0-summary .strip-pic', marks: ['g.finding-mark', 'path.insn-bars', 'rect.syscall-mark', 'rect.gap-mark'] },
  { name: 'treemap', figure: '#run-0-coverage .treemap-pic', marks: ['g.tile rect'] },
] as const;

beforeAll(async () => {
  expect(existsSync(CHROMIUM), 'Debian chromium is required (apt-get install chromium)').toBe(true);
  work = temps.make('ptscope-report-');
  hostileBundle(join(DEMO, 'rop_stack.exploit'), join(work, 'exploit'));
  exploit = buildBundleReport(join(work, 'exploit'), { title: 'rop_stack exploit (hostile symbols)' });
  benign = buildBundleReport(join(DEMO, 'rop_stack.benign'));
  reportPath = join(work, 'report.html');
  writeFileSync(reportPath, renderHtmlReport([exploit, benign], { generated: 'test' }));
  context = await launch(true);
});

afterAll(async () => {
  await context?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('report model', () => {
  it('carries the hostile name as data, unescaped', () => {
    const chain = exploit.findings.items.find((f) => f.chain !== null && f.chain.length >= 8)!;
    expect(chain).toBeDefined();
    expect(chain.chain!.some((g) => g.symbol === `prog!${HOSTILE}+0xc0`)).toBe(true);
    expect(exploit.coverage[0].ran.items.some((f) => f.name === HOSTILE) || exploit.coverage[0].neverRan.items.some((f) => f.name === HOSTILE)).toBe(true);
  });

  it('holds the chain on the call graph', () => {
    const f = exploit.findings.items.find((x) => x.detector === 'shadow-stack')!;
    const g = f.graph!;
    expect(g).not.toBeNull();
    const byName = (n: string) => g.nodes.findIndex((x) => x.name === n);
    const vulnerable = byName('vulnerable');
    expect(g.nodes[vulnerable].hijacked).toBe(true);
    expect(g.nodes[byName('main')].expectedReturn).toBe(true);
    // The call path: main called vulnerable.
    expect(g.edges).toContainEqual({ from: byName('main'), to: vulnerable, kind: 'call', steps: [], via: 'call' });
    // The hijacked return enters the first gadget's function.
    expect(g.edges).toContainEqual({ from: vulnerable, to: byName('__libc_write'), kind: 'hijack', steps: [], via: 'ret' });
    // Every gadget is counted in its function, and steps 2..8 join them in order.
    expect(g.nodes.reduce((a, n) => a + n.gadgets, 0)).toBe(8);
    expect(g.nodes[byName(HOSTILE)].gadgets).toBe(2);
    expect(g.nodes[byName(HOSTILE_SVG)].gadgets).toBe(2);
    expect(g.edges.filter((e) => e.kind === 'gadget').flatMap((e) => e.steps).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    // A gadget's block is marked in its function's cells.
    expect(g.nodes[byName(HOSTILE)].cells).toContain(2);
    expect(g.nodes.every((n) => n.cells.length <= 48)).toBe(true);
  });

  it('holds the trace strip, consistent with the counts of the walk', () => {
    const s = exploit.strip;
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    expect(s.bytes).toBe(exploit.trace.bytes);
    for (const series of [s.instructions, s.syscalls, s.disabled, s.overflows, s.errors, s.findings, s.severity]) expect(series.length).toBe(s.bins);
    expect(sum(s.instructions)).toBe(exploit.trace.instructions);
    expect(sum(s.disabled) + sum(s.overflows) + sum(s.errors)).toBe(exploit.trace.gaps);
    expect(sum(s.errors)).toBe(exploit.trace.decodeErrors);
    expect(sum(s.findings)).toBe(exploit.findings.total);
    // Every user-only system call turns tracing off: as many as the disabled gaps.
    expect(sum(s.syscalls)).toBe(sum(s.disabled));
    expect(Math.max(...s.severity)).toBe(3);
    expect(sum(benign.strip.findings)).toBe(0);
  });

  it('holds coverage tiles: the functions that ran first, the rest summed', () => {
    const c = exploit.coverage[0];
    const ranBlocks = c.ran.items.reduce((a, f) => a + f.blocksRan, 0);
    expect(c.tiles.reduce((a, t) => a + t.blocksRan, 0) + c.rest.blocksRan).toBe(ranBlocks);
    expect(c.tiles.length).toBeLessThanOrEqual(300);
    expect(c.tiles.length + c.rest.functions).toBeLessThanOrEqual(c.functions);
    const firstNever = c.tiles.findIndex((t) => t.blocksRan === 0);
    expect(firstNever).toBe(c.functionsRan);
    expect(c.tiles.some((t) => t.name === HOSTILE)).toBe(true);
  });

  it('caps the pictures\' data', () => {
    const small = buildBundleReport(join(work, 'exploit'), { limits: { stripBins: 16, coverageTiles: 10, chainGraphs: 1 } });
    expect(small.strip.bins).toBe(16);
    expect(small.strip.instructions.length).toBe(16);
    expect(small.strip.instructions.reduce((a, b) => a + b, 0)).toBe(small.trace.instructions);
    expect(small.coverage[0].tiles.length).toBe(10);
    expect(small.coverage[0].rest.functions).toBeGreaterThan(0);
    expect(small.findings.items.filter((f) => f.graph !== null).length).toBe(1);
  });

  it('escapes it in the HTML', () => {
    const html = readFileSync(reportPath, 'utf8');
    expect(html).not.toContain(HOSTILE);
    expect(html).toContain(escapeHtml(HOSTILE));
    expect(html).not.toContain(HOSTILE_SVG);
    expect(html).toContain(escapeHtml(HOSTILE_SVG));
    expect(escapeHtml(`"'<>&`)).toBe('&quot;&#39;&lt;&gt;&amp;');
  });
});

describe('HTML report in chromium', () => {
  it('renders every section, the chain and the verdicts', async () => {
    const { page, dialogs, requests, errors } = await open(context, reportPath);
    for (const id of ['summary', 'findings', 'dormant', 'coverage', 'timeline', 'modules']) {
      expect(await page.locator(`#run-0-${id}`).count(), id).toBe(1);
      expect(await page.locator(`#run-1-${id}`).count(), id).toBe(1);
    }
    const verdicts = await page.locator('.verdict').allInnerTexts();
    expect(verdicts[0]).toMatch(/^9 findings \(9 high\)/);
    expect(verdicts.some((v) => v.startsWith('No findings'))).toBe(true);
    // The longest chain, first in the findings: 8 gadgets with their instructions.
    const chain = page.locator('#run-0-findings .chain').first();
    expect(await chain.locator('tr.gadget').count()).toBe(8);
    const text = await chain.innerText();
    expect(text).toContain('pop rdi; ret');
    expect(text).toContain('pop rdx; pop rbx; ret');
    expect(text).toContain('syscall');
    // Coverage and timeline have content.
    // Closed sections: the content is in the markup (textContent), not rendered.
    expect(await page.locator('#run-0-coverage').textContent()).toMatch(/\d+ of [\d,]+ functions ran/);
    expect(await page.locator('#run-0-timeline tr').count()).toBeGreaterThan(50);
    expect(dialogs).toEqual([]);
    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:'))).toEqual([]);
    await page.close();
  });

  it('draws the three pictures, each with its marks on screen', async () => {
    const { page, dialogs, errors } = await open(context, reportPath);
    await page.locator('#expand').click();
    for (const p of PICTURES) {
      const svg = page.locator(`${p.figure} svg`).first();
      expect(await svg.count(), p.name).toBe(1);
      const box = await svg.boundingBox();
      expect(box, p.name).not.toBeNull();
      expect(box!.width, p.name).toBeGreaterThan(300);
      expect(box!.height, p.name).toBeGreaterThan(60);
      for (const mark of p.marks) {
        const marks = svg.locator(mark);
        expect(await marks.count(), `${p.name} ${mark}`).toBeGreaterThan(0);
        const first = await marks.first().boundingBox();
        expect(first, `${p.name} ${mark}`).not.toBeNull();
        expect(first!.width + first!.height, `${p.name} ${mark}`).toBeGreaterThan(0);
      }
    }
    // The chain: eight gadgets in five functions, the hijacked return out of `vulnerable`.
    const chain = page.locator(`${PICTURES[0].figure} svg`).first();
    expect(await chain.locator('g.node.gadgets').count()).toBe(5);
    expect(await chain.locator('g.edge.hijack').count()).toBe(1);
    expect(await chain.locator('g.edge.hijack title').textContent()).toMatch(/^hijacked ret: vulnerable → __libc_write$/);
    expect(await chain.locator('g.edge.expected-return title').textContent()).toContain('vulnerable → main');
    const steps = (await chain.locator('g.edge.gadget text.step').allTextContents()).flatMap((t) => t.split(',').map(Number));
    expect(steps.sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    // The strip: one marker per slice with findings, and the tooltips name them.
    const strip = page.locator(`${PICTURES[1].figure} svg`).first();
    expect(await strip.locator('g.finding-mark title').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('shadow-stack/return-mismatch (high)')]));
    expect(dialogs).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows hostile symbol names in every picture as text', async () => {
    const { page, dialogs, errors } = await open(context, reportPath);
    for (const p of PICTURES) {
      const text = (await page.locator(`${p.figure} svg`).first().textContent()) ?? '';
      expect(text, p.name).toContain(HOSTILE);
      expect(text, p.name).toContain(HOSTILE_SVG);
    }
    // Nothing the names hold became markup: one script (ours), no image, each figure one svg.
    expect(await page.locator('script').count()).toBe(1);
    expect(await page.locator('img').count()).toBe(0);
    for (const p of PICTURES) {
      const figures = await page.locator(p.figure).count();
      expect(figures, p.name).toBeGreaterThan(0);
      expect(await page.locator(`${p.figure} svg`).count(), p.name).toBe(figures);
      expect(await page.locator(`${p.figure} svg *`).evaluateAll((els) => els.filter((el) => el.namespaceURI !== 'http://www.w3.org/2000/svg').length), p.name).toBe(0);
    }
    await page.waitForTimeout(300);
    expect(dialogs).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('takes the README screenshot of the demo report', async () => {
    // What `ptscope demo` writes, without the hostile renaming: docs/report.png is a copy of this file.
    const demo = join(work, 'demo.html');
    const index = JSON.parse(readFileSync(join(DEMO, 'demo.json'), 'utf8')) as { samples: { bundle: string; title: string }[] };
    const titled = index.samples.map((s) => (s.bundle === 'rop_stack.benign' ? { ...benign, title: s.title } : buildBundleReport(join(DEMO, s.bundle), { title: s.title })));
    writeFileSync(demo, renderHtmlReport(titled, { title: 'ptscope demo report' }));
    const { page, errors } = await open(context, demo);
    await page.setViewportSize({ width: 1280, height: 1400 });
    expect(await page.locator('.chain-pic svg').first().isVisible()).toBe(true);
    expect(errors).toEqual([]);
    mkdirSync('build/artifacts', { recursive: true });
    await page.screenshot({ path: 'build/artifacts/report.png' });
    await page.close();
  });

  it('shows a hostile symbol name as text and never runs it', async () => {
    const { page, dialogs } = await open(context, reportPath);
    await page.locator('#expand').click();
    const body = await page.locator('body').innerText();
    expect(body).toContain(`prog!${HOSTILE}+0xc0`);
    expect(await page.locator('img').count()).toBe(0);
    // Give an injected onerror handler every chance to fire.
    await page.waitForTimeout(300);
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it('filters findings and rows with the filter box', async () => {
    const { page } = await open(context, reportPath);
    const visible = () => page.locator('#run-0-findings details.finding:not(.hidden-by-filter)').count();
    const before = await visible();
    expect(before).toBe(9);
    await page.locator('#filter').fill('do_dlopen');
    const after = await visible();
    expect(after).toBeGreaterThan(0);
    expect(after).toBeLessThan(before);
    expect(await page.locator('#matches').innerText()).toMatch(/\d+ matching/);
    await page.locator('#filter').fill('');
    expect(await visible()).toBe(before);
    await page.locator('#collapse').click();
    expect(await page.locator('details[open]').count()).toBe(0);
    await page.close();
  });

  it('reads without JavaScript', async () => {
    const noJs = await launch(false);
    try {
      const { page } = await open(noJs, reportPath);
      expect(await page.locator('#tools').isVisible()).toBe(false);
      const text = await page.locator('#run-0-findings').innerText();
      expect(text).toContain('shadow-stack/return-mismatch');
      expect(text).toContain('pop rsi; ret');
      // Closed sections still hold their content in the markup.
      expect(await page.locator('#run-0-timeline table.tl tr').count()).toBeGreaterThan(50);
      // The pictures need no script: the open sections show theirs.
      expect(await page.locator('#run-0-summary .strip-pic svg').isVisible()).toBe(true);
      expect(await page.locator('#run-0-findings .chain-pic svg').first().isVisible()).toBe(true);
    } finally {
      await noJs.close();
    }
  });
});
