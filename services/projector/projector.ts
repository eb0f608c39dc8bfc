import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { durableConsumer } from '../../platform/durable-consumer.ts';
import { OrderedKvWriter } from '../../platform/ordered-kv-writer.ts';
import type { KV } from '@nats-io/kv';
import { evolve, initialDomainState, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody } from '../../contracts/domain/events.ts';
import type { Envelope } from '../../contracts/envelope.ts';
import { evolveHost, initialHostState, type HostAggregate } from '../../contracts/host/decider.ts';
import type { HostEventBody } from '../../contracts/host/events.ts';
import { lifecycleFor, lifecycleNumbers, type LifecycleEvent } from '../../contracts/lifecycle.ts';
import { BUCKETS, STREAMS, subjects } from '../../contracts/subjects.ts';
import { toRecordedCommit, type RecordedCommit } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import { decodeJson, encodeJson, type Nats } from '../../platform/nats.ts';
import { StorageProjection } from './storage-projection.ts';
import { isNetworkCommit, NetworkProjection } from './network-projection.ts';

export const PROJECTOR_CONSUMER = 'projector';

export interface ProjectorOptions {
  /** Throw the views away and fold the whole log again; lifecycle events already sent are not sent again. */
  rebuild?: boolean;
}

/**
 * Folds the log into views with the deciders' own `evolve`, keeps them in memory for queries and in KV
 * for restarts, and publishes lifecycle events. A commit is acknowledged only after its view and its
 * lifecycle events are stored, so a crash repeats work (skipped by version) and loses none.
 */
export class Projector {
  readonly domains = new Map<string, DomainAggregate>();
  readonly hosts = new Map<string, HostAggregate>();
  readonly domainByName = new Map<string, string>();
  readonly storage = new StorageProjection();
  networks!: NetworkProjection;
  /** Stream sequence of the last commit folded in. */
  lastSeq = 0;
  private readonly waiters = new Set<() => void>();
  private messages: ConsumerMessages | null = null;
  private done: Promise<void> = Promise.resolve();
  private readonly domainViews = new OrderedKvWriter<DomainAggregate>(() => this.domainKv);
  private readonly hostViews = new OrderedKvWriter<HostAggregate>(() => this.hostKv);
  private replayUntil = 0;
  private domainKv!: KV;
  private hostKv!: KV;

  constructor(
    private readonly n: Nats,
    private readonly log: Logger,
    private readonly opts: ProjectorOptions = {},
  ) {}

  async start(): Promise<void> {
    this.domainKv = await this.n.kvm.open(BUCKETS.domains);
    this.hostKv = await this.n.kvm.open(BUCKETS.hosts);
    this.networks = await NetworkProjection.open(this.n);
    if (this.opts.rebuild) await this.reset();
    await this.load();
    await this.storage.start(this.n, this.opts.rebuild);
    const consumer = await durableConsumer(this.n, {
      stream: STREAMS.events,
      name: PROJECTOR_CONSUMER,
      filterSubject: subjects.allEvents,
      ackWaitMs: 30_000,
      maxAckPending: 4096,
    });
    this.messages = await consumer.consume({ max_messages: 1024 });
    const messages = this.messages;
    this.done = (async () => {
      for await (const m of messages) this.handle(m);
    })();
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    await this.done;
    await Promise.all([this.domainViews.flush(), this.hostViews.flush()]);
    await this.networks.flush();
  }

  private async reset(): Promise<void> {
    await this.n.jsm.consumers.delete(STREAMS.events, PROJECTOR_CONSUMER).catch(() => undefined);
    for (const kv of [this.domainKv, this.hostKv]) {
      for await (const key of await kv.keys()) await kv.purge(key);
    }
    await this.networks.reset();
    this.replayUntil = (await this.n.jsm.streams.info(STREAMS.events)).state.last_seq;
  }

  private async load(): Promise<void> {
    for (const [kv, into] of [
      [this.domainKv, this.domains],
      [this.hostKv, this.hosts],
    ] as const) {
      for await (const key of await kv.keys()) {
        const e = await kv.get(key);
        if (e?.operation === 'PUT') (into as Map<string, unknown>).set(key, decodeJson(e.value));
      }
    }
    for (const d of this.domains.values()) {
      this.domainByName.set(d.name, d.id);
      this.lastSeq = Math.max(this.lastSeq, d.version);
    }
    this.lastSeq = Math.max(this.lastSeq, await this.networks.load());
  }

  private handle(m: JsMsg): void {
    let work: Promise<unknown>;
    try {
      const commit = toRecordedCommit({ seq: m.seq, subject: m.subject, data: m.data });
      work = m.subject.startsWith('ev.domain.')
        ? this.foldDomain(commit)
        : m.subject.startsWith('ev.host.')
          ? this.foldHost(commit)
          : isNetworkCommit(m.subject)
            ? this.networks.fold(commit, commit.seq > this.replayUntil)
            : m.subject.startsWith('ev.pool.')
              ? this.storage.fold(commit)
              : Promise.resolve();
    } catch (e) {
      work = Promise.reject(e);
    }
    this.lastSeq = Math.max(this.lastSeq, m.seq);
    this.notify();
    work.then(
      () => m.ack(),
      (e) => {
        this.log.error('projection failed; will be redelivered', { seq: m.seq, error: String(e) });
        m.nak(1000);
      },
    );
  }

  private foldDomain(c: RecordedCommit): Promise<unknown> {
    const id = c.subject.slice('ev.domain.'.length);
    let s = this.domains.get(id) ?? initialDomainState(id);
    if (c.seq <= s.version) return Promise.resolve();
    const lifecycle: LifecycleEvent[] = [];
    for (const raw of c.events) {
      const e = raw as unknown as Envelope<DomainEventBody>;
      const before = s;
      s = evolve(s, e);
      lifecycleFor(before, e).forEach((kind, i) =>
        lifecycle.push({
          eventId: i === 0 ? e.id : `${e.id}:${i}`,
          domainId: id,
          name: s.name || before.name,
          hostId: s.hostId || before.hostId,
          event: kind.event,
          detail: kind.detail,
          ...lifecycleNumbers(kind),
          time: e.time,
          version: e.version,
          actor: e.actor,
          correlationId: e.correlationId,
        }),
      );
    }
    const prev = this.domains.get(id);
    if (prev && prev.name !== s.name && this.domainByName.get(prev.name) === id) this.domainByName.delete(prev.name);
    if (s.exists) {
      this.domains.set(id, s);
      this.domainByName.set(s.name, id);
    } else {
      this.domains.delete(id);
      if (this.domainByName.get(s.name) === id) this.domainByName.delete(s.name);
    }
    const stored = this.domainViews.write(id, s.exists ? s : null);
    const published = c.seq <= this.replayUntil ? [] : lifecycle.map((l) => this.n.js.publish(subjects.lifecycle(l.hostId, l.domainId), encodeJson(l), { msgID: l.eventId }));
    return Promise.all([stored, ...published]);
  }

  private foldHost(c: RecordedCommit): Promise<unknown> {
    const id = c.subject.slice('ev.host.'.length);
    let s = this.hosts.get(id) ?? initialHostState(id);
    if (c.seq <= s.version) return Promise.resolve();
    for (const raw of c.events) s = evolveHost(s, raw as unknown as Envelope<HostEventBody>);
    this.hosts.set(id, s);
    return this.hostViews.write(id, s);
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
