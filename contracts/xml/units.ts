/**
 * Value syntaxes libvirt applies while parsing: scaled integers (virScaleInteger), CPU/node bitmaps
 * (virBitmapParse), UUIDs (virUUIDParse), MAC addresses, disk target names (virDiskNameParse) and
 * IP addresses. Pure functions; failures return undefined or a reason so callers can name the path.
 */

export const ULLONG_MAX = (1n << 64n) - 1n;
export const LLONG_MAX = (1n << 63n) - 1n;

/** The number part of a scaled value: decimal digits only, like virStrToLong_ullp. */
export function parseUnsignedBig(raw: string): bigint | undefined {
  const s = raw.trim();
  if (!/^\+?[0-9]+$/.test(s)) return undefined;
  return BigInt(s.replace(/^\+/, ''));
}

export type ScaleResult = { ok: true; value: bigint } | { ok: false; reason: string };

/**
 * virScaleInteger: an empty unit means `defaultScale`; "b", "byte", "bytes" mean 1; a single letter
 * or letter + "iB" is a power of 1024, letter + "B" a power of 1000 (k, M, G, T, P, E; any case).
 */
export function scaleInteger(value: bigint, unit: string | undefined, defaultScale: bigint, limit: bigint): ScaleResult {
  let scale: bigint;
  if (unit === undefined || unit === '') {
    scale = defaultScale;
  } else {
    const u = unit.toLowerCase();
    if (u === 'b' || u === 'byte' || u === 'bytes') {
      scale = 1n;
    } else {
      let base: bigint;
      if (u.length === 1 || u.slice(1) === 'ib') base = 1024n;
      else if (u.length === 2 && u[1] === 'b') base = 1000n;
      else return { ok: false, reason: `unknown suffix '${unit}'` };
      const power = 'kmgtpe'.indexOf(u[0]!) + 1;
      if (power === 0) return { ok: false, reason: `unknown suffix '${unit}'` };
      scale = base ** BigInt(power);
    }
  }
  if (value !== 0n && value > limit / scale) return { ok: false, reason: `value too large: ${value}${unit ?? ''}` };
  return { ok: true, value: value * scale };
}

export const ceilDiv = (a: bigint, b: bigint): bigint => (a + b - 1n) / b;

/**
 * virBitmapParse: comma-separated "N", "N-M" (N <= M) and "^N" entries, spaces allowed around
 * tokens, every bit below `maxBits`. Returns the set bits, or undefined when the string is invalid.
 */
export function parseBitmap(raw: string, maxBits = 16384): Set<number> | undefined {
  const set = new Set<number>();
  const s = raw;
  let i = 0;
  const skip = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const num = (): number | undefined => {
    const m = /^[0-9]+/.exec(s.slice(i, i + 12));
    if (!m) return undefined;
    i += m[0].length;
    const v = Number(m[0]);
    return v > 0x7fffffff ? undefined : v;
  };
  skip();
  if (i >= s.length) return undefined;
  while (i < s.length) {
    let neg = false;
    if (s[i] === '^') {
      neg = true;
      i++;
    }
    const start = num();
    if (start === undefined) return undefined;
    skip();
    if (s[i] === '-') {
      if (neg) return undefined;
      i++;
      skip();
      const last = num();
      if (last === undefined || last < start || last >= maxBits) return undefined;
      for (let b = start; b <= last; b++) set.add(b);
      skip();
    } else {
      if (start >= maxBits) return undefined;
      if (neg) set.delete(start);
      else set.add(start);
    }
    if (s[i] === ',') {
      i++;
      skip();
      if (i >= s.length) return undefined;
    } else if (i < s.length) return undefined;
  }
  return set;
}

/** virUUIDParse: 32 hex digits, dashes and spaces allowed between them; canonical form is lowercase 8-4-4-4-12. */
export function parseUuid(raw: string): string | undefined {
  const s = raw.trim();
  let hex = '';
  for (const ch of s) {
    if (ch === '-' || ch === ' ') continue;
    if (!/[0-9a-fA-F]/.test(ch)) return undefined;
    hex += ch.toLowerCase();
    if (hex.length > 32) return undefined;
  }
  if (hex.length !== 32) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** virMacAddrParse: six hex octets of one or two digits separated by ':' (or '-'); canonical lowercase two-digit form. */
export function parseMac(raw: string): string | undefined {
  const parts = raw.trim().split(/[:-]/);
  if (parts.length !== 6) return undefined;
  const out: string[] = [];
  for (const p of parts) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(p)) return undefined;
    out.push(p.toLowerCase().padStart(2, '0'));
  }
  return out.join(':');
}

