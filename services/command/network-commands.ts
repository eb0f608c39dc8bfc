import type { DefineNetworkRequest, NetworkAutostartRequest, NetworkCommand, NetworkOpRequest } from '../../contracts/network/commands.ts';
import {
  decideNetwork,
  evolveNetwork,
  initialNetworkState,
  networkCommandVersion,
  noNetwork,
  type NetworkAggregate,
} from '../../contracts/network/decider.ts';
import type { NetworkDefinition } from '../../contracts/network/definition.ts';
import type { NetworkEventBody } from '../../contracts/network/events.ts';
import { parseNetworkUpdate, type UpdateNetworkRequest } from '../../contracts/network/update.ts';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { isVirtError, VirtError } from '../../contracts/errors.ts';
import { canonicalIdentity, isUuid, uuidFromSeed } from '../../contracts/ids.ts';
import { formatNetworkXml } from '../../contracts/xml/index.ts';
import type { EventStore } from '../../platform/event-store.ts';
import { NameClaims } from './name-claims.ts';
import { parsePool } from './parse-pool.ts';
import { Repository, type AggregateKind, type Outcome } from './repository.ts';

export const networkKind: AggregateKind<NetworkAggregate, NetworkEventBody> = {
  type: 'network',
  initial: initialNetworkState,
  evolve: evolveNetwork,
  appliedVersion: networkCommandVersion,
};

export interface NetworkAccepted extends Record<string, unknown> {
  networkId: string;
  name: string;
  version: number;
  commandId: string;
  duplicate?: boolean;
}

/** The command side of the network aggregate: resolve references, validate definitions, decide, append. */
export class NetworkCommands {
  private readonly repo: Repository<NetworkAggregate, NetworkEventBody>;
  private readonly names: NameClaims;
  /** Name look-ups are remembered; each use is checked against the network's own state. */

  constructor(store: EventStore) {
    this.repo = new Repository(store, networkKind);
    this.names = new NameClaims(store, 'network');
    parsePool().warm();
  }

  /** Reads a network fresh from the log, for the name claim protocol. */
  private readonly load = (uuid: string) => this.repo.load(uuid);

  /**
   * Every definition goes through the XML layer, JSON ones too: they get libvirt's checks (addresses,
   * DHCP ranges inside their subnet, forward modes) and the canonical document net-dumpxml returns.
   */
  private async definitionFrom(req: DefineNetworkRequest, meta: CommandMeta): Promise<NetworkDefinition> {
    // Without a uuid, derive one from the command id: a retried define then names the same network
    // (and a generated bridge MAC comes out the same too). XML is parsed off the request loop.
    if (req.xml !== undefined) return canonicalIdentity(await parsePool().parse('network', req.xml, meta.commandId));
    const raw = req.definition;
    const withUuid = raw && typeof raw === 'object' && !Array.isArray(raw) && !('uuid' in raw) ? { ...raw, uuid: uuidFromSeed(meta.commandId) } : raw;
    const parsed = { data: await parsePool().validate('network', withUuid) };
    // The stored document is derived, never taken from the caller; 'isolated' is how the model
    // spells a network without <forward>.
    const { xml: _ignored, ...model } = parsed.data;
    const plain = model.forward?.mode === 'isolated' ? { ...model, forward: undefined } : model;
    try {
      return canonicalIdentity(await parsePool().parse('network', formatNetworkXml(plain), meta.commandId));
    } catch (e) {
      if (isVirtError(e) && e.code === 'xml-error') throw new VirtError('invalid-arg', `invalid argument: ${e.message}`, e.details);
      throw e;
    }
  }

  define = (req: DefineNetworkRequest, meta: CommandMeta) => this.withNewName(req, meta, (definition, claimSeq) => ({ type: 'define', definition, claimSeq }));

  /** `virsh net-create`: define (transiently, for a new network) and start in one command. */
  create = (req: DefineNetworkRequest, meta: CommandMeta) => this.withNewName(req, meta, (definition, claimSeq) => ({ type: 'create', definition, claimSeq }));

  /** A command that names a network from a document: its name is claimed before the command is decided. */
  private async withNewName(req: DefineNetworkRequest, meta: CommandMeta, command: (def: NetworkDefinition, claimSeq: number) => NetworkCommand): Promise<NetworkAccepted> {
    const def = await this.definitionFrom(req, meta);
    // A command refused for what it asks (a rename of an existing uuid) is refused before a claim on
    // the new name is recorded: defines are rare enough for the extra read.
    decideNetwork(command(def, Number.MAX_SAFE_INTEGER), await this.repo.load(def.uuid), meta.now);
    const claimSeq = await this.names.claim(def.name, def.uuid, meta, this.load);
    const out = await this.repo.execute(def.uuid, meta, (s) => decideNetwork(command(def, claimSeq), s, meta.now));
    this.names.remember(def.name, def.uuid);
    return this.accepted(out, meta);
  }

  undefine = (req: NetworkOpRequest, meta: CommandMeta) => this.run(req.network, meta, { type: 'undefine' });
  start = (req: NetworkOpRequest, meta: CommandMeta) => this.run(req.network, meta, { type: 'start' });
  destroy = (req: NetworkOpRequest, meta: CommandMeta) => this.run(req.network, meta, { type: 'destroy' });
  autostart = (req: NetworkAutostartRequest, meta: CommandMeta) => this.run(req.network, meta, { type: 'autostart', enable: req.enable });
  /** virsh net-update: the element is read before the network is looked at; the decider applies it. */
  update = (req: UpdateNetworkRequest, meta: CommandMeta) =>
    this.run(req.network, meta, { type: 'update', update: parseNetworkUpdate(req, req.network), config: req.config ?? false, live: req.live ?? false });

  private async resolve(ref: string): Promise<{ id: string; byName: boolean; remembered: boolean }> {
    if (isUuid(ref)) return { id: ref.toLowerCase(), byName: false, remembered: false };
    const found = await this.names.uuidOf(ref);
    if (!found) throw noNetwork('name', ref);
    return { id: found.uuid, byName: true, remembered: found.remembered };
  }

  /** Applies a command to a network the caller names by uuid or name. */
  async run(ref: string, meta: CommandMeta, cmd: NetworkCommand): Promise<NetworkAccepted> {
    for (let attempt = 0; ; attempt++) {
      const { id, byName, remembered } = await this.resolve(ref);
      try {
        const out = await this.repo.execute(id, meta, (s) => {
          // A name may have moved to another network since it was looked up.
          if (byName && (!s.exists || s.name !== ref)) throw noNetwork('name', ref);
          return decideNetwork(cmd, s, meta.now);
        });
        return this.accepted(out, meta);
      } catch (e) {
        if (!(isVirtError(e) && e.code === 'no-network' && byName)) throw e;
        // Only an answer from memory can be stale; a fresh look-up's answer is final.
        if (attempt > 0 || !remembered) throw e;
        this.names.forget(ref);
      }
    }
  }

  private accepted(out: Outcome<NetworkAggregate>, meta: CommandMeta): NetworkAccepted {
    return {
      networkId: out.state.id,
      name: out.state.name,
      version: out.version,
      commandId: meta.commandId,
      ...(out.duplicate ? { duplicate: true } : {}),
    };
  }
}
