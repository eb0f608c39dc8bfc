import { z } from 'zod';
import { DomainDefinition, type InterfaceModel } from './definition.ts';
import { CommandId, HostId, ObjectName, ObjectRef } from '../ids.ts';
import { DEFAULT_LIMITS } from '../xml/limits.ts';
import type { VirtErrorBody } from '../errors.ts';
import type { DomainOp } from './events.ts';
import type { DomainStateName, ObservedState, RuntimeDevices, RuntimeInterface, StateReason } from './state.ts';
import type { ResourceChange } from './resources.ts';
import type { DiskCommand } from './devices.ts';
import { SavePath } from './save-restore.ts';
import { MetadataFields } from './metadata.ts';
import type { SnapshotCommand } from './snapshots.ts';
import type { GuestActionCommand } from './guest-actions.ts';

/** Fields every command request may carry; the client fills them, people need not. */
export const CommandHeader = z.object({
  commandId: CommandId.optional(),
  actor: z.string().min(1).max(256).optional(),
  correlationId: z.string().max(128).optional(),
});

/** A domain is addressed by uuid or by name, as virsh accepts either. */
export const DomainRef = ObjectRef;

/**
 * JSON definitions are bounded like XML documents (whose parser refuses more than 1 MiB with an
 * xml-error): one request cannot hold a service for long or bloat the undeletable log.
 */
export const MAX_DEFINITION_BYTES = DEFAULT_LIMITS.maxBytes;
const limitText = `${MAX_DEFINITION_BYTES / (1024 * 1024)} MiB`;

/** A JSON definition, checked only for size here; its schema is checked where it is used. */
export const JsonDefinition = z.unknown().superRefine((v, ctx) => {
  const text = JSON.stringify(v);
  if (text !== undefined && Buffer.byteLength(text, 'utf8') > MAX_DEFINITION_BYTES) {
    ctx.addIssue({ code: 'custom', message: `the JSON definition is larger than the ${limitText} limit for definitions` });
  }
});

export const DefineDomainRequest = CommandHeader.extend({
  /** The model as JSON, or libvirt XML; exactly one. */
  definition: JsonDefinition.optional(),
  xml: z.string().optional(),
  /** Place on this host; the scheduler picks one when absent. */
  hostId: HostId.optional(),
}).refine((r) => (r.definition === undefined) !== (r.xml === undefined), {
  message: 'give exactly one of "definition" or "xml"',
});
export type DefineDomainRequest = z.infer<typeof DefineDomainRequest>;

/** virsh create: define (transiently, for a new domain) and start in one command. */
export const CreateDomainRequest = CommandHeader.extend({
  definition: JsonDefinition.optional(),
  xml: z.string().optional(),
  hostId: HostId.optional(),
  paused: z.boolean().optional(),
  timeoutSeconds: z.number().positive().max(3600).optional(),
}).refine((r) => (r.definition === undefined) !== (r.xml === undefined), {
  message: 'give exactly one of "definition" or "xml"',
});
export type CreateDomainRequest = z.infer<typeof CreateDomainRequest>;

/**
 * The longest a command reply may be held for its operation's outcome: well inside the time after
 * which a client sends an unanswered command again (10 s).
 */
export const MAX_OUTCOME_WAIT_MS = 5_000;

export const DomainOpRequest = CommandHeader.extend({
  domain: DomainRef,
  /** How long the host may take before the operation is recorded as failed. */
  timeoutSeconds: z.number().positive().max(3600).optional(),
  /** destroy: the operator says the domain's lost host is off, so the domain is recorded shut off. */
  force: z.boolean().optional(),
  /**
   * Hold the reply until the host's outcome is recorded, up to this long: the reply then carries it
   * (`outcome`, contracts/views.ts CommandOutcome), and nobody need ask the views. Not settled by
   * then: the reply comes without it.
   */
  waitMs: z.number().int().min(0).max(MAX_OUTCOME_WAIT_MS).optional(),
});
export type DomainOpRequest = z.infer<typeof DomainOpRequest>;

export const StartDomainRequest = DomainOpRequest.extend({ paused: z.boolean().optional() });

/** virsh domrename: a shut off persistent domain takes a new name. */
export const RenameDomainRequest = CommandHeader.extend({ domain: DomainRef, newName: ObjectName });
export type RenameDomainRequest = z.infer<typeof RenameDomainRequest>;

