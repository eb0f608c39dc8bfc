import { z } from 'zod';
import { createHash, randomUUID } from 'node:crypto';
import { VirtError } from './errors.ts';

/** Identifiers travel inside NATS subjects, so they must be single tokens of safe characters. */
export const SubjectToken = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, 'must contain only letters, digits, "_" and "-"');

export const HostId = SubjectToken;
export type HostId = z.infer<typeof HostId>;

/**
 * A uuid, in the one spelling that goes into subjects: lower case with dashes. libvirt accepts any
 * 128-bit id in uuid form (its own test data has non-RFC variants) and any case, so an upper-case
 * copy of a uuid must address the same aggregate, never define a second one.
 */
export const Uuid = z.guid().transform((u) => u.toLowerCase());
export type Uuid = z.infer<typeof Uuid>;

export const DomainId = Uuid;
export type DomainId = z.infer<typeof DomainId>;

/** True for a string in uuid form, in any case: references in that form address by uuid. */
export const isUuid = (s: string): boolean => z.guid().safeParse(s).success;

/** libvirt's names are at most what its XML schema and file names allow; ours are bounded the same. */
export const MAX_NAME_LENGTH = 255;

// Characters that make two names look alike or hide what a name says: C0/C1 controls, zero-width
// characters and joiners, the word joiner and byte-order mark, and bidirectional embeddings,
// overrides and isolates.
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]/u;

/** Why `name` (already in NFC) is not acceptable as a domain, network or pool name, or null. */
export const nameProblem = (name: string): string | null => {
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_NAME_LENGTH) return `must be at most ${MAX_NAME_LENGTH} characters`;
  // libvirt refuses '/' in names (virXMLCheckIllegalChars): names become file names.
  if (name.includes('/')) return "must not contain '/'";
  if (INVISIBLE.test(name)) return 'must not contain control, zero-width or bidirectional formatting characters';
  if (name.trim() !== name) return 'must not begin or end with whitespace';
  return null;
};

/**
 * A domain, network or pool name as stored and claimed: Unicode NFC, so a composed and a decomposed
 * spelling are one name, and free of characters that make two different names look the same.
 */
export const ObjectName = z
  .string()
  .max(4 * MAX_NAME_LENGTH)
  .transform((s) => s.normalize('NFC'))
  .superRefine((s, ctx) => {
    const problem = nameProblem(s);
    if (problem) ctx.addIssue({ code: 'custom', message: `name ${problem}` });
  });
export type ObjectName = z.infer<typeof ObjectName>;

/**
 * How a request names a domain, network or pool: a uuid (any case, lower-cased here) or a name
 * (normalised and checked like a stored name, so `>` or a look-alike never reaches a subject).
 */
export const ObjectRef = z
  .string()
  .min(1)
  .max(4 * MAX_NAME_LENGTH)
  .transform((s, ctx) => {
    if (isUuid(s)) return s.toLowerCase();
    const name = s.normalize('NFC');
    const problem = nameProblem(name);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: `not a uuid, and as a name it ${problem}` });
      return z.NEVER;
    }
    return name;
  });
export type ObjectRef = z.infer<typeof ObjectRef>;

/** Ids the system itself makes (task ids, report ids): single subject-safe tokens. */
export const TaskId = SubjectToken;

export const CommandId = z.string().min(8).max(128).regex(/^[A-Za-z0-9_.:-]+$/);
export type CommandId = z.infer<typeof CommandId>;

export const newId = (): string => randomUUID();


/**
 * A uuid derived from a seed (RFC 4122 version 5 layout over SHA-1). A define without a uuid gets
 * one derived from its command id, so a retried define names the same domain instead of a second one.
 */
export const uuidFromSeed = (seed: string): string => {
  const h = createHash('sha1').update(`virtplane:${seed}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
};

/** Deterministic bytes from a seed: MAC addresses chosen for a retried define come out the same. */
export const seededRandomBytes = (seed: string): ((n: number) => Uint8Array) => {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let filled = 0; filled < n; ) {
      const block = createHash('sha256').update(`${seed}:${counter++}`).digest();
      const take = Math.min(block.length, n - filled);
      out.set(block.subarray(0, take), filled);
      filled += take;
    }
    return out;
  };
};

/**
 * The uuid and name of a parsed definition in their one stored spelling (uuid lower case, name in
 * NFC), or an invalid-arg naming what is wrong: both go into subjects and name claims.
 */
export const canonicalIdentity = <T extends { uuid: string; name: string }>(def: T): T => {
  const uuid = Uuid.safeParse(def.uuid);
  if (!uuid.success) throw new VirtError('invalid-arg', `invalid argument: uuid '${def.uuid}' is not a uuid`);
  const name = def.name.normalize('NFC');
  const problem = nameProblem(name);
  if (problem) throw new VirtError('invalid-arg', `invalid argument: name ${problem}`, { name: def.name });
  return uuid.data === def.uuid && name === def.name ? def : { ...def, uuid: uuid.data, name };
};
