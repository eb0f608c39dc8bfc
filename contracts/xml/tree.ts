/**
 * The ordered document tree the XML layer keeps next to the model. Formatting writes the model's
 * values into this tree and serialises it, so elements the model does not know survive a round trip.
 */

export interface XElement {
  name: string;
  /** Null-prototype record; insertion order is the document order of the attributes. */
  attrs: Record<string, string>;
  children: XNode[];
}

export interface XComment {
  comment: string;
}

export type XNode = XElement | XComment | string;

export const isElement = (n: XNode): n is XElement => typeof n === 'object' && 'name' in n;

export const newAttrs = (): Record<string, string> => Object.create(null) as Record<string, string>;

export const element = (name: string, attrs?: Record<string, string>, children: XNode[] = []): XElement => {
  const a = newAttrs();
  if (attrs) for (const [k, v] of Object.entries(attrs)) a[k] = v;
  return { name, attrs: a, children };
};

export const hasAttr = (el: XElement, name: string): boolean => Object.prototype.hasOwnProperty.call(el.attrs, name);

export const attrCount = (el: XElement): number => {
  let n = 0;
  for (const _ in el.attrs) n++;
  return n;
};

export function firstChild(el: XElement, name: string): XElement | undefined {
  for (const c of el.children) if (typeof c === 'object' && 'name' in c && c.name === name) return c;
  return undefined;
}

export function childrenNamed(el: XElement, name: string): XElement[] {
  const out: XElement[] = [];
  for (const c of el.children) if (typeof c === 'object' && 'name' in c && c.name === name) out.push(c);
  return out;
}

export function childElements(el: XElement): XElement[] {
  const out: XElement[] = [];
  for (const c of el.children) if (typeof c === 'object' && 'name' in c) out.push(c);
  return out;
}

export function hasElementChildren(el: XElement): boolean {
  for (const c of el.children) if (typeof c === 'object' && 'name' in c) return true;
  return false;
}

/** Concatenated direct text of an element (comments and child elements excluded). */
export function textOf(el: XElement): string {
  const ch = el.children;
  if (ch.length === 1 && typeof ch[0] === 'string') return ch[0];
  let s = '';
  for (const c of ch) if (typeof c === 'string') s += c;
  return s;
}

export function hasText(el: XElement): boolean {
  for (const c of el.children) if (typeof c === 'string') return true;
  return false;
}

export function setText(el: XElement, text: string): void {
  const rest = el.children.filter((c) => typeof c !== 'string');
  el.children = text === '' ? rest : [text, ...rest];
}

export function removeText(el: XElement): boolean {
  const before = el.children.length;
  el.children = el.children.filter((c) => typeof c !== 'string');
  return el.children.length !== before;
}

/** An element with nothing in it: no attributes, no children (whitespace and comments count as nothing). */
export function isEmptyElement(el: XElement): boolean {
  if (attrCount(el) > 0) return false;
  for (const c of el.children) {
    if (typeof c === 'string') {
      if (c.trim() !== '') return false;
    } else if ('name' in c) return false;
  }
  return true;
}

export function removeChild(parent: XElement, child: XElement): void {
  const i = parent.children.indexOf(child);
  if (i >= 0) parent.children.splice(i, 1);
}

/**
 * Inserts a new child where libvirt's formatter would put it: after the last sibling that comes
 * before it in `order`, else before the first sibling that comes after it, else at the end.
 * Unknown siblings keep their place.
 */
export function insertOrdered(parent: XElement, child: XElement, order?: readonly string[]): void {
  const ch = parent.children;
  const rank = order ? order.indexOf(child.name) : -1;
  if (rank < 0) {
    ch.push(child);
    return;
  }
  let after = -1;
  let before = -1;
  for (let i = 0; i < ch.length; i++) {
    const c = ch[i]!;
    if (typeof c !== 'object' || !('name' in c)) continue;
    const r = order!.indexOf(c.name);
    if (r < 0) continue;
    if (r <= rank) after = i;
    else if (before < 0) before = i;
  }
  if (after >= 0) ch.splice(after + 1, 0, child);
  else if (before >= 0) ch.splice(before, 0, child);
  else ch.push(child);
}