/** virsh desc: a domain's description or title; an empty text removes it. */
export const SetMetadataRequest = CommandHeader.extend({
  domain: DomainRef,
  /** `metadata`: an application's element under `uri` (virsh metadata); `value` is the element, '' removes it. */
  field: z.enum(['description', 'title', 'metadata']),
  ...MetadataFields,
  // libvirt refuses a title with a newline; a description may hold any text up to a sane size.
  value: z.string().max(65536),
  live: z.boolean().optional(),
  config: z.boolean().optional(),
})
  .refine((r) => r.field !== 'title' || !r.value.includes('\n'), { message: 'a title may not contain a newline', path: ['value'] })
  .refine((r) => r.field !== 'metadata' || r.uri !== undefined, { message: 'metadata needs the namespace uri', path: ['uri'] });
export type SetMetadataRequest = z.infer<typeof SetMetadataRequest>;
export type StartDomainRequest = z.infer<typeof StartDomainRequest>;

/** virsh autostart: mark the domain to be started when its host's agent starts, or unmark it. */
export const AutostartDomainRequest = CommandHeader.extend({ domain: DomainRef, disable: z.boolean().optional() });
export type AutostartDomainRequest = z.infer<typeof AutostartDomainRequest>;

/** virsh undefine, with --managed-save: the domain's saved state goes with it. */
export const UndefineDomainRequest = DomainOpRequest.extend({
  managedSave: z.boolean().optional(),
  /** --snapshots-metadata: the domain's snapshot metadata goes with it (the host's data stays). */
  snapshotsMetadata: z.boolean().optional(),
});
export type UndefineDomainRequest = z.infer<typeof UndefineDomainRequest>;

/** virsh save: the running guest's state goes to `file` on its host, and the domain is shut off (saved). */
export const SaveDomainRequest = DomainOpRequest.extend({ file: SavePath });
export type SaveDomainRequest = z.infer<typeof SaveDomainRequest>;

/**
 * virsh restore: `file` on `hostId` (the only host when there is one) holds a saved guest and the
 * definition it ran with; `paused`/`running` override the state it was saved in.
 */
export const RestoreDomainRequest = CommandHeader.extend({
  file: SavePath,
  hostId: HostId.optional(),
  paused: z.boolean().optional(),
  running: z.boolean().optional(),
  timeoutSeconds: z.number().positive().max(3600).optional(),
});
export type RestoreDomainRequest = z.infer<typeof RestoreDomainRequest>;

