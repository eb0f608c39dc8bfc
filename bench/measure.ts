import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/**
 * What a bench phase cost: NATS messages from the server's monitoring endpoint (in + out, every
 * connection) and CPU time of each process from /proc/<pid>/stat.
 */

const TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** Quarter-second windows with no more than idle traffic that make the system quiet: 1.5 s. */
const CALM_WINDOWS = 6;

/** User + system CPU of a process in ms (0 when it is gone). */
export const cpuMs = (pid: number): number => {
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS;
  } catch {
    return 0;
  }
};

export interface Varz {
  in_msgs: number;
  out_msgs: number;
}

export class Meter {
  /** Server messages per ms while nothing is asked of the system (heartbeats, consumer pulls). */
  idlePerMs = 0;

  constructor(
    private readonly monitorPort: number,
    readonly procs: Array<{ name: string; pid: number }>,
  ) {}

  async messages(): Promise<number> {
    const r = await fetch(`http://127.0.0.1:${this.monitorPort}/varz`);
    const v = (await r.json()) as Varz;
    return v.in_msgs + v.out_msgs;
  }

  /** What the system sends with nothing asked of it, once what was asked before has settled. */
  async measureIdle(ms = 2000): Promise<void> {
    await this.quiet();
    const a = await this.messages();
    const t = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    this.idlePerMs = ((await this.messages()) - a) / (performance.now() - t);
  }

  /**
   * Waits until the system has no work left from what was asked (views written, reports recorded):
   * quarter-second windows in a row with no more messages than idling sends, for longer than the
   * projector holds a view before storing it (1 s), so no phase's stores land in the next one.
   */
  async quiet(maxMs = 60_000): Promise<void> {
    const end = Date.now() + maxMs;
    let calm = 0;
    let last = await this.messages();
    while (calm < CALM_WINDOWS && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await this.messages();
      calm = now - last <= this.idlePerMs * 250 + 2 ? calm + 1 : 0;
      last = now;
    }
  }

  /**
   * Runs `work`, waits for the system to settle, and gives the messages (less what idling sent in
   * the time) and each process's CPU ms, per operation.
   */
  async phase(ops: number, work: () => Promise<void>): Promise<PhaseCost> {
    await this.quiet();
    const m0 = await this.messages();
    const c0 = this.procs.map((p) => cpuMs(p.pid));
    const t0 = performance.now();
    await work();
    const workMs = performance.now() - t0;
    await this.quiet();
    const elapsed = performance.now() - t0 - CALM_WINDOWS * 250;
    const msgs = (await this.messages()) - m0 - this.idlePerMs * Math.max(0, elapsed);
    const cpu = this.procs.map((p, i) => ({ name: p.name, ms: (cpuMs(p.pid) - c0[i]!) / ops }));
    return { perOp: msgs / ops, cpu, workMs, opsPerSec: ops / (workMs / 1000) };
  }
}

export interface PhaseCost {
  perOp: number;
  cpu: Array<{ name: string; ms: number }>;
  workMs: number;
  opsPerSec: number;
}

export const cpuLine = (c: PhaseCost) =>
  `${c.cpu.map((p) => `${p.name} ${p.ms.toFixed(2)}`).join(', ')}; total ${c.cpu.reduce((s, p) => s + p.ms, 0).toFixed(2)} ms`;
