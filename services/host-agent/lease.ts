import { performance } from 'node:perf_hooks';
import { BUCKETS } from '../../contracts/subjects.ts';
import { leaseSubject, renewedLease, type HostLiveness } from '../../contracts/host/liveness.ts';
import { isWrongLastSequence, streamAnswers } from '../../platform/js-retry.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, isNoResponders, type Nats } from '../../platform/nats.ts';

/** What a registration grants: the lease, its revision, and whether the host had been declared lost. */
export interface Grant {
  lease: HostLiveness;
  revision: number;
  returned?: boolean;
}

/**
 * The host's lease, renewed by the agent itself: each renewal is one write on the host's own key,
 * conditioned on the revision the previous one produced. A renewal the bucket did not confirm is sent
 * again on the next beat on the same revision; one it refused (the entry is gone, someone else wrote
 * it, the control plane revoked it) makes the next beat register again through the command service.
 *
 * The lease is held until `fenceMs` after the *start* of the last confirmed write (by this process's
 * monotonic clock): the server stored that write no earlier, and the control plane counts its TTL
 * from when the server stored it, so the agent always lets go first.
 */
export class HostLease {
  private held: { lease: HostLiveness; revision: number } | null = null;
  private validUntil = Number.NEGATIVE_INFINITY;
  /** Renewals sent since the last confirmed one whose outcome is unknown: any may be the entry's newest revision. */
  private unconfirmed: Array<{ lease: HostLiveness; sent: number }> = [];

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
    this.confirmed(grant.lease, grant.revision, sent);
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
        // A renewal confirmed after the lease ran out is no use: give up in time to try again.
        timeout: Math.max(1000, Math.min(5000, this.fenceMs / 2)),
      });
      this.confirmed(lease, ack.seq, sent);
    } catch (e) {
      if (!isWrongLastSequence(e) && !(await this.bucketGone(e))) {
        // The bucket did not answer (an election, a server leaving): the write may or may not have
        // landed. The next beat renews again on the same revision, which is refused if anyone wrote
        // since; registering now would wait on the command service, which waits on the same
        // election, and let the lease run out for nothing. Any of the few most recent unconfirmed
        // renewals may be what the entry holds now.
        this.unconfirmed = [...this.unconfirmed, { lease, sent }].slice(-16);
        this.log.warn('lease renewal not confirmed; renewing again', { hostId: this.hostId, error: String(e) });
        return;
      }
      // Written since the revision this one was conditioned on: by one of this host's own renewals
      // whose confirmation was lost, or by someone else (a revocation, a newer registration).
      const adopted = await this.adoptOwnWrite().catch(() => false);
      if (adopted) {
        await this.beat(activeDomains, now);
        return;
      }
      this.log.warn('lease renewal refused; registering again', { hostId: this.hostId, error: String(e) });
      this.held = null;
      this.unconfirmed = [];
      await this.beat(activeDomains, now);
    }
  }

  /**
   * The bucket itself is gone (removed, a store wiped): only a registration makes the lease anew. A
   * missing stream and a stream without a leader both answer a publish with no responders, so this
   * asks the server, briefly: a beat must not wait on an election to learn there is one.
   */
  private async bucketGone(e: unknown): Promise<boolean> {
    return isNoResponders(e) && (await streamAnswers(this.n.nc, `KV_${BUCKETS.hostLiveness}`, 1000)) === 'missing';
  }

  private confirmed(lease: HostLiveness, revision: number, sent: number): void {
    this.held = { lease, revision };
    this.unconfirmed = [];
    this.validUntil = sent + this.fenceMs;
  }

  /**
   * Takes the entry's revision when the newest entry is the renewal this host sent and never saw
   * confirmed. Its validity counts from when that renewal was sent, which is no later than the server
   * stored it: the agent still lets go first.
   */
  private async adoptOwnWrite(): Promise<boolean> {
    if (this.unconfirmed.length === 0) return false;
    const m = await this.n.jsm.direct.getMessage(`KV_${BUCKETS.hostLiveness}`, { last_by_subj: leaseSubject(this.hostId) });
    if (!m) return false;
    const entry = m.json<HostLiveness>();
    const mine = this.unconfirmed.find((u) => !entry.revoked && entry.instanceId === u.lease.instanceId && entry.at === u.lease.at);
    if (!mine) return false;
    this.confirmed(entry, m.seq, mine.sent);
    this.log.info('lease renewal found stored after all', { hostId: this.hostId, revision: m.seq });
    return true;
  }
}
