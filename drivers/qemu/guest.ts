import type { ChildProcess } from 'node:child_process';
import type { DiskModel, DomainDefinition } from '../../contracts/domain/definition.ts';
import type { ObservedState } from '../../contracts/domain/state.ts';
import { VirtError, isVirtError } from '../../contracts/errors.ts';
import { processState } from './host.ts';
import type { QmpClient } from './qmp.ts';

/** What the driver writes to `<stateDir>/qemu/<uuid>/domain.json` to find a running qemu again. */
export interface DomainRecord {
  version: 1;
  uuid: string;
  name: string;
  binary: string;
  args: string[];
  pid?: number;
  pidfile: string;
  qmpSocket: string;
  consoleLog: string;
  qemuLog: string;
  /** The definition qemu was started from; guest-initiated power-off applies its lifecycle actions. */
  def: DomainDefinition;
  state: ObservedState;
  /** Every tap the domain holds, hot-plugged ones included: all of them are released when it stops. */
  ifnames: string[];
  /** The guest's NICs as they are now (boot-time and hot-plugged), by MAC. */
  nics: NicRecord[];
  /** Disks plugged into the running guest since it started, recorded before qemu has them. */
  disks?: DiskModel[];
  vncPorts: number[];
  consolePty?: string;
  accel: 'kvm' | 'tcg';
  startedAt: string;
  /**
   * A save in progress stopped the guest, which ran before: kept on disk so that a save run again
   * after the agent died records it as running in the image, as it was before the first attempt.
   */
  savingRunning?: boolean;
}

export interface NicRecord {
  /** Lower case. */
  mac: string;
  /** qemu ids are net<index> for the device and hostnet<index> for its backend, as libvirt names them. */
  index: number;
  /** Absent for user-mode networking. */
  ifname?: string;
  bridge?: string;
  network?: string;
  hotplugged?: boolean;
  /** device_del was sent and the guest has not released the device yet. */
  unplugging?: boolean;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One running qemu process the driver looks after. */
export class Domain {
  qmp: QmpClient | undefined;
  child: ChildProcess | undefined;
  exitInfo: ExitInfo | undefined;
  /** Set while an operation holds the domain: events it causes are its own result, not observations. */
  op: string | undefined;
  /** What the process going away means when an operation made it go (destroyed, shut down). */
  expectExit: ObservedState | undefined;
  /** qemu reported SHUTDOWN: an exit after that is a shutdown, not a crash. */
  gotShutdown = false;
  /** Writes of domain.json, in order. */
  saving: Promise<void> = Promise.resolve();
  /** Firmware resets that follow a power-on or reset the driver caused are not guest reboots. */
  quietResetsUntil = 0;
  private resolveExited!: () => void;
  readonly exited = new Promise<void>((r) => (this.resolveExited = r));
  private exitPoll: NodeJS.Timeout | undefined;
  detached = false;

  constructor(
    readonly dir: string,
    public rec: DomainRecord,
    readonly pid: number,
  ) {}

  get uuid(): string {
    return this.rec.uuid;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  markExited(): void {
    this.resolveExited();
  }

  /** Without a child handle (reattached), the process is watched through /proc. */
  pollExit(onGone: () => void, intervalMs: number): void {
    if (this.exitPoll || this.detached) return;
    const tick = async () => {
      this.exitPoll = undefined;
      if (this.detached || !this.alive) return;
      if ((await processState(this.pid)) !== 'alive') return onGone();
      this.exitPoll = setTimeout(tick, intervalMs);
      this.exitPoll.unref();
    };
    void tick();
  }

  stopPolling(): void {
    if (this.exitPoll) clearTimeout(this.exitPoll);
    this.exitPoll = undefined;
  }
}

export const RUNNING_BOOTED: ObservedState = { state: 'running', reason: 'booted' };
export const SHUTOFF_SHUTDOWN: ObservedState = { state: 'shutoff', reason: 'shutdown' };
export const SHUTOFF_DESTROYED: ObservedState = { state: 'shutoff', reason: 'destroyed' };
export const SHUTOFF_CRASHED: ObservedState = { state: 'shutoff', reason: 'crashed' };
export const SHUTOFF_FAILED: ObservedState = { state: 'shutoff', reason: 'failed' };
export const SHUTOFF_SAVED: ObservedState = { state: 'shutoff', reason: 'saved' };
export const SHUTOFF_FROM_SNAPSHOT: ObservedState = { state: 'shutoff', reason: 'from-snapshot' };
export const SHUTOFF_UNKNOWN: ObservedState = { state: 'shutoff', reason: 'unknown' };

export const notRunning = () => new VirtError('operation-invalid', 'Requested operation is not valid: domain is not running');

/** Maps qemu's RunState to virDomainState/reason, keeping the previous reason when the state is unchanged. */
export function mapRunState(status: string, prev?: ObservedState): ObservedState {
  const keep = (s: ObservedState['state'], fallback: ObservedState['reason']): ObservedState =>
    prev?.state === s ? prev : { state: s, reason: fallback };
  switch (status) {
    case 'running':
      return keep('running', 'unpaused');
    case 'prelaunch':
      return keep('paused', 'starting-up');
    case 'io-error':
      return { state: 'paused', reason: 'ioerror' };
    case 'guest-panicked':
      return { state: 'crashed', reason: 'panicked' };
    case 'shutdown':
      return { state: 'shutdown', reason: 'unknown' };
    case 'suspended':
      return { state: 'pmsuspended', reason: 'unknown' };
    case 'inmigrate':
    case 'postmigrate':
    case 'finish-migrate':
      return keep('paused', 'migrated');
    default:
      // paused, debug, watchdog, internal-error, save-vm, restore-vm, colo
      return keep('paused', 'unknown');
  }
}

export const abortReason = (signal: AbortSignal | undefined, what: string): VirtError => {
  const r: unknown = signal?.reason;
  if (isVirtError(r)) return r;
  return new VirtError('timeout', `${what}: operation timed out`);
};

/** Resolves when `p` does, or rejects when `signal` aborts or `ms` passes. */
export const within = async <T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        if (ms !== Infinity) timer = setTimeout(() => reject(new VirtError('timeout', `${what} did not finish within ${ms} ms`)), ms);
        if (signal) {
          onAbort = () => reject(abortReason(signal, what));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
};

export const FIRMWARE_RESET_WINDOW_MS = 5000;
