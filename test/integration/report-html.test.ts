/**
 * The HTML report in a real headless browser (Debian's chromium through playwright-core): the
 * page renders without a console or page error, loads nothing from the network, draws one bar
 * per day, shows the table and the date range, and runs no script smuggled in through a user id.
 * A screenshot is saved to test/artifacts/report.png.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { PROJECT_ROOT } from '../helpers/git-repo.js';
import { commit, session, writeBatch } from '../helpers/report-store.js';
import { tempDir } from '../helpers/store.js';

/** Debian's chromium (`.ci/run` installs it); FLOWFORGE_CHROMIUM points elsewhere. */
const CHROMIUM = process.env.FLOWFORGE_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(PROJECT_ROOT, 'test/artifacts');
const H = 3_600_000;

const XSS_SCRIPT = '<script>window.__pwned = 1</script>';
const XSS_IMG = '<img src=x onerror="window.__pwned = 2">';

test('the HTML report renders in chromium: no errors, no network, one bar per day stacked by task, the table and the date range', async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.fail(`chromium not found at ${CHROMIUM}: install it with "apt-get install -y --no-install-recommends chromium" (as .ci/run does), or set FLOWFORGE_CHROMIUM to a chromium binary`);
    return;
  }
  const dir = tempDir(t);
  const dataRoot = path.join(dir, '.flowforge');
  writeBatch(dataRoot, [
    session('alice', 'a1', '2026-03-02T08:00:00Z', 2 * H, 'T-1'),
    session('alice', 'a2', '2026-03-02T13:00:00Z', H, 'T-2'),
    session(XSS_SCRIPT, 'x1', '2026-03-03T09:00:00Z', 1.5 * H, 'T-1'),
    commit('c1', XSS_IMG, '2026-03-03T10:00:00Z'),
    session('alice', 'a3', '2026-03-05T09:00:00Z', 0.5 * H, XSS_IMG),
  ]);
  const file = path.join(dir, 'report.html');
  const run = runCli(['aggregate-report', `--data-path=${dataRoot}`, '--by=user', '--format=html', `--output=${file}`], { cwd: dir });
  t.is(run.code, 0, run.stderr);
  t.is(run.json.result.output, file);
  const html = fs.readFileSync(file, 'utf8');
  t.false(html.includes(XSS_SCRIPT));
  t.false(html.includes(XSS_IMG));
  t.false(/\b(?:src|href)=["']?https?:/i.test(html)); // nothing to fetch
  t.false(html.includes('sourceMappingURL')); // the inlined Chart.js bundle's map comment is stripped

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    if (!request.url().startsWith('file:') && !request.url().startsWith('data:')) requests.push(request.url());
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });

  const chart = await page.evaluate(() => {
    const c = (globalThis as unknown as { Chart: { getChart(id: string): any } }).Chart.getChart('daily-chart');
    return {
      labels: c.data.labels as string[],
      stacked: [c.options.scales.x.stacked, c.options.scales.y.stacked],
      datasets: c.data.datasets.map((d: { label: string; data: number[] }, i: number) => ({ label: d.label, data: d.data, bars: c.getDatasetMeta(i).data.length })),
      // Bars actually drawn with a height, per day (a day's stack counts once).
      daysWithBars: (c.data.labels as string[]).filter((_: string, day: number) => c.data.datasets.some((d: { data: number[] }, i: number) => (d.data[day] ?? 0) > 0 && c.getDatasetMeta(i).data[day].height > 0)),
    };
  });
  t.deepEqual(chart.labels, ['2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05']); // one bar per calendar day, 03-04 empty
  t.deepEqual(chart.stacked, [true, true]);
  t.deepEqual(chart.datasets, [
    { label: 'T-1', data: [2, 1.5, 0, 0], bars: 4 },
    { label: 'T-2', data: [1, 0, 0, 0], bars: 4 },
    { label: XSS_IMG, data: [0, 0, 0, 0.5], bars: 4 },
  ]);
  t.deepEqual(chart.daysWithBars, ['2026-03-02', '2026-03-03', '2026-03-05']);

  const table = await page.$$eval('#report-table tr', (rows) => rows.map((row) => [...row.querySelectorAll('th, td')].map((cell) => cell.textContent)));
  t.deepEqual(table, [
    ['user', 'entries', 'commits', 'tracked (h)'],
    [XSS_IMG, '1', '1', '0.00'],
    [XSS_SCRIPT, '1', '0', '1.50'],
    ['alice', '3', '0', '3.50'],
    ['(total)', '5', '1', '5.00'],
  ]);
  t.is(await page.textContent('#date-range'), '2026-03-02 – 2026-03-05');
  t.is(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned), undefined);
  t.is(await page.$$eval('img', (imgs) => imgs.length), 0);
  t.deepEqual(problems, []);
  t.deepEqual(requests, []);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const shot = path.join(ARTIFACTS, 'report.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.true(fs.statSync(shot).size > 10_000, 'the screenshot holds a rendered page');
});
