import { z } from 'zod';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './paging.ts';
import { ObjectRef } from './ids.ts';
import { DomainStateName, ObservedState, RuntimeDevices, RuntimeInterface } from './domain/state.ts';
import { DomainDefinition } from './domain/definition.ts';
import { DomainOp } from './domain/events.ts';
import { SnapshotRecord } from './domain/snapshots.ts';
import { HostCapabilities } from './host/events.ts';

export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE };

/**
 * Lists come in pages: at most `pageSize` items, fewer when more would not fit in one reply (the
 * server's payload limit), and a `next` cursor while anything is left. A cursor is opaque to callers.
 */
export const PageRequest = z.object({
  cursor: z.string().min(1).max(8192).optional(),
  pageSize: z.number().int().min(1).max(MAX_PAGE_SIZE).optional(),
});
export type PageRequest = z.infer<typeof PageRequest>;

/** What every page carries beside its items: the log position it reflects and where to go on. */
export interface PageInfo {
  seq: number;
  next?: string;
}

const CursorKey = z.array(z.string().max(4096)).min(1).max(4);

/** A cursor is the sort key of the last item given, so pages neither repeat nor skip an item. */
export const encodeCursor = (key: string[]): string => Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');

export const decodeCursor = (cursor: string): string[] | null => {
  try {
    const parsed = CursorKey.safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
};

export const DomainView = z.object({
  id: z.string(),
  name: z.string(),
  hostId: z.string(),
  persistent: z.boolean(),
  definition: DomainDefinition,
  /** A definition recorded while the domain ran, applied at its next stop. */
  nextDefinition: DomainDefinition.nullable(),
  desired: DomainStateName,
  /** What the host last reported; nostate/unknown while `hostLost`. */
  observed: ObservedState,
  /** The domain's host was declared lost: its state is unknown (host lost). */
  hostLost: z.boolean().optional(),
  /** While the host is lost: what was known before. */
  lastObserved: ObservedState.optional(),
  /** The ownership epoch: tasks carry it, and a host's word counts only under the current one. */
  placementEpoch: z.number().int().optional(),
  /** Its host is being evacuated: it moves once its guest is stopped there. */
  evacuating: z.object({ fromHostId: z.string(), start: z.enum(['running', 'paused']).optional() }).optional(),
  /** Host devices of the running guest's interfaces (virsh domiflist's Interface column). */
  interfaces: z.array(RuntimeInterface).default([]),
  /** Display ports and console ptys of the running guest, for its live XML. */
  devices: RuntimeDevices.optional(),
  pending: z
    .object({ op: DomainOp, taskId: z.string(), requestedAt: z.string(), deadline: z.string(), file: z.string().optional() })
    .nullable(),
  lastError: z.object({ op: DomainOp, taskId: z.string(), code: z.string(), message: z.string(), at: z.string() }).nullable(),
  /** The domain's version: the stream sequence of the last commit folded in. */
  version: z.number().int(),
  /** virsh autostart: started when its host's agent starts. */
  autostart: z.boolean().optional(),
  /** virsh managedsave: its host holds a saved state that the next start resumes. */
  managedSave: z.boolean().optional(),
  /** virsh snapshot-list: the snapshots its host holds, in creation order, and the current one. */
  snapshots: z.array(SnapshotRecord).optional(),
  currentSnapshot: z.string().optional(),
  /** virsh's Id while the guest is active (absent, shown '-', while it is not). */
  domid: z.number().int().optional(),
  updatedAt: z.string(),
});
export type DomainView = z.infer<typeof DomainView>;

/**
 * What a domain command's reply adds when it asked to wait (`waitMs`) and the host's outcome was
 * recorded in time: the domain then, as the views will show it (null: gone, a transient domain stopped).
 */
export const CommandOutcome = z.object({ domain: DomainView.nullable() });
export type CommandOutcome = z.infer<typeof CommandOutcome>;

export const HostView = z.object({
  hostId: z.string(),
  hostname: z.string(),
  instanceId: z.string(),
  agentVersion: z.string(),
  capabilities: HostCapabilities.nullable(),
  registeredAt: z.string().nullable(),
  version: z.number().int(),
  /** Declared lost (its lease expired) and not registered since. */
  lost: z.boolean().optional(),
  lostAt: z.string().nullable().optional(),
  /** In maintenance: no new domain is placed on it. */
  maintenance: z.boolean().optional(),
  /** Removed by an operator: it may not register until enrolled again. */
  removed: z.boolean().optional(),
  /** From heartbeats, not from the log: how recently the agent was heard. */
  lastHeartbeat: z.string().nullable().optional(),
  alive: z.boolean().optional(),
  activeDomains: z.number().int().optional(),
  /** How long ago the lease was last written; null without a lease. */
  leaseAgeMs: z.number().int().nullable().optional(),
  /** Domains placed on the host, and the memory left after those that run (or may run) there. */
  domains: z.number().int().optional(),
  freeMemoryKiB: z.number().int().nullable().optional(),
});
export type HostView = z.infer<typeof HostView>;

export const DomainGetRequest = z.object({
  domain: ObjectRef,
  /** Read-your-writes: wait (briefly) until the view reflects at least this version. */
  minVersion: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
});
export type DomainGetRequest = z.infer<typeof DomainGetRequest>;

/** query.domain.get as served: also wait until no operation is in flight (how `virtplane start` waits for the outcome). */
export const DomainGetQuery = DomainGetRequest.extend({ settled: z.boolean().optional() });

export const DomainListRequest = z.object({
  host: z.string().optional(),
  state: DomainStateName.optional(),
  // Names are stored in NFC: a filter spelled in NFD finds them too.
  name: z.string().max(1024).transform((s) => s.normalize('NFC')).optional(),
  /** virsh list shows active domains unless --all. */
  all: z.boolean().default(false),
  /** Read-your-writes across domains: wait until the views reflect this stream sequence. */
  minSeq: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
  ...PageRequest.shape,
});
export type DomainListRequest = z.infer<typeof DomainListRequest>;

/** query.host.list: hosts are few, but paged like every list. */
export const HostListRequest = z.object({ ...PageRequest.shape });
export type HostListRequest = z.infer<typeof HostListRequest>;
