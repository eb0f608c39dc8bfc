import { z } from 'zod';
import { createHash, randomUUID } from 'node:crypto';

/** Identifiers travel inside NATS subjects, so they must be single tokens of safe characters. */
export const SubjectToken = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, 'must contain only letters, digits, "_" and "-"');

export const HostId = SubjectToken;
export type HostId = z.infer<typeof HostId>;

// libvirt accepts any 128-bit id in uuid form (its own test data has non-RFC variants).
export const DomainId = z.guid();
export type DomainId = z.infer<typeof DomainId>;

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
