import type { KV } from '@nats-io/kv';
import type { Subscription } from '@nats-io/transport-node';
import { DEFAULT_TIMEOUT_MS } from '../../contracts/domain/commands.ts';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { decideMaintenance, decideReadmit, decideRemove, requireNotRemoved, type HostAggregate } from '../../contracts/host/decider.ts';
import { HostEvacuateRequest, HostMaintenanceRequest, HostRefRequest, type EvacuationItem, type HostEventBody } from '../../contracts/host/events.ts';
import type { Logger } from '../../platform/log.ts';
import type { CommandApi } from './command-api.ts';
import type { DomainCommands } from './domain-commands.ts';
import type { HostMonitor } from './host-monitor.ts';
import type { Repository } from './repository.ts';

/**
 * The operator's host verbs: maintenance, evacuate, remove, and letting a removed host back in once
 * it is enrolled again. Each is a decision against the host's (or each domain's) newest state, so
 * repeating one, or two operators running it at once, records everything once.
 */
export class HostCommands {
  constructor(
    private readonly hosts: Repository<HostAggregate, HostEventBody>,
    private readonly commands: DomainCommands,
    private readonly monitor: HostMonitor,
    private readonly leaseKv: KV,
    private readonly log: Logger,
  ) {}

  serve(api: CommandApi): Subscription[] {
    return [
      ...api.serve('host', 'maintenance', HostMaintenanceRequest, (r, meta) => this.maintenance(r.host, r.on, meta)),
      ...api.serve('host', 'evacuate', HostEvacuateRequest, (r, meta) => this.evacuate(r.host, r.force ?? false, meta)),
      ...api.serve('host', 'remove', HostRefRequest, (r, meta) => this.remove(r.host, meta)),
      ...api.serve('host', 'readmit', HostRefRequest, (r, meta) => this.readmit(r.host, meta)),
    ];
  }

  async maintenance(host: string, on: boolean, meta: CommandMeta) {
    const out = await this.hosts.execute(host, meta, (s) => decideMaintenance(on, s));
    // Answered once this replica places by it; other replicas follow the log within moments.
    await this.monitor.reached(host, out.version);
    return { hostId: host, maintenance: out.state.maintenance ?? false, version: out.version };
  }

  /**
   * Maintenance first (nothing new lands on the host), then each of its domains: its evacuation is
   * recorded and its guest stopped there; the host monitor moves it once the host reports it stopped,
   * and starts it elsewhere if it ran. A domain that cannot go is answered with why.
   */
  async evacuate(host: string, force: boolean, meta: CommandMeta) {
    const m = await this.hosts.execute(host, { ...meta, commandId: `${meta.commandId}:maintenance` }, (s) => {
      requireNotRemoved(s);
      return s.maintenance ? [] : decideMaintenance(true, s);
    });
    await this.monitor.reached(host, m.version);
    const items: EvacuationItem[] = [];
    for (const d of this.monitor.domainsOn(host)) {
      const item = { domainId: d.id, name: d.name, hostId: host };
      try {
        const out = await this.commands.run(d.id, { ...meta, commandId: `${meta.commandId}:${d.id}` }, { type: 'evacuate', fromHostId: host, force, timeoutMs: DEFAULT_TIMEOUT_MS.destroy });
        // Already moved by another evacuation: nothing to record, and nothing left to do here.
        items.push({ ...item, status: out.version === d.version && !d.evacuating ? 'moved' : 'moving' });
      } catch (e) {
        items.push({ ...item, status: 'refused', error: isVirtError(e) ? e.message : String(e) });
      }
    }
    if (items.length > 0) this.log.info('host evacuation', { hostId: host, moving: items.filter((i) => i.status === 'moving').length, refused: items.filter((i) => i.status === 'refused').length });
    return { hostId: host, maintenance: true, domains: items };
  }

  /**
   * Only a host with no domains goes (evacuate it first). Its lease is deleted, so an agent still
   * running there finds its renewals refused, registers, and is refused as removed: it holds no lease,
   * takes no task, and owns no domain whose reports could be recorded.
   */
  async remove(host: string, meta: CommandMeta) {
    const out = await this.hosts.execute(host, meta, (s) => decideRemove(this.monitor.domainsOn(host).length, s));
    await this.leaseKv.delete(host).catch((e) => this.log.warn('could not delete a removed host lease', { hostId: host, error: String(e) }));
    await this.monitor.reached(host, out.version);
    if (out.events.length > 0) this.log.warn('host removed', { hostId: host });
    return { hostId: host, removed: true, version: out.version };
  }

  async readmit(host: string, meta: CommandMeta) {
    const out = await this.hosts.execute(host, meta, (s) => decideReadmit(s));
    return { hostId: host, readmitted: out.events.length > 0, version: out.version };
  }
}
