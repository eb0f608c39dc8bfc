import { xmlError, quote } from './errors.ts';
import {
  childrenNamed,
  element,
  firstChild,
  hasAttr,
  hasText,
  insertOrdered,
  isEmptyElement,
  newAttrs,
  removeChild,
  removeText,
  setText,
  textOf,
  type XElement,
} from './tree.ts';
import { ceilDiv, parseUnsignedBig, parseUuid, parseMac, scaleInteger } from './units.ts';

/**
 * Two-way mapping between a tree element and a model value, declared once per field so reading and
 * writing cannot drift apart. `read` never touches what it does not map; `write` sets what the model
 * says and leaves every other attribute and child alone, which is what keeps round trips lossless.
 *
 * Write semantics: the model wins for the fields it maps. `undefined` removes the mapped attribute or
 * element; a value equal to what the tree already holds leaves the original spelling in place.
 */

export interface WriteCtx {
  /** The model was just read from this very tree, so list items pair with elements by position. */
  aligned: boolean;
}

export interface Codec<T = any> {
  read(el: XElement, path: string): T | undefined;
  write(el: XElement, value: T | undefined, order: readonly string[] | undefined, ctx: WriteCtx): void;
}

export interface Conv<T> {
  parse(raw: string, where: string): T;
  format(value: T): string;
}

export const invalid = (where: string, raw: string, expected: string) =>
  xmlError(`${where}: invalid value ${quote(raw)}, expected ${expected}`, { path: where, value: raw.slice(0, 200) });

/** Deterministic JSON with sorted keys: equality of model values independent of key order. */
export function stableKey(v: unknown): string {
  if (v === undefined) return 'u';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(stableKey).join(',') + ']';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + stableKey(o[k])).join(',') + '}';
}

