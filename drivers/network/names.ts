import { z } from 'zod';
import { VirtError } from '../../contracts/errors.ts';

/**
 * Host network device names: validation and the per-host monotonic allocators for generated
 * names (`vnetN`, `macvtapN`, `macvlanN`) and for user `%d` templates.
 *
 * Pure: no I/O. Whether a name exists on the host is asked through an injected check, and the
 * persisted form is a plain snapshot the caller stores. Follows libvirt's virNetDevGenerateName /
 * virNetDevReserveName (see reference/libvirt-semantics.md section C), with two deliberate
 * differences: a candidate that would not fit IFNAMSIZ-1 is never produced (the counter wraps
 * first), and names still held or released only recently are skipped as well as names that exist.
 */

/** Linux IFNAMSIZ; a name has at most IFNAMSIZ-1 characters. */
export const IFNAMSIZ = 16;
export const MAX_IFNAME_LENGTH = IFNAMSIZ - 1;
export const INT_MAX = 2147483647;
/** libvirt gives up after this many candidates in one call. */
export const MAX_ATTEMPTS = 10000;

export const NAME_KINDS = ['vnet', 'macvtap', 'macvlan'] as const;
export type NameKind = (typeof NAME_KINDS)[number];

const RESERVED_RE = /^(vnet|macvtap|macvlan)(\d+)$/;

/**
 * Stricter than the kernel's dev_valid_name: names end up quoted in nft rule sets and in file
 * names, so only characters that need no escaping anywhere are accepted.
 */
const IFNAME_RE = /^[A-Za-z0-9_.-]+$/;

export function validateIfname(name: string, what = 'interface name'): void {
  if (name.length === 0 || name.length > MAX_IFNAME_LENGTH) {
    throw new VirtError('invalid-arg', `${what} '${name}' must have 1 to ${MAX_IFNAME_LENGTH} characters`);
  }
  if (!IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new VirtError('invalid-arg', `${what} '${name}' may contain only letters, digits, '_', '.' and '-'`);
  }
}

/** True when `name` has the shape of a generated name (vnetN, macvtapN, macvlanN). */
export const isReservedName = (name: string): boolean => RESERVED_RE.test(name);

/**
 * Largest id a counter hands out before wrapping to 0: the digits must fit beside the fixed
 * part in IFNAMSIZ-1 characters, and the id stays an int as in libvirt (INT_MAX inclusive).
 */
export function maxIdFor(fixedLength: number): number {
  const digits = MAX_IFNAME_LENGTH - fixedLength;
  if (digits <= 0) return -1;
  if (digits >= 10) return INT_MAX;
  return Math.min(10 ** digits - 1, INT_MAX);
}

/** A user `<target dev>` is a template when it has exactly one `%` and that is `%d` (libvirt's rule). */
export function isTemplate(requested: string): boolean {
  const percents = requested.split('%').length - 1;
  return percents === 1 && requested.includes('%d');
}

export type NameRequest =
  | { type: 'generated'; kind: NameKind }
  | { type: 'template'; template: string }
  | { type: 'fixed'; name: string };

/**
 * Classifies a requested `<target dev>` for a device of `kind`: absent → generated; the kind's own
 * `prefix%d` → generated (that is what libvirt's default template means); another `%d` template →
 * template; anything else → fixed. Rejects names reserved for generated devices.
 */