export const isMulticastMac = (mac: string): boolean => (parseInt(mac.slice(0, 2), 16) & 1) === 1;

const DISK_PREFIXES = ['fd', 'hd', 'vd', 'sd', 'xvd', 'ubd'] as const;

/**
 * virDiskNameToIndex: a known prefix, lowercase letters counted in bijective base 26, optional
 * partition digits. Returns the disk index, or undefined when the name is not a disk name or the
 * index does not fit in an int (libvirt's index type).
 */
export function diskNameToIndex(name: string): number | undefined {
  const prefix = DISK_PREFIXES.find((p) => name.startsWith(p));
  if (!prefix) return undefined;
  const m = /^([a-z]+)([0-9]*)$/.exec(name.slice(prefix.length));
  if (!m) return undefined;
  let idx = 0;
  const letters = m[1]!;
  for (let i = 0; i < letters.length; i++) {
    idx = (idx + (i < 1 ? 0 : 1)) * 26 + (letters.charCodeAt(i) - 97);
    if (idx > 0x7fffffff) return undefined;
  }
  return idx;
}

/** The bus libvirt infers from a disk target name when <target bus> is absent. */
export function defaultDiskBus(dev: string, device: string): string {
  if (device === 'floppy') return 'fdc';
  if (dev.startsWith('hd')) return 'ide';
  if (dev.startsWith('sd')) return 'scsi';
  if (dev.startsWith('vd')) return 'virtio';
  if (dev.startsWith('xvd')) return 'xen';
  if (dev.startsWith('ubd')) return 'uml';
  return 'ide';
}

export function parseIPv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

export function parseIPv6(s: string): bigint | undefined {
  if (s.length > 45 || s.length < 2) return undefined;
  let str = s;
  if (str.includes('.')) {
    // An embedded IPv4 tail (::ffff:1.2.3.4) is rewritten as its two hex groups.
    const lastColon = str.lastIndexOf(':');
    const v4 = parseIPv4(str.slice(lastColon + 1));
    if (lastColon < 0 || v4 === undefined) return undefined;
    str = `${str.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = str.split('::');
  if (halves.length > 2) return undefined;
  const group = (h: string): bigint[] | undefined => {
    if (h === '') return [];
    const out: bigint[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(BigInt(parseInt(g, 16)));
    }
    return out;
  };
  const head = group(halves[0]!);
  const rest = halves.length === 2 ? group(halves[1]!) : [];
  if (!head || !rest) return undefined;
  let groups: bigint[];
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return undefined;
    groups = [...head, ...Array<bigint>(fill).fill(0n), ...rest];
  } else {
    if (head.length !== 8) return undefined;
    groups = head;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | g;
  return v;
}

export type IpFamily = 'ipv4' | 'ipv6';

export function parseIp(s: string): { family: IpFamily; value: bigint } | undefined {
  const v4 = parseIPv4(s);
  if (v4 !== undefined) return { family: 'ipv4', value: v4 };
  const v6 = parseIPv6(s);
  if (v6 !== undefined) return { family: 'ipv6', value: v6 };
  return undefined;
}

/** Prefix length of a contiguous IPv4 netmask, or undefined for a non-contiguous mask. */
export function netmaskToPrefix(mask: string): number | undefined {
  const v = parseIPv4(mask);
  if (v === undefined) return undefined;
  let prefix = 0;
  let seenZero = false;
  for (let bit = 31n; bit >= 0n; bit--) {
    const one = ((v >> bit) & 1n) === 1n;
    if (one && seenZero) return undefined;
    if (one) prefix++;
    else seenZero = true;
  }
  return prefix;
}

/** The classful default libvirt applies to an IPv4 address given without prefix or netmask. */
export function defaultIPv4Prefix(addr: bigint): number | undefined {
  const first = Number(addr >> 24n);
  if (first < 128) return 8;
  if (first < 192) return 16;
  if (first < 224) return 24;
  return undefined;
}

/** virArch names libvirt knows. */
export const ARCHES = [
  'i686', 'x86_64', 'aarch64', 'armv6l', 'armv7l', 'armv7b', 'alpha', 'cris', 'lm32', 'loongarch64', 'm68k',
  'microblaze', 'microblazeel', 'mips', 'mipsel', 'mips64', 'mips64el', 'openrisc', 'parisc', 'parisc64',
  'ppc', 'ppcle', 'ppc64', 'ppc64le', 'ppcemb', 'riscv32', 'riscv64', 's390', 's390x', 'sh4', 'sh4eb',
  'sparc', 'sparc64', 'unicore32', 'xtensa', 'xtensaeb',
] as const;