function sameValue<T>(conv: Conv<T>, raw: string, value: T): boolean {
  try {
    const parsed = conv.parse(raw, '');
    return parsed === value || stableKey(parsed) === stableKey(value);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Value conversions

export const str: Conv<string> = { parse: (r) => r, format: (v) => v };

export const int = (min = -0x80000000, max = 0x7fffffff): Conv<number> => ({
  parse(raw, where) {
    const s = raw.trim();
    if (!/^[+-]?[0-9]+$/.test(s)) throw invalid(where, raw, 'an integer');
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(where, raw, `an integer from ${min} to ${max}`);
    return n;
  },
  format: (v) => String(v),
});

export const uint = int(0, 0xffffffff);
export const ulong = int(0, Number.MAX_SAFE_INTEGER);
export const positive = int(1, 0xffffffff);

const bool = (yes: string, no: string): Conv<boolean> => ({
  parse(raw, where) {
    if (raw === yes) return true;
    if (raw === no) return false;
    throw invalid(where, raw, `'${yes}' or '${no}'`);
  },
  format: (v) => (v ? yes : no),
});

export const yesno = bool('yes', 'no');
export const onoff = bool('on', 'off');

export const oneOf = <T extends string>(values: readonly T[]): Conv<T> => ({
  parse(raw, where) {
    if ((values as readonly string[]).includes(raw)) return raw as T;
    throw invalid(where, raw, `one of ${values.map((v) => `'${v}'`).join(', ')}`);
  },
  format: (v) => v,
});

export const uuid: Conv<string> = {
  parse(raw, where) {
    const u = parseUuid(raw);
    if (!u) throw invalid(where, raw, 'a UUID');
    return u;
  },
  format: (v) => v,
};

export const mac: Conv<string> = {
  parse(raw, where) {
    const m = parseMac(raw);
    if (!m) throw invalid(where, raw, 'a MAC address like 52:54:00:12:34:56');
    return m;
  },
  format: (v) => v,
};

// ---------------------------------------------------------------------------------------------
// Field codecs

/**
 * An attribute. `implied` is the value an absent attribute means (the model's default): it is not
 * written into a document that leaves the attribute out.
 */
/**
 * `before`: an attribute the element did not have goes in front of this one, where libvirt writes it
 * (a live `port` before `autoport`); attributes already there keep their place.
 */
export const attr = <T>(name: string, conv: Conv<T>, opts: { implied?: T; before?: string } = {}): Codec<T> => ({
  read(el, path) {
    const raw = el.attrs[name];
    return raw === undefined ? undefined : conv.parse(raw, `${path}/@${name}`);
  },
  write(el, value) {
    if (value === undefined) {
      delete el.attrs[name];
      return;
    }
    const cur = el.attrs[name];
    if (cur === undefined && opts.implied !== undefined && value === opts.implied) return;
    if (cur !== undefined && sameValue(conv, cur, value)) return;
    if (cur === undefined && opts.before !== undefined && hasAttr(el, opts.before)) {
      const entries = Object.entries(el.attrs);
      entries.splice(entries.findIndex(([k]) => k === opts.before), 0, [name, conv.format(value)]);
      // Rebuilt with the same null prototype, so an attribute named like an Object method stays data.
      el.attrs = newAttrs();
      for (const [k, v] of entries) el.attrs[k] = v;
      return;
    }
    el.attrs[name] = conv.format(value);
  },
});

export const text = <T>(conv: Conv<T>, opts: { emptyAsUndefined?: boolean } = {}): Codec<T> => ({
  read(el, path) {
    if (!hasText(el)) {
      if (opts.emptyAsUndefined) return undefined;
      return conv.parse('', path);
    }
    const raw = textOf(el);
    if (opts.emptyAsUndefined && raw.trim() === '') return undefined;
    return conv.parse(raw, path);
  },
  write(el, value) {
    if (value === undefined) {
      if (!opts.emptyAsUndefined || textOf(el).trim() !== '') removeText(el);
      return;
    }
    if (hasText(el) && sameValue(conv, textOf(el), value)) return;
    setText(el, conv.format(value));
  },
});

/**
 * A child element mapped through `codec`. With `prune`, the codec maps only part of the child
 * (one attribute, its text): `undefined` removes that part, and the child goes only if that left it
 * empty. Without it, the child as a whole is the value and `undefined` removes it.
 */
export const child = <T>(name: string, codec: Codec<T>, opts: { prune?: boolean } = {}): Codec<T> => ({
  read(el, path) {
    const c = firstChild(el, name);
    return c ? codec.read(c, `${path}/${name}`) : undefined;
  },
  write(el, value, order, ctx) {
    let c = firstChild(el, name);
    if (value === undefined) {
      if (!c) return;
      if (!opts.prune) {
        removeChild(el, c);
        return;
      }
      const wasEmpty = isEmptyElement(c);
      codec.write(c, undefined, undefined, ctx);
      if (!wasEmpty && isEmptyElement(c)) removeChild(el, c);
      return;
    }
    if (!c) {
      c = element(name);
      insertOrdered(el, c, order);
    }
    codec.write(c, value, undefined, ctx);
  },
});

export const childAttr = <T>(name: string, attrName: string, conv: Conv<T>): Codec<T> =>
  child(name, attr(attrName, conv), { prune: true });

export const childText = <T>(name: string, conv: Conv<T>, opts: { emptyAsUndefined?: boolean } = {}): Codec<T> =>
  child(name, text(conv, opts), { prune: true });

/** An empty marker element such as <readonly/>: true when present. */
export const flag = (name: string): Codec<boolean> => ({
  read(el) {
    return firstChild(el, name) ? true : undefined;
  },
  write(el, value, order) {
    const c = firstChild(el, name);
    if (value) {
      if (!c) insertOrdered(el, element(name), order);
    } else if (c) removeChild(el, c);
  },
});

/** All attributes of an element as a record (for <address> and similar, kept as given). */
export const attrs = (): Codec<Record<string, string>> => ({
  read(el) {
    const out: Record<string, string> = {};
    for (const k in el.attrs) out[k] = el.attrs[k]!;
    return out;
  },
  write(el, value) {
    const v = value ?? {};
    for (const k in el.attrs) if (!Object.prototype.hasOwnProperty.call(v, k)) delete el.attrs[k];
    for (const [k, val] of Object.entries(v)) if (el.attrs[k] !== val) el.attrs[k] = val;
  },
});

export const obj = (fields: Record<string, Codec>, order?: readonly string[]): Codec<Record<string, any>> => {
  const entries = Object.entries(fields);
  return {
    read(el, path) {
      const out: Record<string, unknown> = {};
      for (const [k, c] of entries) {
        const v = c.read(el, path);
        if (v !== undefined) out[k] = v;
      }
      return out;
    },
    write(el, value, _order, ctx) {
      const v = value ?? {};
      for (const [k, c] of entries) c.write(el, v[k], order, ctx);
    },
  };
};

export interface ListOptions<T> {
  /** Identity of an item (a disk's target, an interface's MAC) used to keep its element on edits. */
  key?: (item: T) => string | undefined;
  /** Which children named `name` this list owns (others with the same name are left alone). */
  filter?: (el: XElement) => boolean;
}

/**
 * Repeated children. When writing a model that was edited, each item keeps the element it came from
 * (exact match first, then by key, then by position), so unknown content inside a device follows the
 * device when others are added or removed. Elements no item claims are removed.
 */
export const list = <T>(name: string, item: Codec<T>, opts: ListOptions<T> = {}): Codec<T[]> => ({
  read(el, path) {
    const els = opts.filter ? childrenNamed(el, name).filter(opts.filter) : childrenNamed(el, name);
    if (els.length === 0) return undefined;
    return els.map((e, i) => item.read(e, `${path}/${name}[${i + 1}]`) as T);
  },
  write(el, value, order, ctx) {
    const items = value ?? [];
    const existing = opts.filter ? childrenNamed(el, name).filter(opts.filter) : childrenNamed(el, name);
    const targets: (XElement | undefined)[] = new Array(items.length);
    if (ctx.aligned && existing.length === items.length) {
      for (let i = 0; i < items.length; i++) targets[i] = existing[i];
    } else if (existing.length > 0 && items.length > 0) {
      matchItems(name, item, opts, items, existing, targets);
    }
    for (let i = 0; i < items.length; i++) {
      const t = targets[i] ?? element(name);
      targets[i] = t;
      item.write(t, items[i], undefined, ctx);
    }
    const placed = targets as XElement[];
    if (existing.length === 0) {
      let prev: XElement | undefined;
      for (const t of placed) {
        if (prev) el.children.splice(el.children.indexOf(prev) + 1, 0, t);
        else insertOrdered(el, t, order);
        prev = t;
      }
      return;
    }
    const anchor = el.children.indexOf(existing[0]!);
    const drop = new Set<unknown>(existing);
    el.children = el.children.filter((c) => !drop.has(c));
    el.children.splice(anchor, 0, ...placed);
  },
});

function matchItems<T>(
  name: string,
  item: Codec<T>,
  opts: ListOptions<T>,
  items: T[],
  existing: XElement[],
  targets: (XElement | undefined)[],
): void {
  const readVals = existing.map((e) => {
    try {
      return item.read(e, `/${name}`);
    } catch {
      return undefined;
    }
  });
  const used = new Array<boolean>(existing.length).fill(false);
  const byValue = new Map<string, number[]>();
  readVals.forEach((v, j) => {
    const k = stableKey(v);
    const l = byValue.get(k);
    if (l) l.push(j);
    else byValue.set(k, [j]);
  });
  for (let i = 0; i < items.length; i++) {
    const l = byValue.get(stableKey(items[i]));
    while (l && l.length) {
      const j = l.shift()!;
      if (!used[j]) {
        used[j] = true;
        targets[i] = existing[j];
        break;
      }
    }
  }
  const keyOf = opts.key;
  const elKeys = keyOf ? readVals.map((v) => (v === undefined ? undefined : keyOf(v as T))) : [];
  if (keyOf) {
    const byKey = new Map<string, number[]>();
    elKeys.forEach((k, j) => {
      if (k === undefined || used[j]) return;
      const l = byKey.get(k);
      if (l) l.push(j);
      else byKey.set(k, [j]);
    });
    for (let i = 0; i < items.length; i++) {
      if (targets[i]) continue;
      const k = keyOf(items[i]!);
      const l = k === undefined ? undefined : byKey.get(k);
      while (l && l.length) {
        const j = l.shift()!;
        if (!used[j]) {
          used[j] = true;
          targets[i] = existing[j];
          break;
        }
      }
    }
  }
  // Remaining items take remaining elements in order, unless both carry different identities.
  let j = 0;
  for (let i = 0; i < items.length; i++) {
    if (targets[i]) continue;
    const ik = keyOf ? keyOf(items[i]!) : undefined;
    while (j < existing.length && (used[j] || (ik !== undefined && elKeys[j] !== undefined))) j++;
    if (j >= existing.length) break;
    used[j] = true;
    targets[i] = existing[j];
    j++;
  }
}

// ---------------------------------------------------------------------------------------------
// Scaled integers (memory and storage sizes)

export interface ScaleOptions {
  /** Bytes per unit when no unit is given (libvirt: 1024 for memory, 1 for storage). */
  defaultScale: bigint;
  /** Bytes per unit of the model value (1024 for KiB, 1 for bytes). */
  modelScale: bigint;
  /** The unit written back when the value is (re)written. */
  unit: string;
  /** Largest accepted size in bytes. */
  limit: bigint;
  /** Always rewrite in `unit`, as libvirt's formatter does for memory; otherwise keep the original spelling when equal. */
  normalize: boolean;
}

function scaled(raw: string, unitRaw: string | undefined, where: string, o: ScaleOptions): number {
  const v = parseUnsignedBig(raw);
  if (v === undefined) throw invalid(where, raw, 'a non-negative integer');
  const r = scaleInteger(v, unitRaw, o.defaultScale, o.limit);
  if (!r.ok) throw xmlError(`${where}: ${r.reason}`, { path: where });
  const inModel = ceilDiv(r.value, o.modelScale);
  if (inModel > BigInt(Number.MAX_SAFE_INTEGER)) throw xmlError(`${where}: size value too large`, { path: where });
  return Number(inModel);
}

/** <memory unit='GiB'>4</memory>: the element's text scaled by its `unit` attribute. */
export const scaledText = (o: ScaleOptions, unitAttr = 'unit'): Codec<number> => ({
  read(el, path) {
    return scaled(textOf(el), el.attrs[unitAttr], path, o);
  },
  write(el, value) {
    if (value === undefined) {
      removeText(el);
      delete el.attrs[unitAttr];
      return;
    }
    if (!o.normalize && hasText(el)) {
      try {
        if (scaled(textOf(el), el.attrs[unitAttr], '', o) === value) return;
      } catch {
        // rewritten below
      }
    }
    el.attrs[unitAttr] = o.unit;
    setText(el, String(value));
  },
});

/** <cell memory='512' unit='MiB'/>: an attribute scaled by a sibling unit attribute. */
export const scaledAttr = (name: string, o: ScaleOptions, unitAttr = 'unit'): Codec<number> => ({
  read(el, path) {
    const raw = el.attrs[name];
    return raw === undefined ? undefined : scaled(raw, el.attrs[unitAttr], `${path}/@${name}`, o);
  },
  write(el, value) {
    if (value === undefined) {
      delete el.attrs[name];
      return;
    }
    const raw = el.attrs[name];
    if (!o.normalize && raw !== undefined) {
      try {
        if (scaled(raw, el.attrs[unitAttr], '', o) === value) return;
      } catch {
        // rewritten below
      }
    }
    el.attrs[name] = String(value);
    el.attrs[unitAttr] = o.unit;
  },
});

/** A codec whose value is computed from others: custom read/write pairs for the odd cases. */
export const custom = <T>(read: Codec<T>['read'], write: Codec<T>['write']): Codec<T> => ({ read, write });
