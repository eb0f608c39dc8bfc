import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { xmlError, quote } from './errors.ts';
import { newAttrs, type XElement, type XNode } from './tree.ts';
import { DEFAULT_LIMITS, type DocumentLimits } from './limits.ts';

export { DEFAULT_LIMITS, type DocumentLimits };

/**
 * Hardened reading of an untrusted document into an ordered tree.
 *
 * Every check that bounds work (size, characters, DOCTYPE, depth) runs on the raw text before any
 * parser sees it, so a hostile document costs at most one linear scan. Entities are never expanded
 * by the parser: only the five predefined entities and character references are decoded here, and a
 * DOCTYPE is refused outright, which rules out both entity-expansion bombs and external entities.
 */


const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  htmlEntities: false,
  commentPropName: '#comment',
  cdataPropName: '#cdata',
  allowBooleanAttributes: false,
  // The depth is already bounded by the pre-scan; this only keeps the parser's own guard out of the way.
  maxNestedTags: 100_000,
  // No callbacks use the path, so the parser need not build path strings.
  jPath: false,
});

function utf8Length(s: string, stopAbove: number): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
    if (n > stopAbove) return n;
  }
  return n;
}

function lineCol(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  for (let i = text.indexOf('\n'); i >= 0 && i < pos; i = text.indexOf('\n', i + 1)) {
    line++;
    last = i;
  }
  return { line, column: pos - last };
}

const FORBIDDEN_CHARS = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|\p{Cs}/u;

/** One linear pass: refuses declarations that could define entities and measures element depth. */
function prescan(text: string, maxDepth: number): void {
  let depth = 0;
  let i = 0;
  const n = text.length;
  while (true) {
    i = text.indexOf('<', i);
    if (i < 0) return;
    const c = text.charCodeAt(i + 1);
    if (c === 0x21 /* ! */) {
      if (text.startsWith('<!--', i)) {
        const j = text.indexOf('-->', i + 4);
        if (j < 0) throw xmlError(`XML document is not well-formed: unterminated comment at line ${lineCol(text, i).line}`);
        i = j + 3;
        continue;
      }
      if (text.startsWith('<![CDATA[', i)) {
        const j = text.indexOf(']]>', i + 9);
        if (j < 0) throw xmlError(`XML document is not well-formed: unterminated CDATA section at line ${lineCol(text, i).line}`);
        i = j + 3;
        continue;
      }
      const word = /^<!([A-Za-z]*)/.exec(text.slice(i, i + 12))?.[1] ?? '';
      const { line } = lineCol(text, i);
      if (word.toUpperCase() === 'DOCTYPE' || word.toUpperCase() === 'ENTITY') {
        throw xmlError(`XML document rejected: <!${word}> declarations are not allowed (line ${line}); entities are never expanded`, {
          line,
        });
      }
      throw xmlError(`XML document is not well-formed: unexpected markup '<!${word}' at line ${line}`, { line });
    }
    if (c === 0x3f /* ? */) {
      const j = text.indexOf('?>', i + 2);
      if (j < 0) throw xmlError(`XML document is not well-formed: unterminated processing instruction at line ${lineCol(text, i).line}`);
      i = j + 2;
      continue;
    }
    if (c === 0x2f /* / */) {
      depth--;
      const j = text.indexOf('>', i);
      if (j < 0) return;
      i = j + 1;
      continue;
    }
    // Start tag: find its end, skipping quoted attribute values that may contain '>'.
    let j = i + 1;
    let q = 0;
    for (; j < n; j++) {
      const d = text.charCodeAt(j);
      if (q) {
        if (d === q) q = 0;
      } else if (d === 0x22 || d === 0x27) q = d;
      else if (d === 0x3e /* > */) break;
    }
    if (j >= n) return; // unterminated tag: the validator reports it with a position
    if (text.charCodeAt(j - 1) !== 0x2f) {
      depth++;
      if (depth > maxDepth) {
        const { line } = lineCol(text, i);
        throw xmlError(`XML document rejected: elements nested deeper than ${maxDepth} levels (line ${line})`, { line, maxDepth });
      }
    }
    i = j + 1;
  }
}

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

