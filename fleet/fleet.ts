import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtplaneClient } from '../client/index.ts';
import { HA_ELEMENT } from '../contracts/domain/ha.ts';
import { isVirtError } from '../contracts/errors.ts';
import type { LeaseTimings } from '../contracts/host/liveness.ts';
import { createLogger } from '../platform/log.ts';
import { connectNats, type Nats } from '../platform/nats.ts';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { startHosts, type SimulatedHost } from './hosts.ts';
import { hostIdOf, planDomains, type PlannedDomain } from './plan.ts';
import { RestartWatch } from './watch.ts';

export interface FleetOptions {
  hosts: number;
  domains: number;
  /** Share of each host's domains that ask to be restarted elsewhere when the host is lost (all started). */
  haShare: number;
  /** Share of each host's domains started, besides the HA ones. */
  runningShare: number;
  timings: LeaseTimings;
  /** Commands in flight while populating. */
  concurrency: number;
  /** Level of the simulated agents' logs (stderr). */
  agentLogLevel: 'info' | 'warn' | 'error' | 'silent';
  /** Where the agents' state dirs go: a tmpfs keeps a thousand task journals' fsyncs cheap. */
  stateRoot?: string;
  progress: (line: string) => void;
}

/** One lost host: when it was cut off, when the control plane declared it lost, its HA guests' restarts (ms since the epoch). */
export interface Loss {
  hostId: string;
  cutAt: number;
  lostAt?: number;
  guests: Array<{ domainId: string; name: string; restartedAt?: number; on?: string }>;
}

/**
 * A simulated fleet: the real control plane in its own processes, and `hosts` real host agents on the
 * test driver in this process, each with its own connection and lease.
 */
export class Fleet {
  readonly plan: PlannedDomain[];
  readonly ids = new Map<string, string>();
  /** Domains defined elsewhere than planned, their planned host having been declared lost. */
  replaced = 0;
  private constructor(
    readonly opts: FleetOptions,
    readonly cp: ControlPlane,
    readonly client: VirtplaneClient,
    private readonly clientNats: Nats,
    readonly hosts: SimulatedHost[],
    private readonly stateRoot: string,
  ) {
    this.plan = planDomains(opts.hosts, opts.domains, opts.haShare, opts.runningShare);
  }