export function classifyRequest(kind: NameKind, requested: string | undefined): NameRequest {
  if (requested === undefined || requested === '') return { type: 'generated', kind };
  if (isTemplate(requested)) {
    const [before = '', after = ''] = requested.split('%d');
    if (before === kind && after === '') return { type: 'generated', kind };
    if (/^(vnet|macvtap|macvlan)\d*$/.test(before) && after === '') {
      throw new VirtError(
        'invalid-arg',
        `interface name template '${requested}' would produce names reserved for generated devices (vnetN, macvtapN, macvlanN)`,
      );
    }
    // Validate the shape with the smallest expansion; the length limit is enforced per candidate.
    validateIfname(`${before}0${after}`, 'interface name template');
    if (maxIdFor(before.length + after.length) < 0) {
      throw new VirtError('invalid-arg', `interface name template '${requested}' leaves no room for a number`);
    }
    return { type: 'template', template: requested };
  }
  if (requested.includes('%')) {
    throw new VirtError('invalid-arg', `interface name '${requested}' may contain '%' only as a single '%d' template`);
  }
  validateIfname(requested);
  if (isReservedName(requested)) {
    throw new VirtError(
      'invalid-arg',
      `interface name '${requested}' is reserved for generated devices (vnetN, macvtapN, macvlanN); omit the target dev to get a generated name`,
    );
  }
  return { type: 'fixed', name: requested };
}

export const AllocatorState = z.object({
  version: z.literal(1),
  /** Last id handed out per generated prefix; -1 or absent means none yet. */
  counters: z.record(z.string(), z.number().int().min(-1)),
  /** Last id handed out per user template. */
  templates: z.record(z.string(), z.number().int().min(-1)),
  /** Names given back recently, with the time (ms since epoch) their clean-up finished. */
  released: z.array(z.object({ name: z.string(), at: z.number() })),
});
export type AllocatorState = z.infer<typeof AllocatorState>;

export interface AllocatorOptions {
  /** Previously persisted state; counters continue from it and are pushed past its history. */
  state?: AllocatorState;
  /** How long a released name is avoided even after a wrap. Default 10 minutes. */
  quarantineMs?: number;
  /** Upper bound on remembered released names. Default 4096. */
  historyLimit?: number;
  /** Upper bound on remembered template counters. Default 1024. */
  templateLimit?: number;
  /** Overrides the wrap point per prefix (never above what fits); for exercising wraps. */
  maxIds?: Partial<Record<NameKind, number>>;
  now?: () => number;
}

/** Injected check for a name already present on the host (any device, not only ours). */
export type ExistsCheck = (name: string) => boolean;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');

export class NameAllocator {
  private readonly counters = new Map<NameKind, number>();
  /** Insertion order doubles as recency, for bounding the map. */
  private readonly templates = new Map<string, number>();
  /** Names handed out or reserved and not yet given back: never candidates. */
  private readonly held = new Set<string>();
  /** name → release time; insertion order is release order. */
  private readonly released = new Map<string, number>();
  private readonly quarantineMs: number;
  private readonly historyLimit: number;
  private readonly templateLimit: number;
  private readonly maxIds: Record<NameKind, number>;
  private readonly now: () => number;

  constructor(opts: AllocatorOptions = {}) {
    this.quarantineMs = opts.quarantineMs ?? 10 * 60_000;
    this.historyLimit = opts.historyLimit ?? 4096;
    this.templateLimit = opts.templateLimit ?? 1024;
    this.now = opts.now ?? Date.now;
    const maxIds = {} as Record<NameKind, number>;
    for (const kind of NAME_KINDS) {
      const limit = maxIdFor(kind.length);
      const override = opts.maxIds?.[kind];
      maxIds[kind] = override === undefined ? limit : Math.max(0, Math.min(override, limit));
      this.counters.set(kind, -1);
    }
    this.maxIds = maxIds;
    if (opts.state) this.load(opts.state);
  }

  private load(state: AllocatorState): void {
    for (const kind of NAME_KINDS) {
      const v = state.counters[kind];
      if (v !== undefined) this.counters.set(kind, Math.min(v, this.maxIds[kind]));
    }
    for (const [template, v] of Object.entries(state.templates)) {
      if (isTemplate(template)) this.templates.set(template, v);
    }
    const sorted = [...state.released].sort((a, b) => a.at - b.at);
    for (const { name, at } of sorted) {
      this.released.delete(name);
      this.released.set(name, at);
    }
    // A counter file older than its history (or missing a counter) must not hand out a name the
    // history says was in use recently: push each counter past the names it remembers.
    for (const { name } of sorted) this.bump(name);
    this.prune();
  }

