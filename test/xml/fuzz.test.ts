import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainDefinition } from '../../contracts/domain/definition.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { NetworkDefinition } from '../../contracts/network/definition.ts';
import { StoragePoolDefinition, StorageVolumeDefinition } from '../../contracts/storage/definition.ts';
import { stableKey } from '../../contracts/xml/codec.ts';
import { parseDocument } from '../../contracts/xml/document.ts';
import { formatDomainXml, formatNetworkXml, formatPoolXml, formatVolumeXml, parseAnyXml, type AnyDefinition } from '../../contracts/xml/index.ts';
import { cloneElement, isElement, serialize, type XElement } from '../../contracts/xml/tree.ts';
import { conformanceDir } from '../conformance/conformance.ts';

/**
 * Mutated corpus documents (truncated, junk inserted, characters swapped, elements duplicated or
 * dropped, values replaced) must either parse into a valid model whose stored document parses
 * back to the same model, or fail with an xml-error; never another exception, never slowly.
 */

function corpusFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...corpusFiles(p));
    else if (name.endsWith('.xml')) out.push(p);
  }
  return out;
}

const docs = corpusFiles(conformanceDir())
  .filter((f) => !f.includes(`${path.sep}schemas${path.sep}`))
  .map((f) => readFileSync(f, 'utf8'));

const schemas = { domain: DomainDefinition, network: NetworkDefinition, pool: StoragePoolDefinition, volume: StorageVolumeDefinition };

const JUNK = [
  '<', '>', '&', ';', '"', "'", '/', '=', '<a>', '</a>', '<a/>', '</domain>', '<devices>', ']]>', '<![CDATA[', '<!--', '-->',
  '<?pi?>', '<!DOCTYPE d [<!ENTITY x "y">]>', '&x;', '&lt;', '&#0;', '&#x110000;', '&#65;', '\u0000', '\uFFFF', '\uD800',
  ' unit="ZiB"', " cpuset='x'", " dev='hdzzzzzzzzzzzz'", '<memory>0</memory>', "<boot order='1'/>", '<vcpu>0</vcpu>',
  "<interface type='network'/>", '<disk/>', '<target/>', " __proto__='1'", '<constructor/>', '\n', 'é',
];

const VALUES = ['', ' ', '-1', '0', '1', '65536', '0x10', '1e9', '99999999999999999999', 'x', 'yes', 'no', 'on', 'KiB', 'GiB', 'bogus', '::1', '52:54:00:00:00:01', '01:00:5e:00:00:01', '0-3,^2', 'hd', 'virtio', '%d', '../..', '&amp;'];

type Mutation =
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; junk: string }
  | { op: 'swap'; i: number; j: number }
  | { op: 'delete'; at: number; len: number }
  | { op: 'duplicate'; which: number }
  | { op: 'drop'; which: number }
  | { op: 'value'; which: number; value: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), junk: fc.oneof(fc.constantFrom(...JUNK), fc.string({ maxLength: 8 })) }),
  fc.record({ op: fc.constant('swap' as const), i: fc.nat(), j: fc.nat() }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ op: fc.constant('duplicate' as const), which: fc.nat() }),
  fc.record({ op: fc.constant('drop' as const), which: fc.nat() }),
  fc.record({ op: fc.constant('value' as const), which: fc.nat(), value: fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 6 })) }),
);

function elements(root: XElement): Array<{ el: XElement; parent: XElement }> {
  const out: Array<{ el: XElement; parent: XElement }> = [];
  const walk = (p: XElement) => {
    for (const c of p.children) {
      if (isElement(c)) {
        out.push({ el: c, parent: p });
        walk(c);
      }
    }
  };
  walk(root);
  return out;
}

/** Structural mutations work on the tree when the text still parses, so they hit real elements. */
function structural(text: string, m: Extract<Mutation, { op: 'duplicate' | 'drop' | 'value' }>): string {
  let root: XElement;
  try {
    root = parseDocument(text);
  } catch {
    return text;
  }
  const all = elements(root);
  if (all.length === 0) return text;
  const { el, parent } = all[m.which % all.length]!;
  const i = parent.children.indexOf(el);
  if (m.op === 'duplicate') parent.children.splice(i + 1, 0, cloneElement(el));
  else if (m.op === 'drop') parent.children.splice(i, 1);
  else {
    const names = Object.keys(el.attrs);
    if (names.length > 0) el.attrs[names[m.which % names.length]!] = m.value;
    else el.children = [m.value];
  }
  return serialize(root);
}

function mutate(text: string, muts: Mutation[]): string {
  let t = text;
  for (const m of muts) {
    const n = Math.max(t.length, 1);
    switch (m.op) {
      case 'truncate':
        t = t.slice(0, m.at % n);
        break;
      case 'insert': {
        const at = m.at % n;
        t = t.slice(0, at) + m.junk + t.slice(at);
        break;
      }
      case 'swap': {
        const i = m.i % n;
        const j = m.j % n;
        if (i === j || t.length < 2) break;
        const [a, b] = i < j ? [i, j] : [j, i];
        t = t.slice(0, a) + t[b] + t.slice(a + 1, b) + t[a] + t.slice(b + 1);
        break;
      }
      case 'delete': {
        const at = m.at % n;
        t = t.slice(0, at) + t.slice(at + m.len);
        break;
      }
      default:
        t = structural(t, m);
    }
  }
  return t;
}