export function ensureChild(parent: XElement, name: string, order?: readonly string[]): XElement {
  const existing = firstChild(parent, name);
  if (existing) return existing;
  const el = element(name);
  insertOrdered(parent, el, order);
  return el;
}

export function cloneElement(el: XElement): XElement {
  const attrs = newAttrs();
  for (const k in el.attrs) attrs[k] = el.attrs[k]!;
  return {
    name: el.name,
    attrs,
    children: el.children.map((c) => (typeof c === 'string' ? c : 'name' in c ? cloneElement(c) : { comment: c.comment })),
  };
}

const escapeText = (s: string): string =>
  /[&<>\r]/.test(s) ? s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;') : s;

const escapeAttr = (s: string): string =>
  /[&<>'\n\r\t]/.test(s)
    ? s
        .replace(/&/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/>/g, '&gt;')
        .replace(/'/g, '&apos;')
        .replace(/\n/g, '&#10;')
        .replace(/\r/g, '&#13;')
        .replace(/\t/g, '&#9;')
    : s;

// "--" may not appear inside an XML comment; a document we write must always parse again.
const safeComment = (s: string): string => s.replace(/--/g, '- -').replace(/-$/, '- ');

function openTag(el: XElement): string {
  let s = '<' + el.name;
  for (const k in el.attrs) s += ' ' + k + "='" + escapeAttr(el.attrs[k]!) + "'";
  return s;
}

function serializeInline(node: XNode, out: string[]): void {
  if (typeof node === 'string') {
    out.push(escapeText(node));
    return;
  }
  if (!('name' in node)) {
    out.push('<!--' + safeComment(node.comment) + '-->');
    return;
  }
  if (node.children.length === 0) {
    out.push(openTag(node) + '/>');
    return;
  }
  out.push(openTag(node) + '>');
  for (const c of node.children) serializeInline(c, out);
  out.push('</' + node.name + '>');
}

function serializeNode(el: XElement, indent: string, out: string[]): void {
  const ch = el.children;
  if (ch.length === 0) {
    out.push(indent + openTag(el) + '/>\n');
    return;
  }
  let elements = false;
  let significantText = false;
  for (const c of ch) {
    if (typeof c === 'string') {
      if (c.trim() !== '') significantText = true;
    } else if ('name' in c) elements = true;
  }
  if (!elements) {
    // Text-only (or comment-only) content is kept byte for byte, whitespace included.
    const parts: string[] = [];
    for (const c of ch) serializeInline(c, parts);
    out.push(indent + openTag(el) + '>' + parts.join('') + '</' + el.name + '>\n');
    return;
  }
  if (significantText) {
    // Mixed content: re-indenting would change the text, so it is written exactly as it is.
    const parts: string[] = [];
    serializeInline(el, parts);
    out.push(indent + parts.join('') + '\n');
    return;
  }
  out.push(indent + openTag(el) + '>\n');
  const inner = indent + '  ';
  for (const c of ch) {
    if (typeof c === 'string') continue;
    if ('name' in c) serializeNode(c, inner, out);
    else out.push(inner + '<!--' + safeComment(c.comment) + '-->\n');
  }
  out.push(indent + '</' + el.name + '>\n');
}

/** libvirt's layout: two-space indent, single-quoted attributes, a trailing newline. */
export function serialize(root: XElement): string {
  const out: string[] = [];
  serializeNode(root, '', out);
  return out.join('');
}

/** Serialises the children of an element (used for opaque content such as <metadata>). */
export function serializeChildren(el: XElement): string {
  const out: string[] = [];
  for (const c of el.children) {
    if (typeof c === 'string') {
      if (c.trim() !== '') out.push(escapeText(c.trim()) + '\n');
    } else if ('name' in c) serializeNode(c, '', out);
    else out.push('<!--' + safeComment(c.comment) + '-->\n');
  }
  return out.join('');
}
