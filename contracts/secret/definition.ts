import { z } from 'zod';
import { Uuid } from '../ids.ts';

/**
 * A secret's definition as libvirt's secret XML holds it (src/conf/secret_conf.c). The value is not
 * part of it and never travels with it: see contracts/secret/events.ts and SECURITY.md.
 */

/** Usage types with a usage id; libvirt's 'none' is a secret without `usage`. */
export const SECRET_USAGE_TYPES = ['volume', 'ceph', 'iscsi', 'tls', 'vtpm'] as const;
export type SecretUsageType = (typeof SECRET_USAGE_TYPES)[number];

/** The element that holds each usage type's id, as libvirt reads and writes it. */
export const USAGE_ELEMENT: Record<SecretUsageType, 'volume' | 'name' | 'target'> = {
  volume: 'volume',
  ceph: 'name',
  iscsi: 'target',
  tls: 'name',
  vtpm: 'name',
};

/** libvirt sets no bound; this one keeps a usage id's claim subject and every reply small. */
export const MAX_USAGE_ID = 1024;
export const MAX_DESCRIPTION = 4096;

export const SecretUsage = z.object({
  type: z.enum(SECRET_USAGE_TYPES),
  /** The volume path, Ceph or TLS or vTPM name, or iSCSI target the secret is for. */
  id: z.string().min(1).max(MAX_USAGE_ID),
});
export type SecretUsage = z.infer<typeof SecretUsage>;

export const SecretDefinition = z.object({
  uuid: Uuid,
  /** libvirt keeps an ephemeral secret in memory only: here its value lives in a memory-backed bucket. */
  ephemeral: z.boolean(),
  /** A private secret's value is never given back (secret-get-value is refused). */
  private: z.boolean(),
  description: z.string().max(MAX_DESCRIPTION).optional(),
  usage: SecretUsage.optional(),
});
export type SecretDefinition = z.infer<typeof SecretDefinition>;

/** What makes a usage unique among secrets: its type and its id. */
export const usageKey = (u: SecretUsage): string => `${u.type}:${u.id}`;
