// Opens the Headwise dashboard in headless Debian Chromium and checks what a person would look at.
// Usage: node dashboard.test.mjs <dashboard url> <screenshot dir> <trace id with attention> <head groups> <query heads>
// Exits 0 when every check passes; prints one "ok …" or "FAIL …" line per check.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, outDir, traceId, groupsText, queryHeadsText] = process.argv.slice(2);
const groups = Number(groupsText), queryHeads = Number(queryHeadsText);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!url || !outDir || !traceId || !groups || !queryHeads) {
  console.error('usage: node dashboard.test.mjs <url> <screenshot dir> <trace id> <head groups> <query heads>');
  process.exit(2);
}
if (!existsSync(executablePath)) {
  console.error(`FAIL no Chromium at ${executablePath}: apt-get install chromium`);
  process.exit(1);
}

const profile = mkdtempSync(join(tmpdir(), 'headwise-chromium-'));
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1440, height: 1000 },
  deviceScaleFactor: 1,
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', e => errors.push(String(e)));
  page.on('console', m => { if (m.type() === 'error') errors.push(`${m.text()} (${m.location().url})`); });

  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });

  // Cluster: every head group of the test model is listed under some silo.
  const headChips = page.locator('#silos [data-head^="browser/0/"]');
  await headChips.first().waitFor({ timeout: 10000 });
  check(await headChips.count() === groups, `cluster lists ${await headChips.count()} of ${groups} head groups of model browser`);
  const silos = await page.locator('#silos .silo').count();
  check(silos >= 2, `cluster shows ${silos} silos`);
  // Decode batches: some silo card shows the decode batches of browser/0 with a batch size and tokens/s.
  const batches = page.locator('#silos [data-decode-batch="browser/0"]');
  await batches.first().waitFor({ timeout: 10000 }).catch(() => {});
  const batchTexts = await batches.allTextContents();
  check(batchTexts.length >= 1 && batchTexts.every(t => /batch \d+/.test(t) && /mean \d/.test(t) && /tok\/s/.test(t)),
    `silo cards show decode batches of browser/0: ${JSON.stringify(batchTexts)}`);
  // Forward batches: every silo coordinated small forwards of browser/0 (32 tokens), so every card shows them.
  const forwardBatches = await page.locator('#silos [data-forward-batch="browser/0"]').allTextContents();
  check(forwardBatches.length === silos && forwardBatches.every(t => /^forward browser\/0/.test(t) && /batch \d+/.test(t) && /tok\/s/.test(t)),
    `silo cards show forward batches of browser/0: ${JSON.stringify(forwardBatches)}`);
  const kernels = await page.locator('#silos .badge.kernel').allTextContents();
  check(kernels.length === silos && kernels.every(k => k.length > 0), `every silo names its kernel (${kernels.join(', ')})`);

  // Trace: choose the forward that asked for attention from the list; the waterfall has one row per head group.
  const row = page.locator(`#traces tr[data-trace-id="${traceId}"]`);
  await row.waitFor({ timeout: 10000 });
  await row.click();
  await page.waitForFunction(
    id => document.querySelector('#trace-hint')?.textContent?.startsWith(id), traceId, { timeout: 10000 });
  const headRows = page.locator('#waterfall .wf-row[data-span-name="headwise.head"]');
  check(await headRows.count() === groups, `waterfall has ${await headRows.count()} head rows for ${groups} head groups`);
  const rowSilos = new Set(await headRows.evaluateAll(rows => rows.map(r => r.dataset.silo)));
  check(rowSilos.size >= 2, `waterfall head rows span ${rowSilos.size} silos`);
  check(await page.locator('#waterfall .wf-row[data-span-name="headwise.forward"]').count() === 1, 'waterfall has the forward span');
  check(await page.locator('#traces tr.selected').getAttribute('data-trace-id') === traceId, 'the clicked trace is selected');

  // Heads chart: one bar per group, the slowest marked.
  check(await page.locator('#heads-chart svg g[data-group]').count() === groups, 'heads chart has a bar per group');
  check(await page.locator('#heads-chart .straggler-label').count() === 1, 'heads chart marks the slowest head');

  // Attention: one heatmap per query head, actually drawn (not one flat colour).
  const canvases = page.locator('#attention canvas');
  await canvases.first().waitFor({ timeout: 10000 });
  check(await canvases.count() === queryHeads, `attention shows ${await canvases.count()} heatmaps for ${queryHeads} query heads`);
  const drawn = await canvases.evaluateAll(list => list.map(canvas => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    // Causal: the top-right corner (query 0, last key) is masked, the top-left (query 0, key 0) is not.
    const w = canvas.width;
    const corner = i => (data[i * 4] << 16) | (data[i * 4 + 1] << 8) | data[i * 4 + 2];
    return { colours: colours.size, masked: corner(w - 1) !== corner(0) };
  }));
  check(drawn.every(d => d.colours >= 3), `every heatmap is drawn (${drawn.map(d => d.colours).join(', ')} colours)`);
  check(drawn.every(d => d.masked), 'every heatmap shows the causal mask');

  await page.screenshot({ path: join(outDir, 'dashboard.png'), fullPage: true });
  await page.locator('#trace-panel').screenshot({ path: join(outDir, 'waterfall.png') });

  // The Orleans call spans are one click away and add rows between the forward and its heads.
  const before = await page.locator('#waterfall .wf-row').count();
  await page.locator('#orleans-spans').check();
  const after = await page.locator('#waterfall .wf-row').count();
  check(after > before, `Orleans call spans add rows (${before} → ${after})`);

  // Live: a new forward appears without reloading (the test's C# side runs one after "ready for live").
  const rowsNow = await page.locator('#traces tr[data-trace-id]').count();
  console.log('ready for live');
  await page.waitForFunction(n => document.querySelectorAll('#traces tr[data-trace-id]').length > n, rowsNow, { timeout: 15000 })
    .then(() => check(true, 'a new forward pass shows up without reloading'),
          () => check(false, 'a new forward pass shows up without reloading'));

  check(errors.length === 0, `no script errors in the Headwise dashboard${errors.length ? ': ' + errors.join(' | ') : ''}`);

  // The Orleans Dashboard is Orleans' own bundle: once, on a loaded two-core machine, its first render threw on a
  // payload it had not received yet. One reload is allowed for that; errors after it fail the test.
  errors.length = 0;
  const orleans = await page.goto(new URL('/orleans/', url).href, { waitUntil: 'load' });
  check(orleans?.status() === 200, `Orleans Dashboard at /orleans answers ${orleans?.status()}`);
  await page.waitForTimeout(1500);
  if (errors.length > 0) {
    console.log(`reloading /orleans after: ${errors.join(' | ')}`);
    errors.length = 0;
    await page.reload({ waitUntil: 'load' });
    await page.waitForTimeout(2500);
  }
  await page.screenshot({ path: join(outDir, 'orleans-dashboard.png') });
  check(errors.length === 0, `no script errors in the Orleans Dashboard${errors.length ? ': ' + errors.join(' | ') : ''}`);
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`screenshots in ${outDir}`);
process.exit(failures === 0 ? 0 : 1);
