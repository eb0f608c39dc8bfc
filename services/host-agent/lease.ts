import { leaseSubject, renewedLease, type HostLiveness } from '../../contracts/host/liveness.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, type Nats } from '../../platform/nats.ts';

/**
 * The host's lease, renewed by the agent itself: each renewal is one write on the host's own key,
 * conditioned on the revision the previous one produced. Level-triggered: whenever a renewal is
 * refused (the entry is gone, someone else wrote it, the bucket is missing) or cannot be confirmed,
 * the next beat registers again through the command service, which grants a fresh lease.
 */
export class HostLease {
  private held: { lease: HostLiveness; revision: number } | null = null;

  constructor(
    private readonly n: Nats,
    private readonly hostId: string,
    /** Registers the host and answers the lease it was granted and that lease's revision. */
    private readonly register: () => Promise<{ lease: HostLiveness; revision: number }>,
    private readonly log: Logger,
    /** Called after every registration that follows a lost lease (not the first one). */
    private readonly onRegainedAfterLoss: () => Promise<void> = async () => {},
  ) {}

  get revision(): number | null {
    return this.held?.revision ?? null;
  }

  /** Registers now: at start-up, before the first renewal. */
  async acquire(): Promise<void> {
    this.held = await this.register();
  }

  /** Renews the lease, or registers again when it was lost; errors are logged, and the next beat tries again. */
  async beat(activeDomains: number, now = new Date()): Promise<void> {
    if (!this.held) {
      try {
        this.held = await this.register();
        this.log.info('registered again after losing the lease', { hostId: this.hostId, revision: this.held.revision });
        await this.onRegainedAfterLoss();
      } catch (e) {
        this.log.warn('could not register; will try again', { error: String(e) });
      }
      return;
    }
    const lease = renewedLease(this.held.lease, now, activeDomains);
    try {
      const ack = await this.n.js.publish(leaseSubject(this.hostId), encodeJson(lease), {
        expect: { lastSubjectSequence: this.held.revision },
        timeout: 5000,
      });
      this.held = { lease, revision: ack.seq };
    } catch (e) {
      // Whatever happened to the write, the revision it is conditioned on is no longer known to be
      // current: only a registration gives a lease to renew again.
      this.log.warn('lease renewal failed; registering again', { hostId: this.hostId, error: String(e) });
      this.held = null;
      await this.beat(activeDomains, now);
    }
  }
}
