import { randomUUID } from 'node:crypto';
import { isVirtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { HypervisorDriver } from '../../drivers/hypervisor.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';
import { ownDomains } from './own-domains.ts';

/**
 * What a host does to its guests when it has lost its lease: through the drivers only, since it may
 * have no network at all. By policy it pauses running guests (remembering which, to resume them if
 * nobody acted on the loss) or destroys them.
 */
export class GuestFence {
  /** Guests paused by fencing, by uuid. */
  private readonly paused = new Map<string, HypervisorDriver>();

  constructor(
    private readonly drivers: HypervisorDriver[],
    readonly policy: 'pause' | 'destroy',
    private readonly log: Logger,
  ) {}

  /** Stops every running guest by the policy. */
  async all(): Promise<void> {
    for (const d of this.drivers) {
      for (const g of await d.list().catch(() => [])) await this.guest(d, g.uuid);
    }
    this.log.warn('fenced', { paused: this.paused.size, policy: this.policy });
  }

  async guest(d: HypervisorDriver, uuid: string): Promise<void> {
    try {
      const s = await d.state(uuid);
      if (s.state !== 'running' && s.state !== 'blocked') return;
      if (this.policy === 'pause') {
        await d.suspend(uuid);
        this.paused.set(uuid, d);
      } else {
        await d.destroy(uuid);
      }
    } catch (e) {
      this.log.error('could not fence a guest', { uuid, error: String(e) });
    }
  }

  /** Resumes what fencing paused, one guest at a time while `held()` says the lease is still held. */
  async resume(held: () => boolean): Promise<void> {
    for (const [uuid, d] of this.paused) {
      // Fenced again meanwhile: what is left stays paused.
      if (!held()) return;
      this.paused.delete(uuid);
      await d.resume(uuid).catch((e) => this.log.warn('could not resume a guest paused by fencing', { uuid, error: String(e) }));
    }
    this.log.info('lease held again before the host was declared lost: guests resumed');
  }

  /** The host was declared lost: what it paused stays paused (it may run elsewhere now). */
  forget(): void {
    this.paused.clear();
  }
}

/**
 * Destroys local guests whose domain now belongs to another host. Candidates come from the views
 * (a guest whose domain is not listed as this host's); the command service, reading the log, has
 * the last word: only a report it refuses because another host owns the domain destroys a guest.
 */
export const dropMovedGuests = async (n: Nats, hostId: string, drivers: HypervisorDriver[], log: Logger): Promise<void> => {
  try {
    const domains = await ownDomains(n, hostId);
    const mine = new Set(domains.filter((v) => !v.hostLost).map((v) => v.id));
    for (const d of drivers) {
      for (const g of await d.list()) {
        if (mine.has(g.uuid)) continue;
        try {
          await call(n.nc, subjects.agent(hostId, 'report'), {
            kind: 'observed',
            reportId: `obs:${hostId}:${randomUUID()}`,
            domainId: g.uuid,
            observed: { state: g.state, reason: g.reason },
            cause: 'found on the host',
          });
        } catch (e) {
          if (!(isVirtError(e) && e.code === 'unauthorized')) throw e;
          log.warn('destroying a guest whose domain moved to another host', { uuid: g.uuid, reason: e.message });
          await d.destroy(g.uuid);
        }
      }
    }
  } catch (e) {
    log.warn('could not check the ownership of local guests; will try again', { error: String(e) });
  }
};
