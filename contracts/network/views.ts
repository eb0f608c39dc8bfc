import { z } from 'zod';
import { PageRequest } from '../views.ts';
import { ObjectRef } from '../ids.ts';
import { NetworkDefinition } from './definition.ts';

export const NetworkView = z.object({
  id: z.string(),
  name: z.string(),
  /** The live definition while active, the persistent one otherwise. */
  definition: NetworkDefinition,
  /** A definition recorded while the network was active, applied when it stops (net-dumpxml --inactive). */
  nextDefinition: NetworkDefinition.nullable(),
  active: z.boolean(),
  persistent: z.boolean(),
  autostart: z.boolean(),
  /** The bridge guests are plugged into on every host; null for networks that use host devices directly. */
  bridge: z.string().nullable(),
  /** The network's version: the stream sequence of the last commit folded in. */
  version: z.number().int(),
  updatedAt: z.string(),
});
export type NetworkView = z.infer<typeof NetworkView>;

export const NetworkGetRequest = z.object({
  network: ObjectRef,
  /** Read-your-writes: wait (briefly) until the view reflects at least this version. */
  minVersion: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
});
export type NetworkGetRequest = z.infer<typeof NetworkGetRequest>;

export const NetworkListRequest = z.object({
  /** virsh net-list shows active networks unless --all (or --inactive: only inactive ones). */
  all: z.boolean().default(false),
  inactive: z.boolean().default(false),
  /** Read-your-writes across networks: wait until the views reflect this stream sequence. */
  minSeq: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
  ...PageRequest.shape,
});
export type NetworkListRequest = z.infer<typeof NetworkListRequest>;

/** Forward modes in which virtplane runs the bridge itself (libvirt: the bridge driver creates it). */
const OWN_BRIDGE_MODES = new Set<string | undefined>([undefined, 'nat', 'route', 'open', 'isolated']);

/** libvirt's `%d` template rule: exactly one '%', and it is '%d'. */
const isTemplate = (name: string): boolean => name.split('%').length === 2 && name.includes('%d');

/**
 * The bridge a network's guests attach to. Without a fixed name, the name comes from the uuid, so
 * every host that realises the network picks the same one (the host network driver applies the same
 * rule); libvirt's virbrN counter would need fleet-wide coordination for no benefit.
 */
export const bridgeNameOf = (def: NetworkDefinition): string | null => {
  const mode = def.forward?.mode;
  // forward mode='bridge' names an existing host bridge, used as is.
  if (mode === 'bridge') return def.bridge?.name ?? null;
  if (!OWN_BRIDGE_MODES.has(mode)) return null;
  const name = def.bridge?.name;
  return name && !isTemplate(name) ? name : `vpbr${def.uuid.replace(/-/g, '').slice(0, 11)}`;
};
