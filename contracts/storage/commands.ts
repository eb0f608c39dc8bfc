import { z } from 'zod';
import { CommandHeader, JsonDefinition } from '../domain/commands.ts';
import type { VirtErrorBody } from '../errors.ts';
import { HostId, ObjectRef } from '../ids.ts';
import type { StoragePoolDefinition, StorageVolumeDefinition } from './definition.ts';
import type { PoolStats, StorageOp, VolumeInfo } from './events.ts';

/** A pool is addressed by uuid or by name, as virsh accepts either. */
export const PoolRef = ObjectRef;

const exactlyOne = [
  (r: { definition?: unknown; xml?: string | undefined }) => (r.definition === undefined) !== (r.xml === undefined),
  { message: 'give exactly one of "definition" or "xml"' },
] as const;

export const DefinePoolRequest = CommandHeader.extend({
  /** The model as JSON, or libvirt pool XML; exactly one. */
  definition: JsonDefinition.optional(),
  xml: z.string().optional(),
  /** The host the pool lives on; may be left out when only one host is up. */
  hostId: HostId.optional(),
}).refine(...exactlyOne);
export type DefinePoolRequest = z.infer<typeof DefinePoolRequest>;

export const CreatePoolRequest = CommandHeader.extend({
  definition: JsonDefinition.optional(),
  xml: z.string().optional(),
  hostId: HostId.optional(),
  /** Build the pool first, as `virsh pool-create --build`. */
  build: z.boolean().optional(),
  timeoutSeconds: z.number().positive().max(3600).optional(),
}).refine(...exactlyOne);
export type CreatePoolRequest = z.infer<typeof CreatePoolRequest>;

export const PoolOpRequest = CommandHeader.extend({
  pool: PoolRef,
  /** How long the host may take before the operation is recorded as failed. */
  timeoutSeconds: z.number().positive().max(3600).optional(),
});
export type PoolOpRequest = z.infer<typeof PoolOpRequest>;

export const StartPoolRequest = PoolOpRequest.extend({ build: z.boolean().optional() });

export const PoolAutostartRequest = CommandHeader.extend({
  pool: PoolRef,
  /** virsh pool-autostart marks the pool unless --disable. */
  disable: z.boolean().optional(),
});
export type PoolAutostartRequest = z.infer<typeof PoolAutostartRequest>;
export type StartPoolRequest = z.infer<typeof StartPoolRequest>;

export const CreateVolumeRequest = CommandHeader.extend({
  pool: PoolRef,
  definition: JsonDefinition.optional(),
  xml: z.string().optional(),
  timeoutSeconds: z.number().positive().max(3600).optional(),
}).refine(...exactlyOne);
export type CreateVolumeRequest = z.infer<typeof CreateVolumeRequest>;

export const DeleteVolumeRequest = CommandHeader.extend({
  pool: PoolRef,
  volume: z.string().min(1).max(4096),
  timeoutSeconds: z.number().positive().max(3600).optional(),
});
export type DeleteVolumeRequest = z.infer<typeof DeleteVolumeRequest>;

export const ResizeVolumeRequest = DeleteVolumeRequest.extend({
  /** Bytes: the new capacity, or with `delta` the change to it. */
  capacityBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  delta: z.boolean().optional(),
  /** Allow a capacity below the current one (`virsh vol-resize --shrink`): data past it is lost. */
  shrink: z.boolean().optional(),
});
export type ResizeVolumeRequest = z.infer<typeof ResizeVolumeRequest>;

export const CloneVolumeRequest = DeleteVolumeRequest.extend({ newName: z.string().min(1).max(255) });
export type CloneVolumeRequest = z.infer<typeof CloneVolumeRequest>;

/** What the host reports back for each operation. */
export type StorageResult =
  | { op: 'pool-build' }
  | { op: 'pool-start'; stats?: PoolStats; volumes: VolumeInfo[] }
  | { op: 'vol-create'; info: VolumeInfo; stats?: PoolStats }
  | { op: 'vol-delete'; stats?: PoolStats }
  | { op: 'pool-refresh'; stats?: PoolStats; volumes: VolumeInfo[] }
  | { op: 'pool-delete' }
  | { op: 'vol-resize' | 'vol-wipe' | 'vol-clone'; info: VolumeInfo; stats?: PoolStats };

/** What the decider sees: references resolved, definitions parsed, placement chosen. */
export type StorageCommand =
  /** `claimSeq`: the name claim the define relies on (contracts/name-claim.ts). */
  | { type: 'define'; definition: StoragePoolDefinition; hostId: string; claimSeq: number }
  | { type: 'create'; definition: StoragePoolDefinition; hostId: string; claimSeq: number; build: boolean; timeoutMs: number }
  | { type: 'undefine' }
  | { type: 'build'; timeoutMs: number }
  | { type: 'start'; build: boolean; timeoutMs: number }
  | { type: 'destroy' }
  | { type: 'vol-create'; volume: StorageVolumeDefinition; timeoutMs: number }
  | { type: 'vol-delete'; name: string; timeoutMs: number }
  | { type: 'refresh'; timeoutMs: number }
  | { type: 'delete'; timeoutMs: number }
  | { type: 'vol-resize'; name: string; capacityBytes: number; delta: boolean; shrink: boolean; timeoutMs: number }
  | { type: 'vol-wipe'; name: string; timeoutMs: number }
  | { type: 'vol-clone'; name: string; newName: string; timeoutMs: number }
  | { type: 'set-autostart'; autostart: boolean }
  /** A host agent that starts asks for its inactive autostart pool's start (contracts/storage/autostart.ts). */
  | { type: 'autostart-boot'; hostId: string; timeoutMs: number }
  | { type: 'complete'; taskId: string; result: StorageResult }
  | { type: 'fail'; taskId: string; error: VirtErrorBody }
  | { type: 'expire'; taskId: string };

export { DEFAULT_STORAGE_TIMEOUT_MS } from './timeouts.ts';

export const StorageAccepted = z.object({
  ok: z.literal(true),
  poolId: z.string(),
  pool: z.string(),
  /** The volume the command was about, for volume commands. */
  volume: z.string().optional(),
  version: z.number().int(),
  commandId: z.string(),
  duplicate: z.boolean().optional(),
  /** The host task the command started, when it asked a host to act. */
  taskId: z.string().optional(),
});
export type StorageAccepted = z.infer<typeof StorageAccepted>;
