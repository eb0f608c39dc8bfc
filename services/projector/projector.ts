import { randomUUID } from 'node:crypto';
import { DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { DomainAggregate } from '../../contracts/domain/decider.ts';
import type { HostAggregate } from '../../contracts/host/decider.ts';
import type { NetworkAggregate } from '../../contracts/network/decider.ts';
import type { PoolAggregate } from '../../contracts/storage/decider.ts';
import { BUCKETS, STREAMS, subjects } from '../../contracts/subjects.ts';
import { toRecordedCommit } from '../../platform/event-store.ts';
import { withJsRetry } from '../../platform/js-retry.ts';
import type { Logger } from '../../platform/log.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';
import { VersionedKvWriter, type Versioned } from '../../platform/ordered-kv-writer.ts';
import { LifecyclePublisher } from './lifecycle-publisher.ts';
import { ProjectionViews } from './projection-views.ts';
import { domainProjection, hostProjection, networkProjection, poolProjection, secretProjection } from './projections.ts';
import type { SecretAggregate } from '../../contracts/secret/decider.ts';

/** The key under which the projectors keep how far their views have stored the log. */
export const POSITION_KEY = 'projector';
const LEGACY_CONSUMER = 'projector';
/** How long the log reader may deliver nothing while the log holds commits it has not, before it is replaced. */
const STALL_MS = 10_000;
/**
 * The stored position is written at most this often: it only says where a restart resumes, and
 * resuming a little earlier folds again what the views already hold, which changes nothing.
 */
const POSITION_EVERY_MS = 100;

export interface ProjectorOptions {
  /** Throw the views away and fold the whole log again; lifecycle events already sent are not sent again. */
  rebuild?: boolean;
}

/**
 * Applies every commit of the log exactly once, in log order, to the projections, and keeps what they
 * fold in memory (queries), in KV (restarts) and on the LIFECYCLE stream (subscribers).
 *
 * Each replica reads the log with its own ordered consumer from the stored position; nothing is
 * redelivered out of order. For each commit: memory first (queries wake on it), then its lifecycle
 * messages (exactly once, see LifecyclePublisher), then its view (revision-checked, never backwards),
 * and the position moves only past commits whose views are stored. So a stored view has had every
 * lifecycle message of its commits published, and the views reflect at least the stored position: a
 * replica that crashes anywhere and resumes from the position converges on what a rebuild gives.
 * Any number of replicas may run; all write, and none can undo another's work.
 */
export class Projector {
  domains!: ProjectionViews<DomainAggregate>;
  hosts!: ProjectionViews<HostAggregate>;
  networks!: ProjectionViews<NetworkAggregate>;
  pools!: ProjectionViews<PoolAggregate>;
  secrets!: ProjectionViews<SecretAggregate>;
  /** Names this replica in list replies, so an operator (or a test) can tell which one answered. */
  readonly replica = randomUUID();
  /** Stream sequence of the last commit folded into memory. */
  lastSeq = 0;
  /** Every commit up to here has its views stored. */
  storedSeq = 0;
  private all: Array<ProjectionViews<{ version: number }>> = [];
  private readonly waiters = new Set<() => void>();
  private messages: ConsumerMessages | null = null;
  private done: Promise<void> = Promise.resolve();
  private publisher!: LifecyclePublisher;
  private position!: VersionedKvWriter<Versioned>;
  /** Commits folded but not yet stored, oldest first. */
  private inflight: Array<{ seq: number; stored: boolean }> = [];
  private head = 0;
  private stopped = false;
  private replacing = false;
  private lastDelivery = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private positionTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly n: Nats,
    private readonly log: Logger,
    private readonly opts: ProjectorOptions = {},
  ) {}

  async start(): Promise<void> {
    const retry = (key: string, e: unknown) => this.log.warn('view write failed; retrying', { key, error: String(e) });
    this.domains = await ProjectionViews.open(this.n, domainProjection, retry);
    this.hosts = await ProjectionViews.open(this.n, hostProjection, retry);
    this.networks = await ProjectionViews.open(this.n, networkProjection, retry);
    this.pools = await ProjectionViews.open(this.n, poolProjection, retry);
    this.secrets = await ProjectionViews.open(this.n, secretProjection, retry);
    this.all = [this.domains, this.hosts, this.networks, this.pools, this.secrets] as Array<ProjectionViews<{ version: number }>>;
    const positionKv = await this.n.kvm.open(BUCKETS.projectorPosition);
    if (this.opts.rebuild) {
      await positionKv.purge(POSITION_KEY);
      for (const v of this.all) await v.reset();
    }
    this.position = new VersionedKvWriter<Versioned>(positionKv, (_k, e) => this.log.warn('position write failed; retrying', { error: String(e) }));
    // The position before the views: views only move forward, so they reflect at least what it says.
    const stored = await positionKv.get(POSITION_KEY);
    const position = stored?.operation === 'PUT' ? (decodeJson(stored.value) as Versioned).version : 0;
    this.position.remember(POSITION_KEY, stored?.revision ?? 0, stored?.operation === 'PUT' ? position : -1);
    for (const v of this.all) await v.load(this.n);
    this.lastSeq = position;
    this.storedSeq = position;
    this.publisher = new LifecyclePublisher(this.n, this.log, () => this.storedSeq);
    this.publisher.start();

    // Releases before this one shared a durable consumer, whose redeliveries could overtake newer commits.
    await this.n.jsm.consumers.delete(STREAMS.events, LEGACY_CONSUMER).catch(() => undefined);
    await this.follow();
    this.watchdog = setInterval(() => void this.checkProgress(), STALL_MS / 2);
    this.watchdog.unref();
  }

  /** Reads the log from just after the last commit folded, with a new ordered consumer. */
  private async follow(): Promise<void> {
    const consumer = await withJsRetry(
      'reader of the log',
      () =>
        this.n.js.consumers.get(STREAMS.events, {
          filter_subjects: subjects.allEvents,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: this.lastSeq + 1,
        }),
      { nc: this.n.nc },
    );
    const messages = await consumer.consume({ max_messages: 1024 });
    this.messages = messages;
    this.lastDelivery = Date.now();
    this.done = (async () => {
      for await (const m of messages) {
        // A reader given up on may still deliver what the one after it delivers again.
        if (this.messages !== messages || m.seq <= this.lastSeq) continue;
        this.lastDelivery = Date.now();
        this.handle(m);
      }
    })().catch((e) => this.log.warn('log reader ended', { error: String(e) }));
  }

  /**
   * An ordered consumer lost with a server is not always replaced by the client (an offline replica
   * answers its checks, a recreation given up on ends the iterator without a word): a reader that
   * has delivered nothing for a while although the log holds commits past what it folded is replaced
   * by one starting after the last commit folded, so the views never stop short of the log.
   */
  private async checkProgress(): Promise<void> {
    if (this.stopped || this.replacing || Date.now() - this.lastDelivery < STALL_MS) return;
    this.replacing = true;
    try {
      const last = (await this.n.jsm.streams.info(STREAMS.events).catch(() => null))?.state.last_seq;
      if (last === undefined || last <= this.lastSeq || this.stopped) return;
      this.log.warn('log reader stalled; reading on with a new one', { seq: this.lastSeq, last });
      const old = this.messages;
      this.messages = null;
      void old?.close().catch(() => undefined);
      await this.follow();
    } catch (e) {
      this.log.warn('log reader not replaced yet', { error: String(e) });
    } finally {
      this.replacing = false;
    }
  }

  /** Catches up with the log as it is now; for start-up, so a replica answers only once it is current. */
  async caughtUp(timeoutMs = 60_000): Promise<boolean> {
    const last = (await this.n.jsm.streams.info(STREAMS.events)).state.last_seq;
    return this.waitFor(() => this.lastSeq >= last, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    await this.messages?.close();
    await this.done;
    // Give stores in flight a moment to land; whatever does not is repaired from the log on restart.
    let timer: NodeJS.Timeout | undefined;
    const settled = Promise.all(this.all.map((v) => v.flush())).then(() => {
      this.writePosition();
      return this.position.flush();
    });
    await Promise.race([settled, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
    clearTimeout(timer);
    await this.publisher.stop();
    for (const v of this.all) v.stop();
    this.position.stop();
  }

  private handle(m: JsMsg): void {
    const seq = m.seq;
    let work: Promise<void> = Promise.resolve();
    try {
      const commit = toRecordedCommit({ seq, subject: m.subject, data: m.data });
      const views = this.all.find((v) => v.handles(m.subject));
      const applied = views?.apply(commit);
      if (views && applied) {
        work = views.projection.lifecycle
          ? this.publisher.enqueue(seq, applied.lifecycle).then(() => views.store(applied))
          : views.store(applied);
      }
    } catch (e) {
      // A rebuild meets the same commit and skips it the same way.
      this.log.error('commit cannot be folded; skipped', { seq, subject: m.subject, error: String(e) });
    }
    this.lastSeq = seq;
    this.notify();
    const entry = { seq, stored: false };
    this.inflight.push(entry);
    work.then(
      () => {
        entry.stored = true;
        this.advance();
      },
      () => undefined,
    );
  }

  /** Moves the stored position past every commit whose views are stored, in order. */
  private advance(): void {
    let moved = false;
    while (this.head < this.inflight.length && this.inflight[this.head]!.stored) {
      this.storedSeq = this.inflight[this.head]!.seq;
      this.head++;
      moved = true;
    }
    if (this.head > 4096) {
      this.inflight = this.inflight.slice(this.head);
      this.head = 0;
    }
    if (moved && !this.positionTimer) this.positionTimer = setTimeout(() => this.writePosition(), POSITION_EVERY_MS);
  }

  private writePosition(): void {
    if (this.positionTimer) clearTimeout(this.positionTimer);
    this.positionTimer = null;
    this.position.write(POSITION_KEY, { version: this.storedSeq }).catch(() => undefined);
  }

  /** Resolves once `ready()` holds, or with false after `ms`. */
  waitFor(ready: () => boolean, ms: number): Promise<boolean> {
    if (ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!ready()) return;
        cleanup();
        resolve(true);
      };
      const timer = setTimeout(() => {
        cleanup();
        resolve(ready());
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}
