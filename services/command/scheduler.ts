import { isVirtError, virtError } from '../../contracts/errors.ts';
import { DEFAULT_LEASE_TIMINGS, type HostLiveness, type LeaseTimings } from '../../contracts/host/liveness.ts';
import type { KvMirror } from '../../platform/kv-mirror.ts';


/**
 * Picks a host for a new domain: a live one whose driver runs the domain's type, with the fewest
 * domains (counting the ones this replica placed since the last heartbeat).
 */
export class Scheduler {
  private readonly placedSince = new Map<string, number>();
  private readonly hosts: Map<string, HostLiveness>;

  constructor(
    private readonly liveness: KvMirror<HostLiveness>,
    private readonly timings: Pick<LeaseTimings, 'leaseTtlMs'> = DEFAULT_LEASE_TIMINGS,
  ) {
    this.hosts = liveness.entries;
    // A heartbeat carries the host's own count, which includes what this replica placed.
    liveness.onChange((key) => this.placedSince.delete(key));
  }

  /** Hosts no new domain goes to (maintenance), as the log says; set by whoever folds hosts. */
  excluded: (hostId: string) => boolean = () => false;

  /**
   * Since when leases can be judged, and whether the lease bucket is not answering now (set by the
   * host monitor): while nobody could renew, a lease's age says nothing about its host.
   */
  leaseClock: () => { since: number; down: boolean } = () => ({ since: 0, down: false });

  known(hostId: string): HostLiveness | undefined {
    return this.hosts.get(hostId);
  }

  alive(now = Date.now()): HostLiveness[] {
    // A revoked lease belongs to a host declared lost: nothing goes there until it registers again.
    const clock = this.leaseClock();
    return [...this.hosts.values()].filter((h) => !h.revoked && (clock.down || now - Math.max(Date.parse(h.at), clock.since) <= this.timings.leaseTtlMs));
  }

  /**
   * `pick`, for a command someone waits on. A host whose lease is late but that nobody has declared
   * lost is in doubt, not dead: its agent may be moving to another server of the cluster, and its next
   * renewal lands within the TTL. Refusing then would fail a define that waiting serves, so while only
   * such hosts could take the domain, placement waits until one renews (placed there) or is revoked by
   * the host monitor (refused, as before).
   */
  async place(domainType: string, requested?: string): Promise<string> {
    if (!requested) await this.settled((h) => h.capabilities.domainTypes.includes(domainType) && !this.excluded(h.hostId));
    return this.pick(domainType, requested);
  }

  /**
   * The live hosts `fits` accepts, once none of them is in doubt while none is live (see `place`).
   * Bounded: a late lease that nobody revokes stops being waited for after `maxWaitMs`.
   */
  async settled(fits: (h: HostLiveness) => boolean, maxWaitMs = 2 * this.timings.leaseTtlMs): Promise<HostLiveness[]> {
    const until = Date.now() + maxWaitMs;
    for (;;) {
      const now = Date.now();
      const alive = this.alive(now).filter(fits);
      if (alive.length > 0 || now >= until) return alive;
      const live = new Set(alive.map((h) => h.hostId));
      const inDoubt = [...this.hosts.values()].some((h) => !h.revoked && !live.has(h.hostId) && fits(h));
      if (!inDoubt) return alive;
      await this.leaseChangeOr(Math.min(250, until - now));
    }
  }

  /** Resolves at the next lease change or after `ms`, whichever is first. */
  private leaseChangeOr(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop();
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      const stop = this.liveness.onChange(done);
    });
  }

  pick(domainType: string, requested?: string): string {
    if (requested) {
      const h = this.hosts.get(requested);
      if (!h) throw virtError('no-host', `no host with id '${requested}' has registered`);
      if (h.revoked) throw virtError('no-host', `host '${requested}' is lost: its lease expired and it has not registered since`);
      if (!h.capabilities.domainTypes.includes(domainType)) {
        throw virtError('no-supported-driver', `host '${requested}' cannot run domains of type '${domainType}' (it runs ${h.capabilities.domainTypes.join(', ')})`);
      }
      return requested;
    }
    const candidates = this.alive().filter((h) => h.capabilities.domainTypes.includes(domainType) && !this.excluded(h.hostId));
    if (candidates.length === 0) {
      throw virtError('no-host', `no live host out of maintenance can run domains of type '${domainType}'`);
    }
    const load = (h: HostLiveness) => h.activeDomains + (this.placedSince.get(h.hostId) ?? 0);
    const best = candidates.reduce((a, b) => (load(b) < load(a) ? b : a));
    this.placedSince.set(best.hostId, (this.placedSince.get(best.hostId) ?? 0) + 1);
    return best.hostId;
  }
}