  /**
   * Picks a name for a new device of `kind`. `requested` is the user's `<target dev>`: a fixed
   * name is returned as is, a `%d` template is expanded from its own monotonic counter, and
   * nothing gives `<kind>N` from the kind's counter. The name is held until `release`.
   */
  allocate(kind: NameKind, requested: string | undefined, exists: ExistsCheck = () => false): string {
    const req = classifyRequest(kind, requested);
    if (req.type === 'fixed') {
      if (this.held.has(req.name)) {
        throw new VirtError('operation-failed', `network device '${req.name}' is already in use`);
      }
      this.held.add(req.name);
      return req.name;
    }
    const [prefix, suffix, label, maxId, get, set] =
      req.type === 'generated'
        ? ([
            req.kind,
            '',
            req.kind,
            this.maxIds[req.kind],
            () => this.counters.get(req.kind) ?? -1,
            (v: number) => this.counters.set(req.kind, v),
          ] as const)
        : this.templateAccess(req.template);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let id = get() + 1;
      if (id > maxId) id = 0;
      set(id);
      const name = `${prefix}${id}${suffix}`;
      if (this.held.has(name) || this.isQuarantined(name) || exists(name)) continue;
      this.held.add(name);
      return name;
    }
    throw new VirtError('internal-error', `no unused ${label} names available`);
  }

  private templateAccess(template: string) {
    const [prefix = '', suffix = ''] = template.split('%d');
    const maxId = maxIdFor(prefix.length + suffix.length);
    const get = () => this.templates.get(template) ?? -1;
    const set = (v: number) => {
      this.templates.delete(template);
      this.templates.set(template, v);
      while (this.templates.size > this.templateLimit) {
        const oldest = this.templates.keys().next().value;
        if (oldest === undefined) break;
        this.templates.delete(oldest);
      }
    };
    return [prefix, suffix, template, maxId, get, set] as const;
  }

  /**
   * Marks a name as in use by something that already exists (a running guest's device found at
   * start-up), like virNetDevReserveName: the name is held, and a generated or template name
   * pushes its counter past it so new names continue above it.
   */
  reserve(name: string): void {
    this.held.add(name);
    this.released.delete(name);
    this.bump(name);
  }

  private bump(name: string): void {
    const m = RESERVED_RE.exec(name);
    if (m) {
      const kind = m[1] as NameKind;
      const id = Number(m[2]);
      if (id <= this.maxIds[kind] && id > (this.counters.get(kind) ?? -1)) this.counters.set(kind, id);
      return;
    }
    for (const [template, last] of this.templates) {
      const [prefix = '', suffix = ''] = template.split('%d');
      const tm = new RegExp(`^${escapeRe(prefix)}(\\d+)${escapeRe(suffix)}$`).exec(name);
      if (tm && Number(tm[1]) > last && Number(tm[1]) <= maxIdFor(prefix.length + suffix.length)) {
        this.templates.set(template, Number(tm[1]));
      }
    }
  }

  /** Gives a name back after its device and everything keyed by it are gone. */
  release(name: string): void {
    this.held.delete(name);
    this.released.delete(name);
    this.released.set(name, this.now());
    this.prune();
  }

  isHeld(name: string): boolean {
    return this.held.has(name);
  }

  heldNames(): string[] {
    return [...this.held];
  }

  private isQuarantined(name: string): boolean {
    const at = this.released.get(name);
    return at !== undefined && this.now() - at < this.quarantineMs;
  }

  private prune(): void {
    const cutoff = this.now() - this.quarantineMs;
    for (const [name, at] of this.released) {
      if (at >= cutoff && this.released.size <= this.historyLimit) break;
      this.released.delete(name);
    }
  }

  /** The persisted form: counters, template counters and the recent release history. */
  snapshot(): AllocatorState {
    this.prune();
    const counters: Record<string, number> = {};
    for (const [k, v] of this.counters) counters[k] = v;
    return {
      version: 1,
      counters,
      templates: Object.fromEntries(this.templates),
      released: [...this.released].map(([name, at]) => ({ name, at })),
    };
  }
}
