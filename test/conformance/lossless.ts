import { parseDocument } from '../../contracts/xml/document.ts';
import { childElements, type XElement } from '../../contracts/xml/tree.ts';
import { scaleInteger, ULLONG_MAX, parseUnsignedBig } from '../../contracts/xml/units.ts';

/**
 * Checks that a formatted document keeps everything its input had: every element (matched per name,
 * in order, among its siblings), every attribute and every non-blank text. Defaults may be added.
 * A value may change only to an equivalent spelling: the same integer ("0744" and "744"), the same
 * hex value in another case ("52:54:00:AB:.." and "52:54:00:ab:.."), or the same size in another
 * unit (<memory unit='GiB'>1</memory> and <memory unit='KiB'>1048576</memory>).
 */

/** Elements whose text (or `memory`/`size` attribute) is a scaled integer, with libvirt's default unit. */
const STORAGE_SIZES = new Set(['capacity', 'allocation', 'available', 'physical']);
const MEMORY_SIZES = new Set(['memory', 'currentMemory', 'maxMemory']);
const SCALED_ATTRS = new Set(['memory', 'size']);

function sizeBytes(raw: string, unit: string | undefined, defaultScale: bigint): bigint | undefined {
  const v = parseUnsignedBig(raw);
  if (v === undefined) return undefined;
  const r = scaleInteger(v, unit, defaultScale, ULLONG_MAX * 1024n);
  return r.ok ? r.value : undefined;
}

function sameSize(el: XElement, out: XElement, a: string, b: string): boolean {
  const scale = STORAGE_SIZES.has(el.name) ? 1n : 1024n;
  const x = sizeBytes(a, el.attrs.unit, scale);
  const y = sizeBytes(b, out.attrs.unit, scale);
  if (x === undefined || y === undefined) return false;
  // Memory is stored in whole KiB, so a byte count is rounded up to the next KiB.
  return x === y || (scale === 1024n && (x + 1023n) / 1024n === y / 1024n && y % 1024n === 0n);
}

function equivalent(a: string, b: string): boolean {
  if (a === b) return true;
  const num = /^\s*[+-]?(0x[0-9a-f]+|[0-9]+)\s*$/i;
  if (num.test(a) && num.test(b)) {
    const n = (s: string) => (/0x/i.test(s) ? BigInt(s.trim()) : BigInt(s.trim().replace(/^\+/, '')));
    try {
      if (n(a) === n(b)) return true;
    } catch {
      // not integers after all
    }
  }
  const hexish = /^[0-9a-fA-F:-]+$/;
  return hexish.test(a) && hexish.test(b) && a.toLowerCase().replace(/-/g, '') === b.toLowerCase().replace(/-/g, '');
}

const directText = (el: XElement): string => el.children.filter((c): c is string => typeof c === 'string').join('');

function compare(inp: XElement, out: XElement, path: string, problems: string[]): void {
  const scaled = inp.attrs.unit !== undefined || out.attrs.unit !== undefined || MEMORY_SIZES.has(inp.name) || STORAGE_SIZES.has(inp.name);
  for (const k in inp.attrs) {
    const a = inp.attrs[k]!;
    const b = out.attrs[k];
    if (b === undefined) {
      problems.push(`${path}/@${k}: attribute dropped`);
      continue;
    }
    if (k === 'unit' && scaled) continue;
    if (equivalent(a, b)) continue;
    if (scaled && SCALED_ATTRS.has(k) && sameSize(inp, out, a, b)) continue;
    problems.push(`${path}/@${k}: '${a}' became '${b}'`);
  }
  const ta = directText(inp);
  if (ta.trim() !== '') {
    const tb = directText(out);
    if (!(ta === tb || equivalent(ta.trim(), tb.trim()) || (scaled && sameSize(inp, out, ta, tb)))) {
      problems.push(`${path}: text '${ta.trim().slice(0, 60)}' became '${tb.trim().slice(0, 60)}'`);
    }
  }
  const outByName = new Map<string, XElement[]>();
  for (const c of childElements(out)) {
    const l = outByName.get(c.name);
    if (l) l.push(c);
    else outByName.set(c.name, [c]);
  }
  const seen = new Map<string, number>();
  for (const c of childElements(inp)) {
    const i = seen.get(c.name) ?? 0;
    seen.set(c.name, i + 1);
    const match = outByName.get(c.name)?.[i];
    const p = `${path}/${c.name}[${i + 1}]`;
    if (!match) problems.push(`${p}: element dropped`);
    else compare(c, match, p, problems);
  }
}

/** Problems found (empty when the output keeps everything the input had). */
export function losslessProblems(inputXml: string, outputXml: string): string[] {
  const inp = parseDocument(inputXml);
  const out = parseDocument(outputXml);
  const problems: string[] = [];
  if (inp.name !== out.name) return [`root <${inp.name}> became <${out.name}>`];
  compare(inp, out, `/${inp.name}`, problems);
  return problems;
}
