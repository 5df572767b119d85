/**
 * A strict reader of the Prometheus text exposition format 0.0.4, for tests: every line must
 * be `# HELP name text`, `# TYPE name type`, a sample `name{label="value",…} value`, or empty;
 * each family is declared once with HELP then TYPE before its samples; a histogram's samples
 * are `<name>_bucket{le=…}` (cumulative, ending with `le="+Inf"`), `<name>_sum`, `<name>_count`.
 * Throws an Error naming the line on the first violation.
 * Format: https://prometheus.io/docs/instrumenting/exposition_formats/
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const VALUE = '[-+]?(?:[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf)|NaN';
const HELP_LINE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?\\})? (${VALUE})$`);

const toNumber = (text: string): number => (text === '+Inf' || text === 'Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text));

/** Parses and checks an exposition; returns its families by name, in order. */
export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, Family>();
  let current: Family | undefined;
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1} (${JSON.stringify(line)})`;
      if (line === '') return;
      const help = HELP_LINE.exec(line);
      if (help) {
        if (families.has(help[1]!)) throw new Error(`${where}: family ${help[1]} declared twice`);
        current = { name: help[1]!, help: help[2]!, type: '', samples: [] };
        families.set(current.name, current);
        return;
      }
      const type = TYPE_LINE.exec(line);
      if (type) {
        if (!current || current.name !== type[1] || current.type !== '') throw new Error(`${where}: TYPE must follow the HELP of its family`);
        current.type = type[2]!;
        return;
      }
      const sample = SAMPLE_LINE.exec(line);
      if (!sample) throw new Error(`${where}: not a HELP, TYPE or sample line`);
      if (!current || current.type === '') throw new Error(`${where}: sample before its HELP and TYPE`);
      const name = sample[1]!;
      const allowed = current.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => current!.name + s) : [current.name];
      if (!allowed.includes(name)) throw new Error(`${where}: sample ${name} does not belong to family ${current.name} (${current.type})`);
      const labels: Record<string, string> = {};
      for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
      current.samples.push({ name, labels, value: toNumber(sample[3]!) });
    });
  for (const family of families.values()) {
    if (family.type === '') throw new Error(`family ${family.name} has no TYPE`);
    if (family.type === 'histogram') checkHistogram(family);
  }
  return families;
}

function checkHistogram(family: Family): void {
  const buckets = family.samples.filter((s) => s.name === `${family.name}_bucket`);
  const count = family.samples.find((s) => s.name === `${family.name}_count`);
  if (!count || !family.samples.some((s) => s.name === `${family.name}_sum`)) throw new Error(`histogram ${family.name} lacks _sum or _count`);
  const last = buckets.at(-1);
  if (!last || last.labels.le !== '+Inf' || last.value !== count.value) throw new Error(`histogram ${family.name}: the le="+Inf" bucket must come last and equal _count`);
  buckets.reduce((previous, b) => {
    const le = toNumber(b.labels.le ?? 'x');
    if (Number.isNaN(le) || le <= previous.le || b.value < previous.value) throw new Error(`histogram ${family.name}: buckets must grow in le and be cumulative`);
    return { le, value: b.value };
  }, { le: -Infinity, value: 0 });
}

/** The value of one sample by name and exact labels; undefined when absent. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    const found = family.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()));
    if (found) return found.value;
  }
  return undefined;
}

/** The sample lines of an exposition (no comments, no empty lines), in order. */
export function sampleLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}
