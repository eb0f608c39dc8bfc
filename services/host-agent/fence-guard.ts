import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../platform/config.ts';
import { programArgs } from '../../platform/runtime.ts';

/**
 * Guests outlive their agent by design (an agent restart must not stop them), so an agent that dies
 * cannot fence its guests itself, and the control plane would restart its HA guests elsewhere while
 * they still ran here. A small guard process, started by the agent and outliving it, fences for it:
 * the agent writes a heartbeat file several times a second; when it has not been written for the
 * fence timeout (the agent died, or stands still), the guard kills the host's qemu guests, before
 * the lease can expire (TTL > fence + margin). An agent back within the fence timeout finds its
 * guests as they were; like Proxmox's watchdog, one that stays away longer finds them fenced.
 */
export interface Heartbeat {
  pid: number;
  /** When the agent's watchdog last ran (it also fences itself on a lost lease, while it runs). */
  tickAt: number;
  fenceMs: number;
  /**
   * The guests the guard kills: those whose domain is restarted on another host when this one is
   * lost. Absent until the agent knows, and then every guest is fenced.
   */
  fence?: string[];
}

export const guardDir = (stateDir: string) => join(stateDir, 'fence-guard');
export const heartbeatFile = (stateDir: string) => join(guardDir(stateDir), 'heartbeat.json');
export const guardPidFile = (stateDir: string) => join(guardDir(stateDir), 'guard.pid');

/** Whether a process's command line is a fence guard's (from sources or built). */
export const isFenceGuard = (cmdline: string[] | undefined): boolean => cmdline?.some((a) => a.endsWith('fence-guard-main.ts') || a.endsWith('fence-guard.mjs')) ?? false;

export const readHeartbeat = (stateDir: string): Heartbeat | undefined => {
  try {
    return JSON.parse(readFileSync(heartbeatFile(stateDir), 'utf8')) as Heartbeat;
  } catch {
    return undefined;
  }
};

/** The agent's side: beats, and a guard running beside it (one per host; a running one is kept). */
export class FenceGuard {
  constructor(
    private readonly stateDir: string,
    private readonly fenceMs: number,
  ) {
    mkdirSync(guardDir(stateDir), { recursive: true });
  }

  /** Written atomically, so the guard never reads half a beat. */
  beat(now = Date.now()): void {
    const file = heartbeatFile(this.stateDir);
    const body: Heartbeat = { pid: process.pid, tickAt: now, fenceMs: this.fenceMs, ...(this.fenced ? { fence: [...this.fenced] } : {}) };
    writeFileSync(`${file}.tmp`, JSON.stringify(body));
    renameSync(`${file}.tmp`, file);
  }

  private timer: NodeJS.Timeout | null = null;
  private fenced: Set<string> | null = null;

  /** From now on only these guests are fenced (the agent has learnt which domains ask for it). */
  fence(uuids: Set<string>): void {
    this.fenced = uuids;
  }

  /**
   * Beats from now on, on a timer of its own (an event loop that stands still stops it too), and
   * starts the guard unless one runs already (it checks that itself, under its pid file).
   */
  start(): void {
    this.beat();
    this.timer = setInterval(() => this.beat(), Math.max(20, Math.min(250, Math.floor(this.fenceMs / 10))));
    this.timer.unref();
    const child = spawn(process.execPath, [...programArgs('fence-guard'), this.stateDir], {
      cwd: PROJECT_ROOT,
      detached: true,
      stdio: 'ignore',
      env: { ...process.env },
    });
    child.unref();
  }

  /** Stops beating: guests still running when the fence timeout has passed are fenced by the guard. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
