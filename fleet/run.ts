import { monitorEventLoopDelay } from 'node:perf_hooks';
import { BUCKETS } from '../contracts/subjects.ts';
import type { ControlPlane } from './control-plane.ts';
import { Fleet, type Loss } from './fleet.ts';
import { percentile, rssMiB, startWindow, type Window } from './metrics.ts';
import type { RunOptions } from './options.ts';
import { checkFleet, checkPassed, type FleetCheck } from './verify.ts';

const IDLE_WINDOW_MS = 5_000;
/** The list baseline: the same query over this many domains, measured on the way up. */
const BASELINE_DOMAINS = 1_000;
const LIST_ROUNDS = 3;

export interface ListTiming {
  domains: number;
  firstPageMs: number;
  fullMs: number;
  pages: number;
}

export interface FleetResult {
  hosts: number;
  domains: number;
  running: number;
  ha: number;
  hostsStartS: number;
  defineS: number;
  startS: number;
  idle?: Window;
  steady?: Window & { renewalsPerSec: number; expectedRenewalsPerSec: number };
  rssMiB: { nats: number; command: number; projector: number; simulator: number };
  listBaseline?: ListTiming;
  list?: ListTiming;
  /** Planned running domains that never ran (their host was declared lost meanwhile, say). */
  notRunning: number;
  /** Domains defined elsewhere than planned, their planned host having been declared lost. */
  replaced: number;
  /** Hosts declared lost that nobody cut off: their agents did not renew in time. */
  spuriouslyLost: string[];
  /** This process's event-loop delay over the run: late timers here are late renewals. */
  loopDelayMs: { p99: number; max: number };
  losses: Loss[];
  detectMs: { p50: number; p99: number; max: number; samples: number };
  restartMs: { p50: number; p99: number; max: number; samples: number };
  check?: FleetCheck;
  passed: boolean;
}

/** Full paged list and its first page, the median of a few rounds each. */
const timeList = async (fleet: Fleet): Promise<ListTiming> => {
  const first: number[] = [];
  const full: number[] = [];
  let domains = 0;
  let pages = 0;
  for (let r = 0; r < LIST_ROUNDS; r++) {
    const t = performance.now();
    pages = 0;
    domains = 0;
    for await (const page of fleet.client.listPages({ all: true })) {
      if (pages++ === 0) first.push(performance.now() - t);
      domains += page.length;
    }
    full.push(performance.now() - t);
  }
  return { domains, pages, firstPageMs: percentile(first, 50), fullMs: percentile(full, 50) };
};

const kvWrites = async (fleet: Fleet): Promise<number> => (await fleet.cp.admin.jsm.streams.info(`KV_${BUCKETS.hostLiveness}`)).state.last_seq;

const spread = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs.length ? Math.max(...xs) : Number.NaN, samples: xs.length });

/** The whole simulation: populate, hold steady, lose hosts, check. Measures as it goes. */
export const runFleet = async (o: RunOptions): Promise<FleetResult> => {
  let idle: Window | undefined;
  const idleBaseline = async (cp: ControlPlane) => {
    const end = await startWindow(cp.server.pid, cp.monitorUrl);
    await new Promise((r) => setTimeout(r, IDLE_WINDOW_MS));
    idle = await end();
    o.progress(`idle control plane: nats-server ${idle.serverCpuPct.toFixed(1)}% CPU, ${idle.inMsgsPerSec.toFixed(0)} msgs/s in`);
  };
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  let t = performance.now();
  const fleet = await Fleet.start(o, o.duration > 0 ? idleBaseline : undefined);
  try {
    const hostsStartS = (performance.now() - t) / 1000 - (idle?.seconds ?? 0);
    t = performance.now();
    let listBaseline: ListTiming | undefined;
    const firstBatch = Math.min(BASELINE_DOMAINS, o.domains);
    await fleet.define(0, firstBatch);
    let defineS = (performance.now() - t) / 1000;
    if (o.duration > 0 && o.domains > BASELINE_DOMAINS) {
      listBaseline = await timeList(fleet);
      o.progress(`list of ${listBaseline.domains} domains: first page ${listBaseline.firstPageMs.toFixed(1)} ms, all ${listBaseline.fullMs.toFixed(1)} ms`);
    }
    t = performance.now();
    await fleet.define(firstBatch, o.domains);
    defineS += (performance.now() - t) / 1000;
    t = performance.now();
    const notRunning = await fleet.startPlanned();
    const startS = (performance.now() - t) / 1000;

    const pid = (name: 'command' | 'projector') => fleet.cp.services.get(name)!.child.pid!;
    let steady: FleetResult['steady'];
    let list: ListTiming | undefined;
    if (o.duration > 0) {
      o.progress(`steady state for ${o.duration} s`);
      const w0 = await kvWrites(fleet);
      const pids = { command: pid('command'), projector: pid('projector'), simulator: process.pid };
      const end = await startWindow(fleet.cp.server.pid, fleet.cp.monitorUrl, pids);
      await new Promise((r) => setTimeout(r, o.duration * 1000));
      const w = await end();
      const renewals = (await kvWrites(fleet)) - w0;
      steady = { ...w, renewalsPerSec: renewals / w.seconds, expectedRenewalsPerSec: (o.hosts * 1000) / o.timings.renewMs };
      o.progress(`steady: ${steady.renewalsPerSec.toFixed(0)} renewals/s (expected ${steady.expectedRenewalsPerSec.toFixed(0)}), nats-server ${steady.serverCpuPct.toFixed(1)}% CPU`);
      list = await timeList(fleet);
      o.progress(`list of ${list.domains} domains: first page ${list.firstPageMs.toFixed(1)} ms, all ${list.fullMs.toFixed(1)} ms (${list.pages} pages)`);
    }
    const rss = { nats: rssMiB(fleet.cp.server.pid), command: rssMiB(pid('command')), projector: rssMiB(pid('projector')), simulator: process.memoryUsage().rss / 2 ** 20 };

    const losses = o.kill > 0 ? await fleet.lose(o.kill, 300, o.recoveryTimeoutMs) : [];
    const detect = losses.filter((l) => l.lostAt !== undefined).map((l) => l.lostAt! - l.cutAt);
    const restart = losses.flatMap((l) => l.guests.filter((g) => g.restartedAt !== undefined).map((g) => g.restartedAt! - l.cutAt));
    const check = o.kill > 0 ? await checkFleet(fleet, losses) : undefined;
    const cut = new Set(losses.map((l) => l.hostId));
    const spuriouslyLost = (await fleet.client.hosts({ pageSize: 1000 })).filter((h) => h.lost && !cut.has(h.hostId)).map((h) => h.hostId);
    loop.disable();
    return {
      hosts: o.hosts,
      domains: o.domains,
      running: fleet.plan.filter((d) => d.running).length,
      ha: fleet.plan.filter((d) => d.ha).length,
      hostsStartS,
      defineS,
      startS,
      ...(idle ? { idle } : {}),
      ...(steady ? { steady } : {}),
      rssMiB: rss,
      notRunning,
      replaced: fleet.replaced,
      spuriouslyLost,
      loopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
      ...(listBaseline ? { listBaseline } : {}),
      ...(list ? { list } : {}),
      losses,
      detectMs: spread(detect),
      restartMs: spread(restart),
      ...(check ? { check } : {}),
      passed: !check || checkPassed(check),
    };
  } finally {
    await fleet.stop();
  }
};
