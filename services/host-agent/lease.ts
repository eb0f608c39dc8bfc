import { performance } from 'node:perf_hooks';
import { leaseSubject, renewedLease, type HostLiveness } from '../../contracts/host/liveness.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, type Nats } from '../../platform/nats.ts';

/** What a registration grants: the lease, its revision, and whether the host had been declared lost. */
export interface Grant {
  lease: HostLiveness;
  revision: number;
  returned?: boolean;
}

/**
 * The host's lease, renewed by the agent itself: each renewal is one write on the host's own key,
 * conditioned on the revision the previous one produced. Level-triggered: whenever a renewal is
 * refused (the entry is gone, someone else wrote it, the bucket is missing, the control plane revoked
 * it) or cannot be confirmed, the next beat registers again through the command service.
 *
 * The lease is held until `fenceMs` after the *start* of the last confirmed write (by this process's
 * monotonic clock): the server stored that write no earlier, and the control plane counts its TTL
 * from when the server stored it, so the agent always lets go first.
 */
export class HostLease {
  private held: { lease: HostLiveness; revision: number } | null = null;
  private validUntil = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly n: Nats,
    private readonly hostId: string,
    /** Registers the host and answers the lease it was granted and that lease's revision. */
    private readonly register: () => Promise<Grant>,
    private readonly log: Logger,
    /** Called after every registration that follows a lost lease (not the first one). */
    private readonly onRegainedAfterLoss: (grant: Grant) => Promise<void> = async () => {},
    private readonly fenceMs = Number.POSITIVE_INFINITY,
  ) {}

  get revision(): number | null {
    return this.held?.revision ?? null;
  }

  /** Whether the lease is still held: false from `fenceMs` after the last confirmed write. */
  get valid(): boolean {
    return performance.now() < this.validUntil;
  }

  /** Registers now: at start-up, before the first renewal. */
  async acquire(): Promise<Grant> {
    const sent = performance.now();
    const grant = await this.register();
    this.held = grant;
    this.validUntil = sent + this.fenceMs;
    return grant;
  }

  /** Renews the lease, or registers again when it was lost; errors are logged, and the next beat tries again. */
  async beat(activeDomains: number, now = new Date()): Promise<void> {
    if (!this.held) {
      try {
        const grant = await this.acquire();
        this.log.info('registered again after losing the lease', { hostId: this.hostId, revision: grant.revision, returned: grant.returned ?? false });
        await this.onRegainedAfterLoss(grant);
      } catch (e) {
        this.log.warn('could not register; will try again', { error: String(e) });
      }
      return;
    }
    const lease = renewedLease(this.held.lease, now, activeDomains);
    const sent = performance.now();
    try {
      const ack = await this.n.js.publish(leaseSubject(this.hostId), encodeJson(lease), {
        expect: { lastSubjectSequence: this.held.revision },
        // A renewal confirmed after the lease ran out is no use: give up in time to register again.
        timeout: Math.max(1000, Math.min(5000, this.fenceMs / 2)),
      });
      this.held = { lease, revision: ack.seq };
      this.validUntil = sent + this.fenceMs;
    } catch (e) {
      // Whatever happened to the write, the revision it is conditioned on is no longer known to be
      // current: only a registration gives a lease to renew again.
      this.log.warn('lease renewal failed; registering again', { hostId: this.hostId, error: String(e) });
      this.held = null;
      await this.beat(activeDomains, now);
    }
  }
}
