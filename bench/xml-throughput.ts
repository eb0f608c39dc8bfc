/**
 * libvirt XML layer throughput over the conformance corpus: documents per second for parse
 * (well-formedness, limits, model, validation, canonical document), for format, and for both,
 * next to a bare fast-xml-parser parse of the same documents as the baseline. Each figure is the best
 * of three rounds.
 * Writes the figures into the "## libvirt XML" section of BENCHMARKS.md.
 *
 *   node --import tsx bench/xml-throughput.ts [--seconds 0.5] [--no-write]
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser } from 'fast-xml-parser';
import { formatAnyXml, parseAnyXml, parseDomainXml } from '../contracts/xml/index.ts';
import { conformanceDir, FOLDERS } from '../test/conformance/conformance.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 0.5);
const WRITE = !process.argv.includes('--no-write');
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function xmlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...xmlFiles(p));
    else if (name.endsWith('.xml')) out.push(p);
  }
  return out;
}


const ROUNDS = 3;

/**
 * Runs `fn` over all docs repeatedly for about `SECONDS`, in rounds; returns the best round's
 * documents per second, so a burst of load from other processes does not decide the figure.
 */
function rate<T>(items: T[], fn: (item: T) => unknown): number {
  for (let i = 0; i < 3; i++) for (const it of items) fn(it);
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    let done = 0;
    const start = performance.now();
    const until = start + (SECONDS * 1000) / ROUNDS;
    while (performance.now() < until) {
      for (const it of items) fn(it);
      done += items.length;
    }
    best = Math.max(best, done / ((performance.now() - start) / 1000));
  }
  return best;
}

const baseline = new XMLParser({ ignoreAttributes: false });

interface Row {
  group: string;
  docs: number;
  kib: number;
  parse: number;
  format: number;
  both: number;
  fxp: number;
}

const root = conformanceDir();
if (!existsSync(root)) {
  console.error(`conformance corpus not found at ${root} (set VIRTPLANE_CONFORMANCE_DIR)`);
  process.exit(2);
}

const groups = FOLDERS.flatMap((f) => {
  const dir = path.join(root, f);
  const subs = readdirSync(dir).filter((n) => statSync(path.join(dir, n)).isDirectory() && f === 'virt-manager');
  return subs.length ? subs.map((s) => `${f}/${s}`) : [f];
});

const rows: Row[] = [];
const accepted: string[] = [];
for (const group of groups) {
  const texts = xmlFiles(path.join(root, group)).map((f) => readFileSync(f, 'utf8'));
  // Documents libvirt rejects are part of the conformance run, not of the throughput figures.
  const ok = texts.filter((t) => {
    try {
      parseAnyXml(t);
      return true;
    } catch {
      return false;
    }
  });
  accepted.push(...ok);
  const parsed = ok.map((t) => parseAnyXml(t));
  rows.push({
    group,
    docs: ok.length,
    kib: ok.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1024,
    parse: rate(ok, (t) => parseAnyXml(t)),
    format: rate(parsed, formatAnyXml),
    both: rate(ok, (t) => formatAnyXml(parseAnyXml(t))),
    fxp: rate(ok, (t) => baseline.parse(t)),
  });
}

const all: Row = {
  group: 'all',
  docs: accepted.length,
  kib: accepted.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1024,
  parse: rate(accepted, (t) => parseAnyXml(t)),
  format: rate(
    accepted.map((t) => parseAnyXml(t)),
    formatAnyXml,
  ),
  both: rate(accepted, (t) => formatAnyXml(parseAnyXml(t))),
  fxp: rate(accepted, (t) => baseline.parse(t)),
};

const typicalPath = path.join(root, 'libvirt/domain-xml/disk-cdrom.xml');
const typical = readFileSync(typicalPath, 'utf8');
const typicalUs = 1e6 / rate([typical], (t) => parseDomainXml(t));

const n = (x: number) => Math.round(x).toLocaleString('en-US');
const header = ['corpus folder', 'docs', 'KiB', 'parse docs/s', 'format docs/s', 'parse+format docs/s', 'fxp parse docs/s', 'ratio'];
const line = (r: Row) => [r.group, String(r.docs), r.kib.toFixed(0), n(r.parse), n(r.format), n(r.both), n(r.fxp), `${(r.both / r.fxp).toFixed(2)}x`];
const table = [header, ...rows.map(line), line(all)];
const widths = header.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
for (const r of table) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));

const last = `xml-throughput: ${n(all.both)} docs/s parse+validate+format over ${all.docs} corpus documents (${(all.both / all.fxp).toFixed(2)}x a bare fast-xml-parser parse at ${n(all.fxp)} docs/s); typical domain (${Buffer.byteLength(typical)} B) parses in ${typicalUs.toFixed(0)} us`;

if (WRITE) {
  const file = path.join(repoRoot, 'BENCHMARKS.md');
  const md = [
    '## libvirt XML',
    '',
    '`node --import tsx bench/xml-throughput.ts` over the conformance corpus (documents libvirt accepts).',
    'parse = well-formedness and limit checks, model, libvirt validation rules and the canonical document;',
    'format = model back to XML; ratio = parse+format against a bare fast-xml-parser parse (no validation, no model).',
    'Each figure is the best of three rounds.',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}.`,
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...[...rows, all].map((r) => `| ${line(r).join(' | ')} |`),
    '',
    `Typical domain parse (${path.basename(typicalPath)}, ${Buffer.byteLength(typical)} bytes): ${typicalUs.toFixed(0)} µs.`,
    '',
  ].join('\n');
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const start = current.search(/^## libvirt XML\s*$/m);
  let next: string;
  if (start < 0) next = `${current.replace(/\n*$/, '\n\n')}${md}`;
  else {
    const rest = current.slice(start + 1);
    const after = rest.search(/^## /m);
    next = current.slice(0, start) + md + (after < 0 ? '' : `\n${rest.slice(after)}`);
  }
  writeFileSync(file, next);
}

console.log(last);
