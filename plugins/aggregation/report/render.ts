/**
 * Renderings of an `aggregate-report` result for `--format=text|csv|html` (the JSON document
 * is the host's). Each library is loaded on first use, so only a report pays for it:
 * cli-table3 (text table), csv-stringify (CSV), escape-html and Chart.js's browser bundle
 * (HTML). Hours are `trackedMs / 3,600,000`, shown with two decimals (0.01 h = 36 s).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { AggregateReportResult } from '../handlers/aggregate-report.js';

const require = createRequire(import.meta.url);
const MS_PER_HOUR = 3_600_000;

/** Hours with two decimals, e.g. `1.50` for 5,400,000 ms. */
export const hours = (ms: number): string => (ms / MS_PER_HOUR).toFixed(2);

/**
 * Label of the total row (text and HTML). Parenthesized like `(none)`: the tool's own
 * labels; a key that reads the same is still a row above it, the total row is always last.
 */
export const TOTAL_LABEL = '(total)';

/**
 * Control characters that would break a table or turn text around: C0 (U+0000–U+001F, tab and
 * newline included), DEL and C1 (U+007F–U+009F), and the bidi controls U+200E, U+200F,
 * U+202A–U+202E, U+2066–U+2069.
 */
const UNSAFE_IN_KEY = /[\u0000-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

/**
 * A key as rendered in text, CSV and HTML: each control or bidi character of
 * {@link UNSAFE_IN_KEY} as a visible `\uXXXX` escape (`\u202E`, `\u0009` for a tab), so a
 * taskId cannot break the table's lines or reverse the text after it. JSON keeps the raw value.
 */
export const visibleKey = (key: string): string => key.replace(UNSAFE_IN_KEY, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`);

/** `2026-03-01 – 2026-03-07`, or a note when nothing was counted. */
function dayRange(r: AggregateReportResult): string {
  const { firstDay, lastDay } = r.range;
  if (firstDay === null || lastDay === null) return 'no entries';
  return firstDay === lastDay ? firstDay : `${firstDay} – ${lastDay}`;
}

/** One line on what was asked: bounds, zone, scope. */
function describeQuery(r: AggregateReportResult): string {
  const bounds = [r.range.since ? `since ${r.range.since}` : '', r.range.until ? `until ${r.range.until}` : ''].filter(Boolean).join(', ');
  return `${bounds ? `${bounds}; ` : ''}days in ${r.timeZone} (commits on their author's local day); ${r.scope} scope`;
}

/** Lines about what was not counted and why, for text and HTML. */
export function reportNotes(r: AggregateReportResult): string[] {
  const e = r.excluded;
  const notes: string[] = [];
  if (e.abandonedBatches > 0) notes.push(`${e.abandonedBatches} abandoned batch(es) with ${e.abandonedEntries} entries are not counted (aggregated/recovery/abandoned/)`);
  if (e.quarantinedFiles > 0) notes.push(`${e.quarantinedFiles} quarantined file(s) in aggregated/recovery/errors/ are not counted`);
  if (e.supersededSessions > 0) notes.push(`${e.supersededSessions} earlier import(s) of a work session are not counted (each session counts once, at its latest import)`);
  if (e.outOfRange > 0) notes.push(`${e.outOfRange} entries outside the date range`);
  return [...notes, ...r.warnings];
}

/** An aligned table (cli-table3): one row per key (see {@link visibleKey}) and a {@link TOTAL_LABEL} row, then the notes. */
export function renderText(r: AggregateReportResult): string {
  const Table = require('cli-table3') as typeof import('cli-table3');
  const table = new Table({
    head: [r.by, 'entries', 'commits', 'tracked (h)'],
    colAligns: ['left', 'right', 'right', 'right'],
    // No colours: the output is often piped or pasted into a bill. Compact: no line between rows.
    style: { head: [], border: [], compact: true },
  });
  for (const row of r.rows) table.push([visibleKey(row.key), String(row.entries), String(row.commits), hours(row.trackedMs)]);
  table.push([TOTAL_LABEL, String(r.totals.entries), String(r.totals.commits), hours(r.totals.trackedMs)]);
  const lines = [`Time report by ${r.by}: ${dayRange(r)}`, describeQuery(r), table.toString()];
  const notes = reportNotes(r);
  if (notes.length > 0) lines.push(...notes.map((n) => `note: ${n}`));
  return lines.join('\n');
}

/**
 * CSV (csv-stringify, RFC 4180 quoting): a header `<by>,entries,commits,trackedMs,trackedHours`
 * and one line per row (keys as {@link visibleKey}); no total line, so the file sums cleanly in a spreadsheet. Values that a
 * spreadsheet would run as a formula (`=`, `+`, `-`, `@`…) are prefixed with `'`.
 */
export async function renderCsv(r: AggregateReportResult): Promise<string> {
  const { stringify } = await import('csv-stringify/sync');
  return stringify(
    r.rows.map((row) => [visibleKey(row.key), row.entries, row.commits, row.trackedMs, hours(row.trackedMs)]),
    { header: true, columns: [r.by, 'entries', 'commits', 'trackedMs', 'trackedHours'], escape_formulas: true },
  );
}

/**
 * Chart.js's UMD browser bundle, read from this package's node_modules: inlined into the HTML
 * so the page needs no network. (Reading a library's own file, like `import()`; not store data.)
 * Its `//# sourceMappingURL=` comment is stripped: the map is not inlined, and a browser's
 * developer tools would otherwise try to fetch it from the page's folder.
 */
function chartJsBundle(): string {
  const file = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');
  return fs.readFileSync(file, 'utf8').replace(/\n?\/\/[#@] sourceMappingURL=[^\n]*/g, '');
}

/** JSON safe inside a `<script>` element: `<`, `>`, `&` and the JS line separators escaped. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const cspHash = (source: string): string => `'sha256-${createHash('sha256').update(source).digest('base64')}'`;

/** Series colours (Okabe–Ito, colour-blind safe, plus greys). */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000', '#7F7F7F', '#B07AA1', '#BBBBBB'];

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
.range { color: #555; margin: 0 0 1rem; }
.chart { position: relative; height: 360px; max-width: 1100px; }
table { border-collapse: collapse; margin-top: 1.5rem; }
th, td { padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tfoot th { border-top: 2px solid #888; }
.notes { color: #555; }
`;

const INIT = `
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  new Chart(document.getElementById('daily-chart'), {
    type: 'bar',
    data: {
      labels: data.days,
      datasets: data.tasks.map(function (t, i) {
        return { label: t.task, data: t.hours, backgroundColor: data.palette[i % data.palette.length] };
      })
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: 'hours' } }
      },
      plugins: { title: { display: true, text: 'Tracked hours per day, by task' } }
    }
  });
})();
`;

/**
 * One self-contained HTML page: the date range, a Chart.js stacked bar chart of tracked hours
 * per day by task (one bar per calendar day from the first to the last day with entries), the
 * table and the notes. No network: the chart library is inlined and a Content-Security-Policy
 * allows only this page's own scripts (by hash) and style. Every value is HTML-escaped
 * (escape-html) or sits in a JSON data block with `<` escaped; chart labels are drawn on a
 * canvas, never parsed as HTML.
 */
export async function renderHtml(r: AggregateReportResult): Promise<string> {
  const escape = ((await import('escape-html')) as unknown as { default: (s: string) => string }).default;
  const daily = r.daily ?? { days: [], tasks: [] };
  const data = {
    days: daily.days,
    tasks: daily.tasks.map((t) => ({ task: visibleKey(t.task), hours: t.trackedMs.map((ms) => Math.round((ms / MS_PER_HOUR) * 10_000) / 10_000) })),
    palette: PALETTE,
  };
  const library = chartJsBundle().replace(/<\/script/gi, '<\\/script');
  const csp = `default-src 'none'; script-src ${cspHash(library)} ${cspHash(INIT)}; style-src ${cspHash(STYLE)}; img-src data:; base-uri 'none'; form-action 'none'`;
  const cell = (tag: 'td' | 'th', text: string) => `<${tag}>${escape(text)}</${tag}>`;
  const rows = r.rows
    .map((row) => `<tr>${cell('td', visibleKey(row.key))}${cell('td', String(row.entries))}${cell('td', String(row.commits))}${cell('td', hours(row.trackedMs))}</tr>`)
    .join('\n');
  const notes = reportNotes(r);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escape(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(`Time report by ${r.by}: ${dayRange(r)}`)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escape(`Time report by ${r.by}`)}</h1>
<p class="range">Date range: <strong id="date-range">${escape(dayRange(r))}</strong> · ${escape(describeQuery(r))} · generated ${escape(r.generatedAt)}</p>
<div class="chart"><canvas id="daily-chart" role="img" aria-label="Tracked hours per day, stacked by task"></canvas></div>
<table id="report-table">
<thead><tr>${cell('th', r.by)}${cell('th', 'entries')}${cell('th', 'commits')}${cell('th', 'tracked (h)')}</tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr>${cell('th', TOTAL_LABEL)}${cell('th', String(r.totals.entries))}${cell('th', String(r.totals.commits))}${cell('th', hours(r.totals.trackedMs))}</tr></tfoot>
</table>
${notes.length > 0 ? `<ul class="notes">${notes.map((n) => `<li>${escape(n)}</li>`).join('')}</ul>` : ''}
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${library}</script>
<script>${INIT}</script>
</body>
</html>
`;
}