  /** `beforeHosts` runs once the control plane is up and no host has started (an idle baseline). */
  static async start(opts: FleetOptions, beforeHosts: (cp: ControlPlane) => Promise<void> = async () => {}): Promise<Fleet> {
    const cp = await startControlPlane({ timings: opts.timings });
    const stateRoot = await mkdtemp(join(opts.stateRoot ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'virtplane-fleet-hosts-'));
    try {
      await beforeHosts(cp);
      const clientNats = await connectNats(cp.server.url, 'fleet-client');
      const client = VirtplaneClient.over(clientNats, { actor: 'fleet', requestTimeoutMs: 60_000 });
      const log = createLogger('fleet.agent', opts.agentLogLevel);
      const t0 = performance.now();
      const ids = Array.from({ length: opts.hosts }, (_, i) => hostIdOf(i));
      const hosts = await startHosts(cp.server.url, ids, stateRoot, opts.timings, log, 32, (n) => {
        if (n % 100 === 0 || n === ids.length) opts.progress(`hosts started: ${n}/${ids.length} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      });
      const fleet = new Fleet(opts, cp, client, clientNats, hosts, stateRoot);
      process.once('SIGINT', fleet.onSignal);
      process.once('SIGTERM', fleet.onSignal);
      return fleet;
    } catch (e) {
      await cp.stop();
      await rm(stateRoot, { recursive: true, force: true });
      throw e;
    }
  }

  host(hostId: string): SimulatedHost {
    const h = this.hosts.find((x) => x.hostId === hostId);
    if (!h) throw new Error(`no simulated host ${hostId}`);
    return h;
  }

  /**
   * Defines the planned domains from `from` up to `to` through the typed client, `concurrency` in
   * flight, each on its planned host.
   */
  async define(from: number, to: number): Promise<void> {
    await this.each(this.plan.slice(from, to), 'defined', async (d) => {
      const definition = { name: d.name, type: 'test', memoryKiB: 65536, vcpus: 1, ...(d.ha ? { metadata: HA_ELEMENT } : {}) };
      try {
        this.ids.set(d.name, (await this.client.define({ definition, hostId: d.hostId })).domainId);
      } catch (e) {
        // Its host was declared lost meanwhile (it did not renew in time): placed wherever the scheduler says.
        if (!(isVirtError(e) && e.code === 'no-host')) throw e;
        const accepted = await this.client.define({ definition });
        this.ids.set(d.name, accepted.domainId);
        d.hostId = (await this.client.get(accepted.domainId, { minVersion: accepted.version })).hostId;
        this.replaced++;
      }
    });
  }

  /**
   * Starts the planned running domains and waits until their hosts run them all, or nothing moved for
   * `stallMs` (a host declared lost meanwhile leaves its starts failed): answers how many do not run.
   */
  async startPlanned(stallMs = 60_000): Promise<number> {
    const running = this.plan.filter((d) => d.running && this.ids.has(d.name));
    await this.each(running, 'start accepted', (d) => this.client.start(d.name).then(() => undefined));
    const t0 = performance.now();
    let last = 0;
    let best = -1;
    let movedAt = performance.now();
    for (;;) {
      const runningNow = new Set((await Promise.all(this.hosts.map((h) => h.guests()))).flat().filter((g) => g.state === 'running').map((g) => g.uuid));
      if (runningNow.size >= running.length) return 0;
      if (runningNow.size > best) [best, movedAt] = [runningNow.size, performance.now()];
      if (performance.now() - movedAt > stallMs) {
        const missing = running.filter((d) => !runningNow.has(this.ids.get(d.name)!));
        const views = await Promise.all(missing.slice(0, 3).map((d) => this.client.get(d.name).catch((e: Error) => ({ error: e.message }))));
        const seen = views.map((v) => ('error' in v ? v.error : { name: v.name, hostId: v.hostId, observed: v.observed, lastError: v.lastError }));
        this.opts.progress(`${missing.length} started domains do not run, e.g. ${JSON.stringify(seen)}`);
        return missing.length;
      }
      if (performance.now() - last > 2000) {
        last = performance.now();
        this.opts.progress(`guests running: ${runningNow.size}/${running.length} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async each<T>(items: T[], what: string, job: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    let done = 0;
    let last = performance.now();
    const t0 = last;
    const worker = async () => {
      while (next < items.length) {
        const item = items[next++]!;
        await job(item);
        done++;
        if (performance.now() - last > 5000) {
          last = performance.now();
          const s = (last - t0) / 1000;
          this.opts.progress(`${what}: ${done}/${items.length} (${(done / s).toFixed(0)}/s, ${s.toFixed(0)} s)`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency, items.length) }, worker));
    const s = (performance.now() - t0) / 1000;
    this.opts.progress(`${what}: ${done}/${items.length} in ${s.toFixed(1)} s (${(done / Math.max(s, 1e-3)).toFixed(0)}/s)`);
  }

  /**
   * Loses `count` hosts that run HA guests, `spacingMs` apart, and waits until each is declared lost
   * and each of its HA guests started elsewhere (or `timeoutMs` passes).
   */
  async lose(count: number, spacingMs: number, timeoutMs: number): Promise<Loss[]> {
    const victims: SimulatedHost[] = [];
    // Spread over the fleet rather than the first hosts: the monitor walks hosts in order.
    for (let i = 0; victims.length < count && i < this.hosts.length; i++) {
      const h = this.hosts[Math.floor((i * this.hosts.length) / Math.max(count, 1)) % this.hosts.length]!;
      if (h.lost || victims.includes(h)) continue;
      victims.push(h);
    }
    const watch = new RestartWatch(this.client);
    // The feed's consumer starts with the first read: give it a moment before anything happens.
    await new Promise((r) => setTimeout(r, 500));
    const losses: Loss[] = [];
    for (const h of victims) {
      const haNames = new Set(this.plan.filter((d) => d.ha && d.running).map((d) => d.name));
      const guests = (await h.guests()).filter((g) => haNames.has(g.name)).map((g) => ({ domainId: g.uuid, name: g.name }));
      await h.lose();
      losses.push({ hostId: h.hostId, cutAt: Date.now(), guests });
      if (spacingMs > 0) await new Promise((r) => setTimeout(r, spacingMs));
    }
    const end = Date.now() + timeoutMs;
    try {
      for (let round = 0; ; round++) {
        let pending = 0;
        // The host list is a scan of every domain on the projector: asked once a second, not more.
        const views = losses.some((l) => l.lostAt === undefined) && round % 10 === 0 ? new Map((await this.client.hosts({ pageSize: 1000 })).map((v) => [v.hostId, v])) : undefined;
        for (const l of losses) {
          // When the control plane recorded the loss, by its own clock (this machine's).
          const lostAt = views?.get(l.hostId)?.lostAt;
          if (l.lostAt === undefined && lostAt) l.lostAt = Date.parse(lostAt);
          if (l.lostAt === undefined) pending++;
          for (const g of l.guests) {
            if (g.restartedAt !== undefined) continue;
            const r = watch.restartedAt(g.domainId, l.hostId);
            if (r) Object.assign(g, { restartedAt: r.at, on: r.hostId });
            else pending++;
          }
        }
        if (pending === 0 || Date.now() > end) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await watch.stop();
    }
    return losses;
  }

  /** Interrupted: the services and the server it started go with it. */
  private readonly onSignal = () => void this.stop().finally(() => process.exit(130));

  async stop(): Promise<void> {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    for (let i = 0; i < this.hosts.length; i += 50) await Promise.all(this.hosts.slice(i, i + 50).map((h) => h.stop()));
    await this.clientNats.close();
    await this.cp.stop();
    await rm(this.stateRoot, { recursive: true, force: true });
  }
}
