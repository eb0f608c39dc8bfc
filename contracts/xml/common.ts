import { randomBytes as cryptoRandomBytes, randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { isVirtError } from '../errors.ts';
import type { Codec } from './codec.ts';
import { DEFAULT_LIMITS, parseDocument, type DocumentLimits } from './document.ts';
import { xmlError } from './errors.ts';
import { element, serialize, type XElement } from './tree.ts';
import { parseUuid } from './units.ts';

/** Sources of the values libvirt invents for absent fields; inject them to make parsing deterministic. */
export interface ParseOptions {
  /** A UUID for a document without one (libvirt generates a random one). */
  uuid?: () => string;
  /** Random bytes, e.g. for MAC addresses (52:54:00 + 3 random bytes). */
  randomBytes?: (n: number) => Uint8Array;
  limits?: Partial<DocumentLimits>;
}

export interface Generators {
  uuid(): string;
  randomBytes(n: number): Uint8Array;
}

export function generators(opts: ParseOptions = {}): Generators {
  return {
    uuid() {
      const raw = opts.uuid ? opts.uuid() : randomUUID();
      const u = parseUuid(String(raw));
      if (!u) throw xmlError(`the UUID source returned ${JSON.stringify(raw)}, which is not a UUID`);
      return u;
    },
    randomBytes(n) {
      const b = opts.randomBytes ? opts.randomBytes(n) : cryptoRandomBytes(n);
      if (!(b instanceof Uint8Array) || b.length < n) throw xmlError(`the random byte source returned fewer than ${n} bytes`);
      return b;
    },
  };
}

export const generateMac = (g: Generators): string => {
  const b = g.randomBytes(3);
  return ['52', '54', '00', ...Array.from(b.subarray(0, 3), (x) => x.toString(16).padStart(2, '0'))].join(':');
};

/** Turns a model validation failure into an xml-error naming each offending field. */
export function modelError(kind: string, err: z.ZodError): never {
  const issues = err.issues.map((i) => ({
    path: i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, ''),
    message: i.message,
  }));
  const summary = issues
    .slice(0, 5)
    .map((i) => (i.path ? `${i.path}: ${i.message}` : i.message))
    .join('; ');
  throw xmlError(`invalid ${kind} definition: ${summary}`, { issues });
}

export interface KindSpec<M extends { xml?: string | undefined }> {
  kind: string;
  root: string;
  codec: Codec<Record<string, any>>;
  schema: z.ZodType<M>;
  /** Checks on the raw values read from the tree, before defaults (required elements, ...). */
  preValidate?(raw: Record<string, any>, root: XElement): void;
  /** Invents what libvirt invents for absent values (UUIDs, MAC addresses): only when parsing. */
  generate?(raw: Record<string, any>, gen: Generators): void;
  /** Deterministic defaults libvirt fills in; applied when parsing and when formatting a model. */
  normalize?(raw: Record<string, any>, root: XElement): void;
  /** Rules across fields, on the validated model and the document tree holding it. */
  validate?(model: M, root: XElement): void;
}

export const limitsOf = (opts: ParseOptions): DocumentLimits => ({ ...DEFAULT_LIMITS, ...opts.limits });

function checkRoot(root: XElement, spec: { root: string; kind: string }): void {
  if (root.name !== spec.root) {
    throw xmlError(`unexpected root element <${root.name}>, expecting <${spec.root}> for a ${spec.kind} definition`, {
      root: root.name,
    });
  }
}

/** Wraps anything unexpected so callers only ever see VirtError xml-error. */
export function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isVirtError(e)) {
      if (e.code === 'xml-error') throw e;
      throw xmlError(e.message, { cause: e.code });
    }
    if (e instanceof RangeError) throw xmlError(`${what}: document too complex to process (${e.message})`);
    throw xmlError(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function parseWith<M extends { xml?: string | undefined }>(spec: KindSpec<M>, text: unknown, opts: ParseOptions = {}): M {
  return guard(`cannot parse ${spec.kind} XML`, () => parseTree(spec, parseDocument(text, limitsOf(opts)), opts));
}

/** Reads the root of an already parsed document; the tree becomes the canonical document. */
export function parseTree<M extends { xml?: string | undefined }>(spec: KindSpec<M>, root: XElement, opts: ParseOptions = {}): M {
  return guard(`cannot parse ${spec.kind} XML`, () => {
    checkRoot(root, spec);
    const raw = spec.codec.read(root, `/${spec.root}`) ?? {};
    spec.preValidate?.(raw, root);
    spec.generate?.(raw, generators(opts));
    spec.normalize?.(raw, root);
    const res = spec.schema.safeParse(raw);
    if (!res.success) modelError(spec.kind, res.error);
    const model = res.data;
    spec.validate?.(model, root);
    spec.codec.write(root, model as Record<string, any>, undefined, { aligned: true });
    return { ...model, xml: serialize(root) };
  });
}

export function formatWith<M extends { xml?: string | undefined }>(spec: KindSpec<M>, def: unknown): string {
  return guard(`cannot format ${spec.kind} XML`, () => {
    const res = spec.schema.safeParse(def);
    if (!res.success) modelError(spec.kind, res.error);
    const { xml, ...parsed } = res.data as M & Record<string, any>;
    let root: XElement;
    if (xml !== undefined) {
      root = parseDocument(xml, DEFAULT_LIMITS);
      checkRoot(root, spec);
    } else root = element(spec.root);
    let model: Record<string, any> = parsed;
    if (spec.normalize) {
      const raw = structuredClone(parsed);
      spec.normalize(raw, root);
      const again = spec.schema.safeParse(raw);
      if (!again.success) modelError(spec.kind, again.error);
      model = again.data as Record<string, any>;
    }
    spec.codec.write(root, model, undefined, { aligned: false });
    spec.validate?.(model as unknown as M, root);
    return serialize(root);
  });
}
