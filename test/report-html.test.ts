/**
 * The HTML report in a real browser (Debian's chromium, headless, driven by
 * playwright-core; no browser is downloaded): it renders, its sections and
 * the gadget chain are there, the filter works, it reads without
 * JavaScript, it fetches nothing, and a hostile symbol name from the traced
 * binary shows as text and never runs.
 *
 * The hostile binary is the demo's rop_stack program with one symbol
 * renamed in its string table: a gadget of the exploit's chain lies in
 * that function, so the name reaches the chain, the call path and the
 * coverage lists.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderHtmlReport, escapeHtml } from '../src/reports/html-report.js';
import { buildBundleReport, type ReportModel } from '../src/reports/report-model.js';

const DEMO = resolve('demo');
const CHROMIUM = '/usr/bin/chromium';
const HOSTILE = '<img src=x onerror=alert(1)>';
/** A function of the static program that holds the chain's `pop rdi; ret` gadget. */
const VICTIM = 'get_common_cache_info.constprop.0';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let work: string;
let reportPath: string;
let exploit: ReportModel;
let benign: ReportModel;
let context: BrowserContext;

/** Copy a bundle and rename VICTIM to HOSTILE in its program's symbol string table. */
function hostileBundle(src: string, dst: string): void {
  cpSync(src, dst, { recursive: true });
  const prog = join(dst, 'images', '0-prog');
  const bytes = readFileSync(prog);
  const needle = Buffer.from(`\0${VICTIM}\0`, 'latin1');
  const at = bytes.indexOf(needle);
  expect(at).toBeGreaterThan(0);
  expect(bytes.indexOf(needle, at + 1)).toBe(-1);
  // Same offset, shorter name, NUL-terminated: every other string keeps its place.
  bytes.write(HOSTILE + '\0', at + 1, 'latin1');
  writeFileSync(prog, bytes);
}

async function launch(javaScriptEnabled: boolean): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'ptscope-chromium-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    javaScriptEnabled,
    viewport: { width: 1280, height: 1000 },
  });
}

/** Open the report, recording dialogs and every request the page makes. */
async function open(ctx: BrowserContext, path: string): Promise<{ page: Page; dialogs: string[]; requests: string[] }> {
  const page = await ctx.newPage();
  const dialogs: string[] = [];
  const requests: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('request', (r) => requests.push(r.url()));
  await page.goto('file://' + path);
  await page.waitForLoadState('load');
  return { page, dialogs, requests };
}

beforeAll(async () => {
  expect(existsSync(CHROMIUM), 'Debian chromium is required (apt-get install chromium)').toBe(true);
  work = mkdtempSync(join(tmpdir(), 'ptscope-report-'));
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

  it('escapes it in the HTML', () => {
    const html = readFileSync(reportPath, 'utf8');
    expect(html).not.toContain(HOSTILE);
    expect(html).toContain(escapeHtml(HOSTILE));
    expect(escapeHtml(`"'<>&`)).toBe('&quot;&#39;&lt;&gt;&amp;');
  });
});

describe('HTML report in chromium', () => {
  it('renders every section, the chain and the verdicts', async () => {
    const { page, dialogs, requests } = await open(context, reportPath);
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
    expect(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:'))).toEqual([]);
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
    } finally {
      await noJs.close();
    }
  });
});