function validCodePoint(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

function decodeEntities(s: string, where: () => string): string {
  let amp = s.indexOf('&');
  if (amp < 0) return s;
  let out = '';
  let last = 0;
  while (amp >= 0) {
    const semi = s.indexOf(';', amp + 1);
    if (semi < 0 || semi - amp > 12) {
      throw xmlError(`XML document is not well-formed: '&' not followed by an entity reference in ${where()}`);
    }
    const name = s.slice(amp + 1, semi);
    let rep: string | undefined;
    if (name.charCodeAt(0) === 0x23 /* # */) {
      const hex = name[1] === 'x';
      const digits = name.slice(hex ? 2 : 1);
      if (digits !== '' && (hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) {
        const cp = parseInt(digits, hex ? 16 : 10);
        if (validCodePoint(cp)) rep = String.fromCodePoint(cp);
      }
      if (rep === undefined) throw xmlError(`XML document is not well-formed: invalid character reference '&${name};' in ${where()}`);
    } else {
      rep = PREDEFINED[name];
      if (rep === undefined) {
        throw xmlError(`XML document rejected: undefined entity '&${name};' in ${where()}; entities are never expanded`);
      }
    }
    out += s.slice(last, amp) + rep;
    last = semi + 1;
    amp = s.indexOf('&', last);
  }
  return out + s.slice(last);
}

type FxpNode = Record<string, unknown>;

function convert(node: FxpNode, name: string, path: string): XElement {
  const attrs = newAttrs();
  const rawAttrs = node[':@'] as Record<string, unknown> | undefined;
  if (rawAttrs) {
    for (const k of Object.keys(rawAttrs)) {
      const v = rawAttrs[k];
      if (typeof v !== 'string') throw xmlError(`XML document is not well-formed: attribute '${k}' of ${path} has no value`);
      if (v.includes('<')) throw xmlError(`XML document is not well-formed: '<' in the value of attribute '${k}' of ${path}`);
      // Literal whitespace in attribute values is normalised to spaces, as XML requires.
      const norm = /[\t\n\r]/.test(v) ? v.replace(/[\t\n\r]/g, ' ') : v;
      attrs[k] = decodeEntities(norm, () => `attribute '${k}' of ${path}`);
    }
  }
  const children: XNode[] = [];
  const counts = new Map<string, number>();
  for (const child of (node[name] as FxpNode[]) ?? []) {
    const key = childKey(child);
    if (key === '#text') {
      const t = decodeEntities(String(child['#text']), () => path);
      const prev = children[children.length - 1];
      if (typeof prev === 'string') children[children.length - 1] = prev + t;
      else children.push(t);
    } else if (key === '#cdata') {
      const t = cdataText(child);
      const prev = children[children.length - 1];
      if (typeof prev === 'string') children[children.length - 1] = prev + t;
      else children.push(t);
    } else if (key === '#comment') {
      children.push({ comment: cdataText(child, '#comment') });
    } else if (key.startsWith('?')) {
      continue;
    } else {
      const n = (counts.get(key) ?? 0) + 1;
      counts.set(key, n);
      children.push(convert(child, key, `${path}/${key}[${n}]`));
    }
  }
  return { name, attrs, children };
}

function childKey(node: FxpNode): string {
  for (const k of Object.keys(node)) if (k !== ':@') return k;
  return '';
}

function cdataText(node: FxpNode, key = '#cdata'): string {
  const inner = node[key] as FxpNode[] | undefined;
  let s = '';
  for (const part of inner ?? []) s += String(part['#text'] ?? '');
  return s;
}

/** Parses an untrusted document into its root element; every failure is a VirtError 'xml-error'. */
export function parseDocument(input: unknown, limits: DocumentLimits = DEFAULT_LIMITS): XElement {
  if (typeof input !== 'string') throw xmlError('XML document must be a string');
  if (input.length > limits.maxBytes || utf8Length(input, limits.maxBytes) > limits.maxBytes) {
    throw xmlError(`XML document rejected: larger than ${limits.maxBytes} bytes`, { maxBytes: limits.maxBytes });
  }
  let text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  if (text.includes('\r')) text = text.replace(/\r\n?/g, '\n');
  const bad = FORBIDDEN_CHARS.exec(text);
  if (bad) {
    const { line, column } = lineCol(text, bad.index);
    const code = bad[0].codePointAt(0)!.toString(16).padStart(4, '0');
    throw xmlError(`XML document is not well-formed: character U+${code} is not allowed in XML (line ${line}, column ${column})`, {
      line,
      column,
    });
  }
  if (text.trim() === '') throw xmlError('XML document is empty');
  prescan(text, limits.maxDepth);
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    throw xmlError(`XML document is not well-formed: ${msg} (line ${line}${col ? `, column ${col}` : ''})`, { line, column: col });
  }
  let parsed: FxpNode[];
  try {
    parsed = parser.parse(text) as FxpNode[];
  } catch (e) {
    const msg = e instanceof Error ? e.message.replace(/^\[SECURITY\]\s*/, '') : String(e);
    throw xmlError(`XML document rejected: ${msg}`);
  }
  let root: XElement | undefined;
  for (const node of parsed) {
    const key = childKey(node);
    if (key === '#comment' || key.startsWith('?')) continue;
    if (key === '#text') {
      if (String(node['#text']).trim() !== '') throw xmlError(`XML document is not well-formed: text ${quote(String(node['#text']).trim(), 30)} outside the root element`);
      continue;
    }
    if (key === '#cdata') throw xmlError('XML document is not well-formed: CDATA outside the root element');
    if (root) throw xmlError(`XML document is not well-formed: more than one root element (<${root.name}> and <${key}>)`);
    root = convert(node, key, `/${key}`);
  }
  if (!root) throw xmlError('XML document has no root element');
  return root;
}
