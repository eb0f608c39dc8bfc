import type { NetworkDefinition } from './definition.ts';
import type { NetworkCommand } from './commands.ts';
import type { NetworkEventBody } from './events.ts';
import { virtError } from '../errors.ts';
import type { Envelope } from '../envelope.ts';
import { applyRevocation, requireLiveClaim, type ClaimFence } from '../name-claim.ts';
import { applyNetworkUpdate } from './update.ts';
import { rememberCommand, versionOfCommand } from '../recent-commands.ts';

/**
 * The network decider: pure, with the checks and messages of libvirt's test driver (testNetwork*),
 * except where noted. The command service and the projector share `evolve`.
 */

export interface NetworkAggregate extends ClaimFence {
  /** False before the first definition and after removal. */
  exists: boolean;
  /** True once a removal was recorded. A later define of the same uuid makes a new network, as in libvirt. */
  removed: boolean;
  id: string;
  name: string;
  /** The live definition while active; the persistent one otherwise. */
  definition: NetworkDefinition | null;
  /** A definition recorded while the network was active: it takes effect when the network stops. */
  nextDefinition: NetworkDefinition | null;
  persistent: boolean;
  active: boolean;
  autostart: boolean;
  version: number;
  /** Recent command ids and the version they produced: a retry after the dedupe window is recognised. */
  recentCommands: Array<[string, number]>;
}

export const initialNetworkState = (id: string): NetworkAggregate => ({
  exists: false,
  removed: false,
  id,
  name: '',
  definition: null,
  nextDefinition: null,
  persistent: false,
  active: false,
  autostart: false,
  version: 0,
  recentCommands: [],
  revokedClaimsUpTo: 0,
});

export const networkCommandVersion = (s: NetworkAggregate, commandId: string): number | undefined => versionOfCommand(s, commandId);

export const noNetwork = (by: 'uuid' | 'name', ref: string) =>
  virtError('no-network', `Network not found: no network with matching ${by} '${ref}'`);

const requireNetwork = (s: NetworkAggregate) => {
  if (!s.exists) throw noNetwork('uuid', s.id);
};

export const decideNetwork = (cmd: NetworkCommand, s: NetworkAggregate, _now: Date): NetworkEventBody[] => {
  switch (cmd.type) {
    case 'define':
      // virNetworkObjListAddLocked: same uuid under another name is refused; a name held by another
      // uuid is refused by the name claim before the decider runs.
      if (s.exists && s.name !== cmd.definition.name) {
        throw virtError('operation-failed', `network '${s.name}' is already defined with uuid ${s.id}`);
      }
      requireLiveClaim(s, cmd.claimSeq, 'network', cmd.definition.name);
      return [{ type: 'NetworkDefined', data: { definition: cmd.definition } }];
    case 'create':
      // testNetworkCreateXML: a uuid already held under another name is refused, an active network
      // cannot be created again; an inactive persistent one starts with the new definition.
      if (s.exists && s.name !== cmd.definition.name) {
        throw virtError('operation-failed', `network '${s.name}' is already defined with uuid ${s.id}`);
      }
      if (s.exists && s.active) throw virtError('operation-invalid', `network '${s.name}' is already active`);
      requireLiveClaim(s, cmd.claimSeq, 'network', cmd.definition.name);
      return [{ type: 'NetworkCreated', data: { definition: cmd.definition } }];
    case 'undefine':
      requireNetwork(s);
      if (s.active) throw virtError('operation-invalid', `Network '${s.name}' is still running`);
      return [{ type: 'NetworkUndefined', data: {} }];
    case 'start':
      requireNetwork(s);
      if (s.active) throw virtError('operation-invalid', `Network '${s.name}' is already running`);
      return [{ type: 'NetworkStarted', data: {} }];
    case 'destroy':
      requireNetwork(s);
      // libvirt's test driver has no active check here: destroying an inactive network succeeds and
      // reports STOPPED. Hosts tear down only what they set up, so a network never started loses nothing.
      return [{ type: 'NetworkDestroyed', data: {} }];
    case 'autostart':
      requireNetwork(s);
      // A flag only, as in libvirt; setting it to what it already is records nothing.
      return s.autostart === cmd.enable ? [] : [{ type: 'NetworkAutostartSet', data: { autostart: cmd.enable } }];
    case 'update':
      requireNetwork(s);
      return decideUpdate(cmd, s);
  }
};

