import { z } from 'zod';
import { CommandHeader, JsonDefinition } from '../domain/commands.ts';
import { ObjectRef } from '../ids.ts';
import type { NetworkDefinition } from './definition.ts';
import type { NetworkUpdate } from './update.ts';

/** A network is addressed by uuid or by name, as virsh accepts either. */
export const NetworkRef = ObjectRef;

export const DefineNetworkRequest = CommandHeader.extend({
  /** The model as JSON, or libvirt network XML; exactly one. */
  definition: JsonDefinition.optional(),
  xml: z.string().optional(),
}).refine((r) => (r.definition === undefined) !== (r.xml === undefined), {
  message: 'give exactly one of "definition" or "xml"',
});
export type DefineNetworkRequest = z.infer<typeof DefineNetworkRequest>;

export const NetworkOpRequest = CommandHeader.extend({ network: NetworkRef });
export type NetworkOpRequest = z.infer<typeof NetworkOpRequest>;

export const NetworkAutostartRequest = NetworkOpRequest.extend({
  /** virsh net-autostart enables unless --disable. */
  enable: z.boolean().default(true),
});
export type NetworkAutostartRequest = z.infer<typeof NetworkAutostartRequest>;

/** What the decider sees: names already resolved, definitions parsed and validated. */
export type NetworkCommand =
  /** `claimSeq`: the name claim the define relies on (contracts/name-claim.ts). */
  | { type: 'define'; definition: NetworkDefinition; claimSeq: number }
  | { type: 'create'; definition: NetworkDefinition; claimSeq: number }
  | { type: 'undefine' }
  | { type: 'start' }
  | { type: 'destroy' }
  | { type: 'autostart'; enable: boolean }
  /** virsh net-update (contracts/network/update.ts); `config`/`live` as given, neither meaning --current. */
  | { type: 'update'; update: NetworkUpdate; config: boolean; live: boolean };

export const NetworkCommandAccepted = z.object({
  ok: z.literal(true),
  networkId: z.string(),
  name: z.string(),
  version: z.number().int(),
  commandId: z.string(),
  /** True when this command id was already applied: the reply repeats the first outcome. */
  duplicate: z.boolean().optional(),
});
export type NetworkCommandAccepted = z.infer<typeof NetworkCommandAccepted>;
