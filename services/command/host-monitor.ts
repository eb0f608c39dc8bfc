import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_TIMEOUT_MS } from '../../contracts/domain/commands.ts';
import { awaitsFailover, evacuationStopped, evolve, initialDomainState, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody } from '../../contracts/domain/events.ts';
import type { CommandMeta, Envelope } from '../../contracts/envelope.ts';
import { decideHostLost, evolveHost, initialHostState, type HostAggregate } from '../../contracts/host/decider.ts';
import type { HostEventBody } from '../../contracts/host/events.ts';
import { BUCKETS } from '../../contracts/subjects.ts';
import { leaseExpired, type HostLiveness, type LeaseTimings } from '../../contracts/host/liveness.ts';
import type { EventStore, RecordedCommit } from '../../platform/event-store.ts';
import type { KvMirror } from '../../platform/kv-mirror.ts';
import type { Logger } from '../../platform/log.ts';
import { streamAnswers } from '../../platform/js-retry.ts';
import { encodeJson } from '../../platform/nats.ts';
import type { DomainCommands } from './domain-commands.ts';
import type { Repository } from './repository.ts';
import type { Scheduler } from './scheduler.ts';

const monitorMeta = (commandId: string, now = new Date()): CommandMeta => ({
  commandId,
  actor: 'virtplane:host-monitor',
  correlationId: commandId,
  causationId: commandId,
  traceContext: {},
  now,
});

/** Resolves once the aggregate under `id` in `folded` has reached `version` (false after `ms`). */
const foldedTo = async (folded: ReadonlyMap<string, { version: number }>, id: string, version: number, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while ((folded.get(id)?.version ?? 0) < version) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
};

/**
 * Declares hosts lost and acts on it, from the log and the lease bucket alone, so a restarted (or a
 * second) replica reaches the same decisions: nothing here is a timer that must survive.
 *
 * A lease counts as expired when its entry is older than the TTL by the server's clock. The monitor
 * first revokes it (a write conditioned on the expired revision, so it fails if the agent renewed in
 * the meantime, and the agent can never renew it afterwards), then records `HostLost` under a command
 * id derived from that revision. Then, for each of the host's domains: its operation in flight fails
 * and its state becomes unknown; a domain that asks for it is restarted on a live host with a new
 * ownership epoch. Every step is a decision against the aggregate's newest state, so replicas racing
 * each other, or a host registering at the same moment, record each thing once or not at all.
 */
export class HostMonitor {
  private readonly hosts = new Map<string, HostAggregate>();
  private readonly domains = new Map<string, DomainAggregate>();
  /** Hosts with no lease entry at all (a bucket purged or made anew): since when this process knows. */
  private readonly absentSince = new Map<string, number>();
  private readonly abort = new AbortController();
  private readers: Promise<void>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  /**
   * Since when this process has watched the leases without a break (its start, its last reconnect),
   * and when it first saw each host's current revision. A lease must also have stood unchanged that
   * long in this process's sight: nobody could renew while the server was away, so an outage never
   * by itself makes every host lost. Only ever a delay, never a reason to declare a loss.
   */
  private watchingSince = Date.now();
  private readonly seen = new Map<string, { revision: number; since: number }>();
  /** When any lease last changed in this process's sight. */
  private lastLeaseChange = 0;
  /** The lease bucket did not answer at the last pass. */
  private bucketDown = false;
  private stopWatching: () => void = () => {};

  constructor(
    private readonly store: EventStore,
    private readonly hostRepo: Repository<HostAggregate, HostEventBody>,
    private readonly commands: DomainCommands,
    private readonly scheduler: Scheduler,
    private readonly leases: KvMirror<HostLiveness>,
    private readonly leaseKv: KV,
    private readonly timings: LeaseTimings,
    private readonly log: Logger,
    private readonly nc?: NatsConnection,
  ) {}

  /** Resolves once this replica has folded the host up to `version` (or after `ms`). */
  reached(hostId: string, version: number, ms = 2000): Promise<boolean> {
    return foldedTo(this.hosts, hostId, version, ms);
  }

  /** The domains placed on a host, by the log as folded so far. */
  domainsOn(hostId: string): DomainAggregate[] {
    return [...this.domains.values()].filter((d) => d.hostId === hostId);
  }

  host(hostId: string): HostAggregate | undefined {
    return this.hosts.get(hostId);
  }

  /** Resolves once this replica has folded the domain up to `version` (or after `ms`). */
  reachedDomain(domainId: string, version: number, ms = 2000): Promise<boolean> {
    return foldedTo(this.domains, domainId, version, ms);
  }