const TIME_BUDGET_MS = 1000;
/** Raise for a longer search, e.g. XML_FUZZ_RUNS=50000. */
const RUNS = Number(process.env.XML_FUZZ_RUNS ?? 1500);

function checkOne(text: string): void {
  const started = performance.now();
  let parsed: AnyDefinition | undefined;
  try {
    parsed = parseAnyXml(text);
  } catch (e) {
    if (!isVirtError(e) || e.code !== 'xml-error') {
      throw new Error(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} for:\n${text.slice(0, 2000)}`);
    }
    expect(e.message.length).toBeGreaterThan(0);
  }
  const ms = performance.now() - started;
  expect(ms, `took ${ms.toFixed(0)} ms`).toBeLessThan(TIME_BUDGET_MS);
  if (!parsed) return;
  const schema = schemas[parsed.kind];
  const valid = schema.safeParse(parsed.definition);
  expect(valid.success, `invalid ${parsed.kind} model: ${valid.error?.message}`).toBe(true);
  const again = parseAnyXml(parsed.definition.xml!, {
    uuid: () => {
      throw new Error('a stored document must carry its uuid');
    },
  });
  const { xml: _a, ...m1 } = parsed.definition;
  const { xml: _b, ...m2 } = again.definition;
  expect(stableKey(m2), 'the stored document does not parse back to the same model').toBe(stableKey(m1));
  expect(again.definition.xml).toBe(parsed.definition.xml);
  expect(format(parsed), 'formatting the model does not give the stored document').toBe(parsed.definition.xml);
}

const format = (a: AnyDefinition): string =>
  a.kind === 'domain'
    ? formatDomainXml(a.definition)
    : a.kind === 'network'
      ? formatNetworkXml(a.definition)
      : a.kind === 'pool'
        ? formatPoolXml(a.definition)
        : formatVolumeXml(a.definition);

const DEVICE_LISTS = ['disks', 'interfaces', 'graphics', 'serials', 'consoles', 'controllers', 'filesystems', 'channels', 'inputs', 'videos', 'sounds', 'hostdevs', 'rngs', 'watchdogs', 'tpms'] as const;

type Edit = { list: (typeof DEVICE_LISTS)[number]; op: 'remove' | 'reverse' | 'rotate' | 'clear'; at: number };

const edit: fc.Arbitrary<Edit> = fc.record({
  list: fc.constantFrom(...DEVICE_LISTS),
  op: fc.constantFrom('remove' as const, 'reverse' as const, 'rotate' as const, 'clear' as const),
  at: fc.nat(),
});

function applyEdit(def: DomainDefinition, e: Edit): DomainDefinition {
  const devices = { ...def.devices } as unknown as Record<string, unknown[] | undefined>;
  const items = [...(devices[e.list] ?? [])];
  if (items.length === 0) return def;
  if (e.op === 'remove') items.splice(e.at % items.length, 1);
  else if (e.op === 'reverse') items.reverse();
  else if (e.op === 'rotate') items.push(items.shift()!);
  else items.length = 0;
  devices[e.list] = items.length === 0 && !['disks', 'interfaces', 'graphics', 'serials', 'consoles'].includes(e.list) ? undefined : items;
  return { ...def, devices: devices as unknown as DomainDefinition['devices'] };
}

describe('edited domain models', () => {
  const domains = docs.flatMap((d) => {
    try {
      const r = parseAnyXml(d);
      return r.kind === 'domain' ? [r.definition] : [];
    } catch {
      return [];
    }
  });

  it('keep device list edits through format and parse', () => {
    fc.assert(
      fc.property(fc.nat({ max: domains.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 3 }), (di, edits) => {
        const edited = edits.reduce(applyEdit, domains[di]!);
        let out: string;
        try {
          out = formatDomainXml(edited);
        } catch (e) {
          // Removing a device can break a rule that involved it (a console needing its serial, ...).
          if (isVirtError(e) && e.code === 'xml-error') return;
          throw e;
        }
        const back = parseAnyXml(out);
        if (back.kind !== 'domain') throw new Error('not a domain');
        for (const list of DEVICE_LISTS) {
          const want = (edited.devices as Record<string, unknown>)[list];
          const got = (back.definition.devices as Record<string, unknown>)[list];
          expect(stableKey(got ?? []), list).toBe(stableKey(want ?? []));
        }
        expect(formatDomainXml(back.definition)).toBe(back.definition.xml);
      }),
      { numRuns: Math.min(RUNS, 600) },
    );
  });
});

describe('mutated corpus documents', () => {
  it('has a corpus to mutate', () => {
    expect(docs.length).toBeGreaterThan(200);
  });

  it('parse into a valid model or fail with an xml-error, within a time bound', () => {
    fc.assert(
      fc.property(fc.nat({ max: docs.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (di, muts) => {
        checkOne(mutate(docs[di]!, muts));
      }),
      { numRuns: RUNS },
    );
  });

  it('survive arbitrary strings and random markup', () => {
    const markup = fc.array(fc.oneof(fc.constantFrom(...JUNK), fc.string({ maxLength: 5 })), { maxLength: 40 }).map((parts) => parts.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), markup, markup.map((m) => `<domain type='kvm'>${m}</domain>`)), (text) => {
        checkOne(text);
      }),
      { numRuns: RUNS },
    );
  });
});