/** What the decider sees: names already resolved, definitions parsed, placement chosen. */
export type DomainCommand =
  /** `claimSeq`: the name claim the define relies on (contracts/name-claim.ts). */
  | { type: 'define'; definition: DomainDefinition; hostId: string; claimSeq: number }
  /** virsh create: a domain started from a definition, transient unless that domain is already defined. */
  | { type: 'create'; definition: DomainDefinition; hostId: string; claimSeq: number; paused: boolean; timeoutMs: number }
  | { type: 'undefine'; managedSave?: boolean; snapshotsMetadata?: boolean }
  | SnapshotCommand
  /**
   * `claimSeq`: the claim on the new name, as a define's. `releaseClaimSeq`: the domain's own claim on
   * its old name, fenced in the same commit so the old name is free at once.
   */
  | { type: 'rename'; newName: string; claimSeq: number; releaseClaimSeq?: number }
  /** virsh desc: neither flag means the live definition of an active domain, the persistent one otherwise. */
  | { type: 'set-metadata'; field: 'description' | 'title' | 'metadata'; value: string; live: boolean; config: boolean; uri?: string; key?: string }
  /** virsh setmem, setmaxmem, setvcpus: live/config as desc's (resources.ts). */
  | { type: 'set-resources'; change: ResourceChange; live: boolean; config: boolean }
  | { type: 'start'; paused: boolean; timeoutMs: number }
  | { type: 'shutdown'; timeoutMs: number }
  | { type: 'destroy'; timeoutMs: number; force?: boolean }
  | { type: 'suspend'; timeoutMs: number }
  | { type: 'resume'; timeoutMs: number }
  | { type: 'reboot'; timeoutMs: number }
  /** virsh reset: a hard reset of the running guest; its power state does not change. */
  | { type: 'reset'; timeoutMs: number }
  /** virsh managedsave: the guest's state is saved on its host and the domain shut off (saved). */
  | { type: 'managedsave'; timeoutMs: number }
  | { type: 'managedsave-remove' }
  /** virsh save: to `file` on the domain's host (save-restore.ts). */
  | { type: 'save'; file: string; timeoutMs: number }
  /** virsh restore: the definition the image on `hostId` records, started from `file`. */
  | { type: 'restore'; definition: DomainDefinition; hostId: string; claimSeq: number; file: string; paused: boolean; timeoutMs: number }
  | { type: 'set-autostart'; autostart: boolean }
  /** The domain's host agent started: a domain marked autostart that is shut off is started. */
  | { type: 'autostart-boot'; hostId: string; timeoutMs: number }
  /** live/config as virsh: neither given means live on a running domain, config on a shut off one. */
  | { type: 'attach-interface'; iface: InterfaceModel; live: boolean; config: boolean; timeoutMs: number }
  | { type: 'detach-interface'; mac: string; live: boolean; config: boolean; timeoutMs: number }
  /** virsh attach-disk, detach-disk, attach/detach/update-device, change-media (devices.ts). */
  | DiskCommand
  /** virsh send-key, inject-nmi, blockresize: acts on the running guest (guest-actions.ts). */
  | GuestActionCommand
  | { type: 'complete'; taskId: string; observed: ObservedState; interfaces?: RuntimeInterface[]; devices?: RuntimeDevices }
  | { type: 'fail'; taskId: string; error: VirtErrorBody; observed?: ObservedState }
  | { type: 'observe'; state: DomainStateName; reason: StateReason; cause?: string }
  | { type: 'expire'; taskId: string }
  | { type: 'observe-interfaces'; interfaces: RuntimeInterface[] }
  /** The domain's host was declared lost. */
  | { type: 'host-lost'; hostId: string; leaseRevision?: number }
  /**
   * Take the domain off `fromHostId`: stop its guest there (or, with `force` on a lost host, take the
   * operator's word that it is off). `evacuate-move` then moves it to `hostId` once nothing runs.
   */
  | { type: 'evacuate'; fromHostId: string; force: boolean; timeoutMs: number }
  | { type: 'evacuate-move'; fromHostId: string; hostId: string; timeoutMs: number }
  /** Restart a domain whose host was lost on `hostId`, chosen by the scheduler. */
  | { type: 'failover'; fromHostId: string; hostId: string; timeoutMs: number };

export const DEFAULT_TIMEOUT_MS: Record<DomainOp, number> = {
  start: 120_000,
  shutdown: 300_000,
  destroy: 60_000,
  suspend: 60_000,
  resume: 60_000,
  reboot: 300_000,
  'attach-interface': 60_000,
  'detach-interface': 60_000,
  'set-memory': 60_000,
  'set-vcpus': 60_000,
  reset: 60_000,
  managedsave: 300_000,
  'attach-disk': 60_000,
  'detach-disk': 60_000,
  'update-disk': 60_000,
  save: 300_000,
  'snapshot-create': 300_000,
  'snapshot-revert': 300_000,
  'snapshot-delete': 120_000,
  'send-key': 60_000,
  'inject-nmi': 60_000,
  'block-resize': 60_000,
  screenshot: 60_000,
};

const InterfaceScope = {
  /** Change the running guest. */
  live: z.boolean().optional(),
  /** Change the persistent definition. */
  config: z.boolean().optional(),
};

export const AttachInterfaceRequest = DomainOpRequest.extend({ iface: z.unknown(), ...InterfaceScope });
export type AttachInterfaceRequest = z.infer<typeof AttachInterfaceRequest>;

export const DetachInterfaceRequest = DomainOpRequest.extend({
  mac: z.string().regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, 'must be a MAC address like 52:54:00:12:34:56').transform((m) => m.toLowerCase()),
  ...InterfaceScope,
});
export type DetachInterfaceRequest = z.infer<typeof DetachInterfaceRequest>;

export const CommandAccepted = z.object({
  ok: z.literal(true),
  domainId: z.string(),
  name: z.string(),
  version: z.number().int(),
  commandId: z.string(),
  /** True when this command id was already applied: the reply repeats the first outcome. */
  duplicate: z.boolean().optional(),
  /** The host task the command started, when it asked a host to act. */
  taskId: z.string().optional(),
});
export type CommandAccepted = z.infer<typeof CommandAccepted>;