  /** Since when leases can be judged (this process watching them without a break) and whether their bucket answers now. */
  get leaseClock(): { since: number; down: boolean } {
    return { since: this.watchingSince, down: this.bucketDown };
  }

  /** In maintenance by the log as folded so far. */
  inMaintenance(hostId: string): boolean {
    return this.hosts.get(hostId)?.maintenance ?? false;
  }

  get checkEveryMs(): number {
    return Math.min(1000, Math.max(100, Math.floor(this.timings.leaseTtlMs / 8)));
  }

  /**
   * `domainsFed`: another reader of this process hands every domain commit, from the log's start, to
   * `foldDomain` (the deadline keeper does), and this monitor does not read them itself.
   */
  async start(opts: { domainsFed?: boolean } = {}): Promise<void> {
    this.readers.push(this.follow('ev.host.>', (c) => this.foldHost(c)));
    if (!opts.domainsFed) this.readers.push(this.follow('ev.domain.>', (c) => this.foldDomain(c)));
    this.stopWatching = this.leases.onChange((key) => {
      const t = Date.now();
      // No host at all renewed for two rounds: the bucket itself was not taking writes (an election,
      // a server restart this connection did not notice). No host is to blame for that gap, so every
      // lease gets its full TTL again from when writes resumed.
      if (this.lastLeaseChange && t - this.lastLeaseChange > 2 * this.timings.renewMs) this.watchingSince = t;
      this.lastLeaseChange = t;
      const w = this.leases.written.get(key);
      if (w) this.seen.set(key, { revision: w.revision, since: Date.now() });
    });
    if (this.nc) {
      const nc = this.nc;
      void (async () => {
        for await (const s of nc.status()) {
          if (this.abort.signal.aborted) return;
          if (s.type === 'reconnect') this.watchingSince = Date.now();
        }
      })();
    }
    this.timer = setInterval(() => void this.tick(), this.checkEveryMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.stopWatching();
    this.abort.abort();
    await Promise.allSettled(this.readers);
  }

  private async follow(subject: string, fold: (c: RecordedCommit) => void): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        for await (const c of this.store.subscribe(subject, 1, this.abort.signal)) fold(c);
      } catch (e) {
        if (this.abort.signal.aborted) return;
        this.log.warn('host monitor lost its place in the log; reading it again', { subject, error: String(e) });
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private foldHost(c: RecordedCommit): void {
    const id = c.subject.slice('ev.host.'.length);
    let s = this.hosts.get(id) ?? initialHostState(id);
    if (c.seq <= s.version) return;
    for (const e of c.events) s = evolveHost(s, e as unknown as Envelope<HostEventBody>);
    this.hosts.set(id, s);
  }

  foldDomain(c: RecordedCommit): void {
    const id = c.subject.slice('ev.domain.'.length);
    let s = this.domains.get(id) ?? initialDomainState(id);
    if (c.seq <= s.version) return;
    for (const e of c.events) s = evolve(s, e as unknown as Envelope<DomainEventBody>);
    if (s.exists) this.domains.set(id, s);
    else this.domains.delete(id);
  }

  /** One pass over every host; level-triggered, so a pass that fails half-way is finished by the next. */
  async tick(now = Date.now()): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      // Nobody can renew while the bucket does not answer (its leader is being elected): a host is
      // blamed only for time the bucket took writes, so every lease gets its full TTL again from
      // when it answers once more. Checked each pass before any revocation, which it would precede.
      const answers = await this.bucketAnswers();
      if (!answers) this.bucketDown = true;
      else if (this.bucketDown) {
        this.bucketDown = false;
        this.watchingSince = Math.max(this.watchingSince, now);
      }
      for (const h of [...this.hosts.values()]) {
        if (!h.exists || h.removed) continue;
        try {
          if (h.lost) await this.actOnLost(h);
          else if (answers) await this.check(h, now);
        } catch (e) {
          this.log.warn('host check failed; will look again', { hostId: h.hostId, error: String(e) });
        }
      }
      await this.moveEvacuated();
    } finally {
      this.ticking = false;
    }
  }

  /** Whether the lease bucket's stream answers now, briefly asked. */
  private async bucketAnswers(): Promise<boolean> {
    if (!this.nc) return true;
    return (await streamAnswers(this.nc, `KV_${BUCKETS.hostLiveness}`, Math.min(1000, this.checkEveryMs))) === 'answers';
  }

  /** Domains of an evacuated host whose guest is stopped there go to another host, each once. */
  private async moveEvacuated(): Promise<void> {
    for (const d of [...this.domains.values()]) {
      if (!evacuationStopped(d) || d.hostId !== d.evacuating!.fromHostId) continue;
      let target: string;
      try {
        target = this.scheduler.pick(d.definition!.type);
      } catch (e) {
        this.log.warn('no live host to move an evacuated domain to; will try again', { domainId: d.id, error: String(e) });
        continue;
      }
      try {
        const out = await this.commands.run(d.id, monitorMeta(`evacuate-move:${d.id}:${d.placementEpoch}`), {
          type: 'evacuate-move',
          fromHostId: d.hostId,
          hostId: target,
          timeoutMs: DEFAULT_TIMEOUT_MS.start,
        });
        if (out.version > d.version && !out.duplicate) this.log.info('evacuated domain moved', { domainId: d.id, from: d.hostId, to: target, started: out.taskId !== undefined });
      } catch (e) {
        this.log.warn('could not move an evacuated domain; will try again', { domainId: d.id, error: String(e) });
      }
    }
  }

  private async check(h: HostAggregate, now: number): Promise<void> {
    const written = this.leases.written.get(h.hostId);
    const lease = this.leases.entries.get(h.hostId);
    if (!written || written.deleted || !lease) {
      // No lease to go by: count the TTL from when this process first saw none.
      const since = this.absentSince.get(h.hostId) ?? (written?.deleted ? written.at : now);
      this.absentSince.set(h.hostId, since);
      if (leaseExpired(Math.max(since, this.watchingSince), now, this.timings)) await this.recordLost(h.hostId, written?.revision ?? 0, since);
      return;
    }
    this.absentSince.delete(h.hostId);
    if (lease.revoked) {
      // Revoked over an expired lease (by this replica or another that may have stopped before recording).
      await this.recordLost(h.hostId, lease.revoked.expiredRevision, Date.parse(lease.revoked.expiredAt));
      return;
    }
    const seen = this.seen.get(h.hostId);
    if (!seen || seen.revision !== written.revision) this.seen.set(h.hostId, { revision: written.revision, since: now });
    const unchangedSince = Math.max(this.seen.get(h.hostId)!.since, this.watchingSince);
    if (!leaseExpired(written.at, now, this.timings) || !leaseExpired(unchangedSince, now, this.timings)) return;
    const revoked: HostLiveness = { ...lease, revoked: { expiredRevision: written.revision, expiredAt: new Date(written.at).toISOString() } };
    try {
      await this.leaseKv.update(h.hostId, encodeJson(revoked), written.revision);
    } catch (e) {
      // Renewed after all, or revoked by another replica: the next pass sees which.
      this.log.info('lease not revoked: it moved on', { hostId: h.hostId, revision: written.revision, error: String(e) });
      return;
    }
    this.log.warn('host lease expired and revoked', { hostId: h.hostId, revision: written.revision, writtenAt: new Date(written.at).toISOString() });
    await this.recordLost(h.hostId, written.revision, written.at);
  }

  private async recordLost(hostId: string, leaseRevision: number, writtenAt: number): Promise<void> {
    const out = await this.hostRepo.execute(hostId, monitorMeta(`host-lost:${hostId}:${leaseRevision}`), (s) =>
      decideHostLost({ type: 'lost', leaseRevision, leaseWrittenAt: new Date(writtenAt).toISOString() }, s),
    );
    if (out.events.length > 0) this.log.warn('host declared lost', { hostId, leaseRevision });
    if (out.state.lost) await this.actOnLost(out.state);
  }

  /** Marks the lost host's domains unknown (failing what was in flight) and restarts those that ask for it. */
  private async actOnLost(h: HostAggregate): Promise<void> {
    for (const d of [...this.domains.values()]) {
      if (d.hostId !== h.hostId) continue;
      const revision = h.leaseRevision ?? 0;
      if (!d.hostLost && (d.hostLostRevision ?? -1) < revision) {
        await this.commands.run(d.id, monitorMeta(`domain-host-lost:${d.id}:${h.hostId}:${revision}`), { type: 'host-lost', hostId: h.hostId, leaseRevision: revision });
      } else if (awaitsFailover(d)) {
        await this.failover(d);
      }
    }
  }

  private async failover(d: DomainAggregate): Promise<void> {
    let target: string;
    try {
      target = this.scheduler.pick(d.definition!.type);
    } catch (e) {
      this.log.warn('no live host to restart a domain of a lost host on; will try again', { domainId: d.id, error: String(e) });
      return;
    }
    const out = await this.commands.run(d.id, monitorMeta(`failover:${d.id}:${d.placementEpoch}`), {
      type: 'failover',
      fromHostId: d.hostId,
      hostId: target,
      timeoutMs: DEFAULT_TIMEOUT_MS.start,
    });
    if (out.taskId) this.log.warn('domain of a lost host restarted elsewhere', { domainId: d.id, from: d.hostId, to: target });
  }
}