export const evolveNetwork = (s: NetworkAggregate, e: Envelope<NetworkEventBody>): NetworkAggregate => {
  const recentCommands = rememberCommand(s.recentCommands, e.commandId, e.version);
  const base = { ...s, version: e.version, recentCommands };
  switch (e.type) {
    case 'NameClaimRevoked':
      // A fence written by another define, not a command of this network's: no retry to recognise.
      return applyRevocation({ ...s, version: e.version }, e);
    case 'NetworkDefined': {
      const live = s.exists && s.active && s.definition !== null;
      return {
        ...base,
        exists: true,
        removed: false,
        name: e.data.definition.name,
        definition: live ? s.definition : e.data.definition,
        nextDefinition: live ? e.data.definition : null,
        persistent: true,
        ...(s.exists ? {} : { active: false, autostart: false }),
      };
    }
    case 'NetworkUndefined':
      return { ...base, exists: false, removed: true, persistent: false, active: false, autostart: false, nextDefinition: null };
    case 'NetworkCreated': {
      // The persistent definition waits as the next one, to be in force again once this one stops.
      const persistent = s.exists && s.persistent;
      return {
        ...base,
        exists: true,
        removed: false,
        name: e.data.definition.name,
        definition: e.data.definition,
        nextDefinition: persistent ? s.definition : null,
        persistent,
        active: true,
        autostart: persistent ? s.autostart : false,
      };
    }
    case 'NetworkStarted':
      return { ...base, active: true };
    case 'NetworkDestroyed': {
      // virNetworkObjUnsetDefTransient: the definition recorded while active becomes the one in force.
      const next = { ...base, active: false, definition: s.nextDefinition ?? s.definition, nextDefinition: null };
      return next.persistent ? next : { ...next, exists: false, removed: true };
    }
    case 'NetworkAutostartSet':
      return { ...base, autostart: e.data.autostart };
    case 'NetworkUpdated':
      return s.active ? { ...base, nextDefinition: e.data.definition } : { ...base, definition: e.data.definition };
    case 'NetworkLiveUpdated':
      // libvirt keeps a running persistent network's config apart from its live definition (newDef):
      // the config in force until now waits as the next definition, so --live alone leaves it as it was.
      if (!s.active) return base;
      return { ...base, definition: e.data.definition, nextDefinition: s.nextDefinition ?? (s.persistent ? s.definition : null) };
    default:
      // A type this code does not know (written by a newer version, or by hand): the log is still
      // the truth, so the aggregate moves past it unchanged rather than stopping every reader on it.
      return base;
  }
};

/**
 * networkUpdate's flags (virNetworkObjUpdate): --current is the live network when it runs, else its
 * config; --live needs it running, --config needs it persistent; --live --config changes both, each
 * from its own definition. Either all of it is recorded or nothing: a refusal of either half refuses
 * the whole update, as libvirt updates copies and swaps them in only once both succeed.
 */
const decideUpdate = (cmd: Extract<NetworkCommand, { type: 'update' }>, s: NetworkAggregate): NetworkEventBody[] => {
  const live = cmd.live || (!cmd.config && s.active);
  const config = cmd.config || (!cmd.live && !s.active);
  if (live && !s.active) throw virtError('operation-invalid', 'network is not running');
  if (config && !s.persistent) throw virtError('operation-invalid', 'cannot change persistent config of a transient network');
  const out: NetworkEventBody[] = [];
  if (live) out.push({ type: 'NetworkLiveUpdated', data: { definition: applyNetworkUpdate(s.definition!, cmd.update) } });
  if (config) {
    const persistent = s.active ? (s.nextDefinition ?? s.definition) : s.definition;
    out.push({ type: 'NetworkUpdated', data: { definition: applyNetworkUpdate(persistent!, cmd.update) } });
  }
  return out;
};
