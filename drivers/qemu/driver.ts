import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { DiskModel, type DomainDefinition, type InterfaceModel } from '../../contracts/domain/definition.ts';
import { changeMedia, diskIds, plugDisk, presentDevices, unplugDisk } from './disk-hotplug.ts';
import type { ObservedState, RuntimeDevices, RuntimeInterface } from '../../contracts/domain/state.ts';
import type { Duplex } from 'node:stream';
import { VirtError, isVirtError } from '../../contracts/errors.ts';
import type {
  DomainObservation,
  DriverCapabilities,
  DriverDomain,
  HypervisorDriver,
  OperationOptions,
} from '../hypervisor.ts';
import {
  buildQemuCommand,
  defaultMac,
  formatCommand,
  nicDevice,
  nicDriver,
  tapNetdev,
  type NetdevBackend,
  type QemuCommand,
} from './argv.ts';
import { chardevPtys, openPty, pickConsole, vncDisplays, type QmpChardev, type QmpVnc } from './console.ts';
import { graphicsListenOf, memballoonOf } from './extras.ts';
import { setOnlineVcpus, VCPU_UNPLUGGED } from './vcpus.ts';
import { qemuDomainCaps } from './domain-caps.ts';
import type { DomainCapsRequest } from '../../contracts/host/domain-caps.ts';
import { qemuStats } from './stats.ts';
import { qemuVcpuInfo } from './vcpu-info.ts';
import { hostSmbios, nodeCpuMap, nodeCpuStats } from '../node-info.ts';
import { sysinfoXml, type NodeCpuMap, type NodeCpuStats, type VcpuInfo } from '../../contracts/host/host-reads.ts';
import type { DomainStats } from '../../contracts/domain/stats.ts';
import { MANAGED_SAVE_FILE, managedSavePath, restoreGuestImage, restoreGuestState, saveGuestImage, saveGuestState } from './managed-save.ts';
import { formatDomainXml } from '../../contracts/xml/domain.ts';
import { allocatePort, findQemuBinary, processCmdline, processState, qemuAvailable } from './host.ts';
import { liveCreate, liveDelete, liveRevert, liveTags, offlineCreate, offlineDelete, offlineRevert, offlineTags, snapshotDisks, type Hmp } from './snapshots.ts';
import type { SnapshotTask } from '../../contracts/domain/snapshots.ts';
import { withOverlays, withSources, type ExternalDisk } from '../../contracts/domain/external-snapshots.ts';
import { abandonOverlays, createOverlays, liveCommit, liveSnapshot, offlineCommit } from './external-snapshots.ts';
import { isMarked, unmark, type TaskMarker } from './task-markers.ts';
import { toQnum, type KeyPress } from '../../contracts/domain/keycodes.ts';
import { QmpClient, QmpClosedError, QmpError, QmpTimeoutError, connectWhenReady, type QmpEvent } from './qmp.ts';

/** A tap device prepared for one interface by the host's network side. */
export interface PreparedInterface {
  ifname: string;
  /** Let qemu open /dev/vhost-net for this tap (virtio models only). */
  vhost?: boolean;
  /** Where the tap is plugged, reported back for the domain's runtime view. */
  bridge?: string;
  network?: string;
}

export interface QemuDriverOptions {
  /** Per-domain runtime state lives in `<stateDir>/qemu/<uuid>/`. */
  stateDir: string;
  /** qemu-system binary; defaults to `<emulator>` of the domain, then the one on PATH. */
  binary?: string;
  /**
   * `auto` (default): KVM for `type='kvm'` domains when it really runs guests, TCG otherwise.
   * `kvm`: refuse `type='kvm'` domains when KVM does not work (libvirt's behaviour). `tcg`: never KVM.
   */
  accel?: 'auto' | 'kvm' | 'tcg';
  /**
   * Creates the tap devices for a domain's interfaces before qemu starts, one entry per
   * `def.devices.interfaces` element (`undefined` where none is needed, e.g. type='user').
   * Taps passed to `start()` in `opts.taps` take precedence.
   */
  prepareInterfaces?: (def: DomainDefinition) => Promise<Array<PreparedInterface | undefined>>;
  /** Called once a domain's qemu is gone, with the tap names it used. Failures are ignored. */
  releaseInterfaces?: (uuid: string, ifnames: string[]) => Promise<void>;
  /**
   * Creates the tap device for an interface hot-plugged into a running domain. Without it, only
   * `type='ethernet'` interfaces naming an existing tap in `<target dev>` can be attached. The tap
   * goes back through `releaseInterfaces` when the interface is detached or the domain stops.
   */
  plugInterface?: (uuid: string, iface: InterfaceModel) => Promise<{ ifname: string; bridge?: string; network?: string }>;
  /** How long a guest gets to release a detached NIC when `detachInterface()` gets no abort signal. */
  unplugTimeoutMs?: number;
  /** How often the eject request is repeated while the guest has not released a detached NIC. */
  unplugRetryMs?: number;
  /** How long qemu gets to exit after `quit`, and again after SIGTERM, before it is killed. */
  destroyGraceMs?: number;
  /** Deadline for a guest to power off when `shutdown()` gets no abort signal. */
  shutdownTimeoutMs?: number;
  /**
   * How often the ACPI power button is pressed again while a shutdown waits: a press the guest
   * missed (it was still booting, or busy) is not the end of the shutdown, its deadline is.
   */
  acpiResendMs?: number;
  /** How long a freshly launched qemu gets to open its monitor socket. */
  startTimeoutMs?: number;
  /** Where VNC displays listen when the definition names no address. */
  vncListen?: string;
}

export interface QemuStartOptions extends OperationOptions {
  paused?: boolean;
  /** Resume from the managed save file if there is one; without it, a file left there is stale and goes. */
  restore?: boolean;
  /** virsh restore: start from this saved image (checked by the agent); the image stays. */
  restoreFile?: string;
  /** Tap device names by interface MAC address (lower case) or by interface index ("0", "1", ...). */
  taps?: Record<string, string>;
}

/** What the driver writes to `<stateDir>/qemu/<uuid>/domain.json` to find a running qemu again. */
interface DomainRecord {
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

interface NicRecord {
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

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One running qemu process the driver looks after. */
class Domain {
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

const RUNNING_BOOTED: ObservedState = { state: 'running', reason: 'booted' };
const SHUTOFF_SHUTDOWN: ObservedState = { state: 'shutoff', reason: 'shutdown' };
const SHUTOFF_DESTROYED: ObservedState = { state: 'shutoff', reason: 'destroyed' };
const SHUTOFF_CRASHED: ObservedState = { state: 'shutoff', reason: 'crashed' };
const SHUTOFF_FAILED: ObservedState = { state: 'shutoff', reason: 'failed' };
const SHUTOFF_SAVED: ObservedState = { state: 'shutoff', reason: 'saved' };
const SHUTOFF_FROM_SNAPSHOT: ObservedState = { state: 'shutoff', reason: 'from-snapshot' };
const SHUTOFF_UNKNOWN: ObservedState = { state: 'shutoff', reason: 'unknown' };

const notRunning = () => new VirtError('operation-invalid', 'Requested operation is not valid: domain is not running');

const randomMac = (): string => `52:54:00:${[...randomBytes(3)].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;

const runtimeOf = (n: NicRecord & { ifname: string }): RuntimeInterface => ({
  mac: n.mac,
  ifname: n.ifname,
  ...(n.bridge ? { bridge: n.bridge } : {}),
  ...(n.network ? { network: n.network } : {}),
});

/** Records written before NICs were tracked: the boot-time NICs, with their taps from the command line. */
const nicsFromArgs = (rec: DomainRecord): NicRecord[] => {
  const taps = new Map<string, string>();
  rec.args.forEach((a, i) => {
    if (a !== '-netdev') return;
    try {
      const o = JSON.parse(rec.args[i + 1] ?? '') as { id?: unknown; ifname?: unknown };
      if (typeof o.id === 'string' && typeof o.ifname === 'string') taps.set(o.id, o.ifname);
    } catch {
      // Not JSON: not one of ours.
    }
  });
  return rec.def.devices.interfaces.map((nic, i) => {
    const ifname = taps.get(`hostnet${i}`);
    return { mac: (nic.mac ?? defaultMac(rec.uuid, i)).toLowerCase(), index: i, ...(ifname ? { ifname } : {}) };
  });
};

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

const abortReason = (signal: AbortSignal | undefined, what: string): VirtError => {
  const r: unknown = signal?.reason;
  if (isVirtError(r)) return r;
  return new VirtError('timeout', `${what}: operation timed out`);
};

/** Resolves when `p` does, or rejects when `signal` aborts or `ms` passes. */
const within = async <T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined, what: string): Promise<T> => {
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

const FIRMWARE_RESET_WINDOW_MS = 5000;

/** Files that outlive the process: what the guest printed and what qemu said. */
const KEEP_AFTER_STOP = new Set(['console.log', 'console.log.1', 'qemu.log', MANAGED_SAVE_FILE]);

/**
 * The QEMU/KVM hypervisor driver: runs each domain as a qemu-system process it launches paused,
 * then drives and watches over QMP. qemu outlives the driver; a new driver on the same state
 * directory finds running guests again instead of starting them twice.
 */
export class QemuDriver implements HypervisorDriver {
  readonly name = 'qemu';
  private readonly domains = new Map<string, Domain>();
  /** How domains that are no longer running ended, for state() and idempotent stops. */
  private readonly stopped = new Map<string, ObservedState>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly listeners = new Set<(o: DomainObservation) => void>();
  private readonly reservedPorts = new Set<number>();
  private readonly qemuDir: string;
  private closed = false;
  private saveSeq = 0;
  private readonly ready: Promise<void>;

  constructor(private readonly opts: QemuDriverOptions) {
    this.qemuDir = join(opts.stateDir, 'qemu');
    this.ready = this.rescan().catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // HypervisorDriver

  async capabilities(): Promise<DriverCapabilities> {
    const avail = await qemuAvailable();
    const accel = this.opts.accel ?? 'auto';
    const kvmRuns = avail.kvm && accel !== 'tcg';
    return {
      driver: this.name,
      domainTypes: kvmRuns || accel === 'auto' ? ['kvm', 'qemu'] : ['qemu'],
      cpus: cpus().length,
      memoryKiB: Math.floor(totalmem() / 1024),
      features: {
        accel: kvmRuns ? 'kvm' : 'tcg',
        ...(avail.binary ? { binary: this.opts.binary ?? avail.binary } : {}),
        ...(avail.version ? { qemu: avail.version } : {}),
        ...(!avail.kvm && avail.reason ? { kvm: avail.reason } : {}),
      },
    };
  }

  async list(): Promise<DriverDomain[]> {
    await this.ready;
    await this.rescan();
    const out: DriverDomain[] = [];
    for (const d of this.domains.values()) {
      if (!d.alive) continue;
      const s = await this.liveState(d).catch(() => d.rec.state);
      out.push({ uuid: d.uuid, name: d.rec.name, ...s });
    }
    return out;
  }

  async state(uuid: string): Promise<ObservedState> {
    await this.ready;
    const d = this.domains.get(uuid) ?? (await this.withLock(uuid, () => this.reattach(uuid)));
    if (d?.alive) return this.liveState(d).catch(() => d.rec.state);
    return this.stopped.get(uuid) ?? { state: 'shutoff', reason: 'unknown' };
  }

  async start(def: DomainDefinition, opts: QemuStartOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const existing = await this.find(def.uuid);
      // Idempotent: a redelivered start for a guest that is already up reports it as it is.
      if (existing) return this.liveState(existing).catch(() => existing.rec.state);
      return this.launch(def, opts);
    });
  }

  async shutdown(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) return this.stopped.get(def.uuid) ?? SHUTOFF_SHUTDOWN;
      d.rec.def = def;
      return this.during(d, 'shutdown', async () => {
        const qmp = await this.monitor(d);
        const status = await this.status(d);
        if (status !== 'shutdown') {
          const poweredOff = qmp.waitForEvent((e) => e.event === 'SHUTDOWN' && e.data?.guest === true, {
            timeoutMs: Infinity,
          });
          poweredOff.catch(() => undefined);
          opts.progress?.('sent ACPI power button; waiting for the guest to power off');
          await qmp.execute('system_powerdown');
          const deadline = opts.signal ? Infinity : (this.opts.shutdownTimeoutMs ?? 120_000);
          const resend = setInterval(() => {
            opts.progress?.('ACPI power button pressed again');
            qmp.execute('system_powerdown').catch(() => undefined);
          }, this.opts.acpiResendMs ?? 10_000);
          try {
            await within(Promise.race([poweredOff, d.exited]), deadline, opts.signal, `shutdown of domain '${d.rec.name}'`);
          } finally {
            clearInterval(resend);
          }
          if (!d.alive) return this.stopped.get(d.uuid) ?? SHUTOFF_SHUTDOWN;
        }
        return this.applyLifecycle(d, def.onPoweroff, 'poweroff');
      });
    });
  }

  async destroy(uuid: string, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(uuid, async () => {
      const d = await this.find(uuid);
      if (!d) return this.stopped.get(uuid) ?? SHUTOFF_DESTROYED;
      return this.during(d, 'destroy', () => this.terminate(d, SHUTOFF_DESTROYED, opts));
    });
  }

  async suspend(uuid: string, _opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(uuid, async () => {
      const d = await this.find(uuid);
      if (!d) throw notRunning();
      return this.during(d, 'suspend', async () => {
        const status = await this.status(d);
        if (status === 'shutdown') throw notRunning();
        if (status !== 'running') return this.record(d, mapRunState(status, d.rec.state));
        await (await this.monitor(d)).execute('stop');
        return this.record(d, { state: 'paused', reason: 'user' });
      });
    });
  }

  async resume(uuid: string, _opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(uuid, async () => {
      const d = await this.find(uuid);
      if (!d) throw notRunning();
      return this.during(d, 'resume', async () => {
        const status = await this.status(d);
        if (status === 'running') return this.record(d, mapRunState(status, d.rec.state));
        if (status === 'shutdown' || status === 'guest-panicked' || status === 'inmigrate') {
          throw new VirtError('operation-invalid', `Requested operation is not valid: domain is not paused (${status})`);
        }
        // A guest started paused meets its firmware now.
        d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
        await (await this.monitor(d)).execute('cont');
        return this.record(d, { state: 'running', reason: 'unpaused' });
      });
    });
  }

  async reboot(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) throw notRunning();
      d.rec.def = def;
      return this.during(d, 'reboot', async () => this.applyLifecycle(d, def.onReboot, 'reboot', opts));
    });
  }

  /**
   * qemuDomainManagedSave: the guest is paused, its state migrated into the domain's save file, and
   * qemu quits, leaving it shut off (saved). A guest already saved (a redelivered task) reports so.
   */
  async managedSave(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) {
        if (existsSync(managedSavePath(this.domainDir(def.uuid)))) return SHUTOFF_SAVED;
        throw notRunning();
      }
      return this.during(d, 'managedsave', async () => {
        const qmp = await this.monitor(d);
        const status = await this.status(d);
        if (status === 'shutdown') throw notRunning();
        if (status === 'running') await qmp.execute('stop');
        opts.progress?.('saving the guest state');
        try {
          await saveGuestState(qmp, d.dir, opts.signal);
        } catch (e) {
          // Not saved: the guest goes on as it was.
          if (status === 'running') await qmp.execute('cont').catch(() => undefined);
          throw e;
        }
        return this.terminate(d, SHUTOFF_SAVED, opts);
      });
    });
  }

  /**
   * qemuDomainSaveFlags: as managedsave, into the caller's file behind libvirt's header, which
   * records the definition and whether the guest ran. A guest gone with its image in place was saved
   * by an earlier delivery of the same task.
   */
  async saveTo(def: DomainDefinition, file: string, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) {
        if (existsSync(file)) return SHUTOFF_SAVED;
        throw notRunning();
      }
      return this.during(d, 'save', async () => {
        const qmp = await this.monitor(d);
        const status = await this.status(d);
        if (status === 'shutdown') throw notRunning();
        if (status === 'running') {
          d.rec.savingRunning = true;
          await this.save(d);
          await qmp.execute('stop');
        }
        const running = d.rec.savingRunning === true;
        opts.progress?.('saving the guest state');
        try {
          await saveGuestImage(qmp, file, formatDomainXml(def), running, opts.signal);
        } catch (e) {
          if (running) await qmp.execute('cont').catch(() => undefined);
          delete d.rec.savingRunning;
          await this.save(d).catch(() => undefined);
          throw e;
        }
        return this.terminate(d, SHUTOFF_SAVED, opts);
      });
    });
  }

  /**
   * An internal snapshot (drivers/qemu/snapshots.ts): savevm of a running guest, disks and memory;
   * qemu-img on each disk of a shut off one. A tag the images already hold is the snapshot taken.
   */
  async snapshotCreate(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    if (snap.external) return this.externalCreate(def, snap, snap.external, opts);
    return this.withLock(def.uuid, async () => {
      const files = snapshotDisks(def);
      const marker = this.snapshotMarker(def, snap, opts);
      const d = await this.find(def.uuid);
      if (!d) {
        await offlineCreate(files, snap.name, marker, opts.signal);
        return this.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
      }
      return this.during(d, 'snapshot-create', async () => {
        await liveCreate(this.hmp(await this.monitor(d), opts), snap.name, marker);
        return this.record(d, await this.liveState(d));
      });
    });
  }

  /**
   * qemuSnapshotRevert: a snapshot with memory is loaded into a running qemu (one is started paused
   * for a shut off guest); one without is applied to the images with qemu stopped, and the guest
   * started from them when asked. Either way the guest is left as `snap.target` says, from snapshot.
   */
  async snapshotRevert(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const files = snapshotDisks(def);
      let d = await this.find(def.uuid);
      if (snap.withMemory) {
        if (!d) {
          await this.launch(def, { ...opts, paused: true });
          d = await this.find(def.uuid);
          if (!d) throw notRunning();
        }
        const live = d;
        return this.during(live, 'snapshot-revert', async () => {
          const qmp = await this.monitor(live);
          await liveRevert(this.hmp(qmp, opts), snap.name);
          const paused = snap.target === 'paused';
          await qmp.execute(paused ? 'stop' : 'cont');
          return this.record(live, { state: paused ? 'paused' : 'running', reason: 'from-snapshot' });
        });
      }
      const live = d;
      if (live) await this.during(live, 'snapshot-revert', () => this.terminate(live, SHUTOFF_FROM_SNAPSHOT, opts));
      await offlineRevert(files, snap.name, opts.signal);
      this.stopped.set(def.uuid, SHUTOFF_FROM_SNAPSHOT);
      if (snap.target !== 'running' && snap.target !== 'paused') return SHUTOFF_FROM_SNAPSHOT;
      const started = await this.launch(def, { ...opts, paused: snap.target === 'paused' });
      const now = await this.find(def.uuid);
      return now ? this.record(now, { state: started.state, reason: 'from-snapshot' }) : started;
    });
  }

  /** delvm of each tag on a running guest, qemu-img on a shut off one's images; a tag gone already is skipped. */
  async snapshotDelete(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    if (snap.external) return this.externalDelete(def, snap.external, opts);
    return this.withLock(def.uuid, async () => {
      const names = snap.names ?? [];
      const d = await this.find(def.uuid);
      if (!d) {
        await offlineDelete(snapshotDisks(def), names, opts.signal);
        return this.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
      }
      return this.during(d, 'snapshot-delete', async () => {
        await liveDelete(this.hmp(await this.monitor(d), opts), names);
        return this.liveState(d);
      });
    });
  }

  /**
   * An external disk-only snapshot (drivers/qemu/external-snapshots.ts): the overlays are created,
   * then a running guest's disks switch to them in one transaction; a shut off guest's definition
   * names them from its next start. The task's marker tells a repeated run its own overlays from a
   * file that was there before.
   */
  private externalCreate(def: DomainDefinition, snap: SnapshotTask, disks: ExternalDisk[], opts: OperationOptions): Promise<ObservedState> {
    return this.withLock(def.uuid, async () => {
      await createOverlays(disks, this.snapshotMarker(def, snap, opts), opts.signal);
      const d = await this.find(def.uuid);
      if (!d) return this.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
      return this.during(d, 'snapshot-create', async () => {
        await liveSnapshot(await this.monitor(d), disks, opts);
        // Statistics and a restart by a lifecycle action find the disks where they now are.
        d.rec.def = withOverlays(d.rec.def, disks);
        return this.record(d, await this.liveState(d));
      });
    });
  }

  /**
   * A snapshot-create the log records as failed while the host may have taken it. External overlays
   * are merged back or removed (abandonOverlays), so the guest's disks are the ones its definition
   * names. An internal tag stays: it changes nothing the guest uses, a later request of the name
   * takes it anew (liveCreate), and one of the same name may already have done so and be recorded.
   */
  async snapshotAbandon(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<void> {
    await this.ready;
    const marker = this.snapshotMarker(def, snap, opts);
    if (!isMarked(marker)) return;
    const external = snap.external;
    if (external) {
      await this.withLock(def.uuid, async () => {
        const d = await this.find(def.uuid);
        const { kept } = await abandonOverlays(d ? await this.monitor(d) : undefined, external, opts);
        if (d) d.rec.def = withSources(d.rec.def, external);
        if (kept.length) opts.progress?.(`kept ${kept.join(', ')}: it holds data the guest no longer uses`);
      });
    }
    await unmark(marker);
  }

  /** The marker of a snapshot task (task-markers.ts): its id, or for a caller without one the request's name and time. */
  private snapshotMarker(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions): TaskMarker {
    return { dir: join(this.qemuDir, 'snapshot-tasks', def.uuid), key: opts.taskId ?? `${snap.name}@${snap.record?.creationTime ?? ''}` };
  }

  /** The overlays merged back into the images below them: block-commit on a running guest, qemu-img on a shut off one. */
  private externalDelete(def: DomainDefinition, disks: ExternalDisk[], opts: OperationOptions): Promise<ObservedState> {
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) {
        await offlineCommit(disks, opts.signal);
        return this.stopped.get(def.uuid) ?? SHUTOFF_UNKNOWN;
      }
      return this.during(d, 'snapshot-delete', async () => {
        await liveCommit(await this.monitor(d), disks, opts);
        d.rec.def = withSources(d.rec.def, disks);
        return this.record(d, await this.liveState(d));
      });
    });
  }

  async snapshotNames(def: DomainDefinition): Promise<string[]> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (d) return liveTags(this.hmp(await this.monitor(d), {}));
      const files = snapshotDisks(def);
      return files.length ? offlineTags(files[0]!) : [];
    });
  }

  private hmp(qmp: QmpClient, opts: OperationOptions): Hmp {
    // savevm and loadvm copy the guest's memory: minutes for a large one, bounded by the task's deadline.
    return (command) => qmp.execute<string>('human-monitor-command', { 'command-line': command }, { timeoutMs: 600_000, ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  /** qemuDomainReset: system_reset, the guest's reset button; a paused guest stays paused. */
  async reset(uuid: string, _opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return this.withLock(uuid, async () => {
      const d = await this.find(uuid);
      if (!d) throw notRunning();
      return this.during(d, 'reset', async () => {
        const status = await this.status(d);
        if (status === 'shutdown') throw notRunning();
        // The firmware resets the machine once more as it comes up: not a reboot of the guest's own.
        d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
        await (await this.monitor(d)).execute('system_reset');
        return this.record(d, mapRunState(await this.status(d), d.rec.state));
      });
    });
  }

  /** qemuDomainSendKey: QMP send-key with every key as qemu's number, held `holdtime` ms (qemu's 100 by default). */
  async sendKey(uuid: string, keys: KeyPress, _opts: OperationOptions = {}): Promise<void> {
    const qnums = toQnum(keys);
    await this.onRunning(uuid, 'send-key', async (d) => {
      const args = { keys: qnums.map((data) => ({ type: 'number', data })), ...(keys.holdtimeMs ? { 'hold-time': keys.holdtimeMs } : {}) };
      await (await this.monitor(d)).execute('send-key', args);
    });
  }

  /**
   * qemuDomainBlockResize: QMP block_resize on the node that reads the disk's image, found by its file
   * (a disk given at boot and one plugged later are named differently); the definition stays as it is.
   */
  async blockResize(def: DomainDefinition, target: string, bytes: number, _opts: OperationOptions = {}): Promise<void> {
    await this.onRunning(def.uuid, 'block-resize', async (d) => {
      const disk = def.devices.disks.find((x) => x.target.dev === target);
      const file = disk?.source?.file ?? disk?.source?.dev;
      if (!disk || !file) throw new VirtError('invalid-arg', `disk '${target}' was not found in the domain config`);
      const qmp = await this.monitor(d);
      const blocks = await qmp.execute<Array<{ inserted?: { file?: string; 'node-name'?: string; image?: { filename?: string } } }>>('query-block');
      const node = blocks.find((b) => b.inserted?.file === file || b.inserted?.image?.filename === file)?.inserted?.['node-name'];
      if (!node) throw new VirtError('invalid-arg', `disk '${target}' was not found in the domain config`);
      await qmp.execute('block_resize', { 'node-name': node, size: bytes });
    });
  }

  /** qemuDomainScreenshot: QMP screendump (PPM); a screen after the first is named by its video device. */
  async screenshot(def: DomainDefinition, screen: number, file: string, _opts: OperationOptions = {}): Promise<void> {
    await this.onRunning(def.uuid, 'screenshot', async (d) => {
      await (await this.monitor(d)).execute('screendump', { filename: file, ...(screen > 0 ? { device: `video${screen}`, head: 0 } : {}) });
    });
  }

  /** qemuDomainInjectNMI: QMP inject-nmi, to every vCPU of an x86 guest. */
  async injectNmi(uuid: string, _opts: OperationOptions = {}): Promise<void> {
    await this.onRunning(uuid, 'inject-nmi', async (d) => {
      await (await this.monitor(d)).execute('inject-nmi');
    });
  }

  async attachInterface(def: DomainDefinition, iface: InterfaceModel, opts: OperationOptions = {}): Promise<RuntimeInterface> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) throw notRunning();
      return this.during(d, 'attach-interface', () => this.hotplugNic(d, iface, opts));
    });
  }

  async detachInterface(def: DomainDefinition, mac: string, opts: OperationOptions = {}): Promise<void> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) throw notRunning();
      return this.during(d, 'detach-interface', () => this.unplugNic(d, mac.toLowerCase(), opts));
    });
  }

  async attachDisk(def: DomainDefinition, disk: DiskModel, opts: OperationOptions = {}): Promise<void> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) throw notRunning();
      return this.during(d, 'attach-disk', async () => {
        const dev = disk.target.dev;
        // Recorded first: a driver that dies before qemu answers still knows what it may have plugged.
        d.rec.disks = [...(d.rec.disks ?? []).filter((x) => x.target.dev !== dev), disk];
        await this.persist(d);
        try {
          await plugDisk(await this.monitor(d), disk, opts);
        } catch (e) {
          d.rec.disks = d.rec.disks.filter((x) => x !== disk);
          await this.persist(d);
          throw e;
        }
      });
    });
  }

  async detachDisk(def: DomainDefinition, target: string, opts: OperationOptions = {}): Promise<void> {
    await this.ready;
    const disk = def.devices.disks.find((x) => x.target.dev === target) ?? DiskModel.parse({ target: { dev: target, bus: 'virtio' } });
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) throw notRunning();
      const timing = { timeoutMs: this.opts.unplugTimeoutMs ?? 30_000, retryMs: this.opts.unplugRetryMs ?? 5000 };
      return this.during(d, 'detach-disk', async () => {
        await unplugDisk(await this.monitor(d), disk, timing, d.rec.name, opts);
        d.rec.disks = (d.rec.disks ?? []).filter((x) => x.target.dev !== target);
        await this.persist(d);
      });
    });
  }

  /** The boot-time disks and the hot-plugged ones, each as long as qemu still has its device. */
  async runtimeDisks(def: DomainDefinition): Promise<DiskModel[] | undefined> {
    await this.ready;
    const d = await this.find(def.uuid);
    if (!d || !d.alive) return undefined;
    const have = await presentDevices(await this.monitor(d));
    const plugged = (disk: DiskModel) => (disk.target.bus ?? 'virtio') !== 'virtio' || have.has(diskIds(disk).device);
    const hot = (d.rec.disks ?? []).filter(plugged);
    const cold = d.rec.def.devices.disks.filter((x) => plugged(x) && !hot.some((h) => h.target.dev === x.target.dev));
    return [...cold, ...hot];
  }

  async updateDisk(def: DomainDefinition, disk: DiskModel, _opts: OperationOptions = {}): Promise<void> {
    await this.ready;
    return this.withLock(def.uuid, async () => {
      const d = await this.find(def.uuid);
      if (!d) throw notRunning();
      return this.during(d, 'update-disk', async () => changeMedia(await this.monitor(d), disk));
    });
  }

  onObservation(listener: (o: DomainObservation) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The guest's counters now (drivers/qemu/stats.ts); beside operations, without their lock: it only reads. */
  async stats(def: DomainDefinition): Promise<DomainStats> {
    await this.ready;
    const d = await this.find(def.uuid);
    if (!d) throw notRunning();
    const qmp = await this.monitor(d);
    return qemuStats(qmp, { def: d.rec.def, pid: d.pid, nics: d.rec.nics ?? [], balloon: memballoonOf(d.rec.def).model === 'virtio' });
  }

  /** virsh setmem --live: the balloon's target, which the guest then gives back or takes. */
  async setMemory(uuid: string, kib: number): Promise<void> {
    await this.ready;
    return this.withLock(uuid, async () => {
      const d = await this.find(uuid);
      if (!d) throw notRunning();
      if (memballoonOf(d.rec.def).model !== 'virtio') {
        throw new VirtError('operation-invalid', 'Requested operation is not valid: Unable to change memory of active domain without the balloon device and guest OS balloon driver');
      }
      await this.during(d, 'setmem', async () => (await this.monitor(d)).execute('balloon', { value: kib * 1024 }));
    });
  }

  /** virsh domcapabilities: the binary probed once per accelerator (domain-caps.ts). */
  async domainCapabilities(req: DomainCapsRequest): Promise<string> {
    const avail = await qemuAvailable();
    const binary = this.opts.binary ?? avail.binary;
    if (!binary) throw new VirtError('operation-unsupported', 'no qemu binary on this host');
    return qemuDomainCaps(binary, avail.kvm && (this.opts.accel ?? 'auto') !== 'tcg', req);
  }

  /** virsh vcpuinfo: the vCPU threads qemu names, read in /proc (vcpu-info.ts); beside operations, as stats. */
  async vcpuInfo(def: DomainDefinition): Promise<VcpuInfo[]> {
    await this.ready;
    const d = await this.find(def.uuid);
    if (!d) throw notRunning();
    return qemuVcpuInfo(await this.monitor(d), d.pid);
  }

  /**
   * virsh domtime needs the guest agent, a channel virtplane's guests are not given: libvirt's
   * answer for a running guest without one.
   */
  async domainTime(def: DomainDefinition): Promise<{ seconds: number; nseconds: number }> {
    await this.ready;
    if (!(await this.find(def.uuid))) throw notRunning();
    throw new VirtError('argument-unsupported', 'QEMU guest agent is not configured');
  }

  /**
   * virsh maxvcpus: the `<vcpu max>` of the domain capabilities, as virsh reads it first; a type
   * this driver does not run is libvirt's qemuConnectGetMaxVcpus error.
   */
  async maxVcpus(type?: string): Promise<number> {
    const t = type?.toLowerCase();
    if (t !== undefined && t !== 'qemu' && t !== 'kvm') throw new VirtError('invalid-arg', `unknown type '${type}'`);
    const xml = await this.domainCapabilities(t ? { virttype: t } : {});
    const m = /<vcpu max='(\d+)'\/>/.exec(xml);
    if (!m) throw new VirtError('internal-error', 'the domain capabilities give no vCPU maximum');
    return Number(m[1]);
  }

  /** The host's own numbers: the guests run on it (node-info.ts). */
  async nodeCpuStats(cpu: number): Promise<NodeCpuStats> {
    return nodeCpuStats(cpu);
  }

  async nodeCpuMap(): Promise<NodeCpuMap> {
    return nodeCpuMap();
  }

  /** The host's SMBIOS; a machine whose firmware gives none is libvirt's error. */
  async sysinfo(): Promise<string> {
    const facts = await hostSmbios();
    if (!Object.values(facts).some((entries) => entries.some(([, v]: [string, string | undefined]) => v))) {
      throw new VirtError('internal-error', 'Host SMBIOS information is not available');
    }
    return sysinfoXml(facts);
  }

  /** virsh setvcpus --live: vCPU hot-plug and unplug through QMP (vcpus.ts). */
  async setVcpus(uuid: string, count: number, opts: OperationOptions = {}): Promise<void> {
    await this.onRunning(uuid, 'setvcpus', async (d) => {
      const unplugged = (await this.accelFor(d.rec.def)) === 'tcg' ? join(this.domainDir(uuid), VCPU_UNPLUGGED) : undefined;
      await setOnlineVcpus(await this.monitor(d), count, opts.signal, unplugged);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.ready;
    this.listeners.clear();
    for (const d of this.domains.values()) {
      await d.saving;
      d.detached = true;
      d.stopPolling();
      d.child?.removeAllListeners('exit');
      await d.qmp?.close().catch(() => undefined);
    }
    this.domains.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Extras beyond HypervisorDriver

  /** The tap devices a running domain uses (hot-plugged ones too), for the network side to reconcile after a restart. */
  interfaces(uuid: string): string[] {
    return this.domains.get(uuid)?.rec.ifnames ?? [];
  }

  /** Where the domain's serial console is logged and its pty, while it runs. */
  console(uuid: string): { log: string; pty?: string } | undefined {
    const d = this.domains.get(uuid);
    if (!d) return undefined;
    return { log: d.rec.consoleLog, ...(d.rec.consolePty ? { pty: d.rec.consolePty } : {}) };
  }

  /** The running qemu's pid, or undefined. */
  pid(uuid: string): number | undefined {
    const d = this.domains.get(uuid);
    return d?.alive ? d.pid : undefined;
  }

  /**
   * Runs one QMP command on a running domain's monitor (`virsh qemu-monitor-command`); qemu serves
   * a single monitor client, which is the driver's, so this is the only way in while it runs.
   */
  async monitorCommand<T = unknown>(uuid: string, command: string, args?: Record<string, unknown>): Promise<T> {
    await this.ready;
    const d = await this.find(uuid);
    if (!d) throw notRunning();
    return (await this.monitor(d)).execute<T>(command, args);
  }

  /**
   * Opens the guest's console (virDomainOpenConsole): its pty, chosen as libvirt chooses it. The
   * caller owns the stream; destroying it lets go of the console and leaves the guest running.
   */
  async openConsole(uuid: string, devName?: string): Promise<{ device: string; stream: Duplex }> {
    await this.ready;
    const d = await this.find(uuid);
    if (!d) throw notRunning();
    const chr = pickConsole(d.rec.def, devName);
    const devs = await (await this.monitor(d)).execute<QmpChardev[]>('query-chardev');
    const pty = chardevPtys(devs).find((c) => c.alias === chr.alias);
    if (!pty) throw new VirtError('internal-error', `internal error: character device ${chr.alias} is not using a PTY`);
    return { device: chr.alias, stream: await openPty(pty.path) };
  }

  /** What libvirt's live XML adds for a running guest: its VNC display's port and its ptys (QMP). */
  async runtimeDevices(uuid: string): Promise<RuntimeDevices | undefined> {
    await this.ready;
    const d = await this.find(uuid);
    if (!d) return undefined;
    const qmp = await this.monitor(d);
    const chardevs = chardevPtys(await qmp.execute<QmpChardev[]>('query-chardev'));
    const graphics = d.rec.def.devices.graphics.some((g) => g.type === 'vnc') ? vncDisplays(d.rec.def, await qmp.execute<QmpVnc>('query-vnc')) : [];
    return { graphics, chardevs };
  }

  /** VNC ports in use by a running domain, by graphics index. */
  vncPorts(uuid: string): number[] {
    return this.domains.get(uuid)?.rec.vncPorts ?? [];
  }

  /** The command line the driver would run for `def` (no side effects), for `domxml-to-native`. */
  async commandFor(def: DomainDefinition, taps: Record<string, string> = {}): Promise<QemuCommand> {
    const dir = this.domainDir(def.uuid);
    return buildQemuCommand(def, {
      domainDir: dir,
      monitor: { path: this.socketPath(dir, def.uuid) },
      pidfile: join(dir, 'qemu.pid'),
      consoleLog: join(dir, 'console.log'),
      accel: await this.accelFor(def),
      emulator: this.binaryFor(def),
      netdevs: def.devices.interfaces.map((nic, i) => {
        const t = (nic.mac && taps[nic.mac]) ?? taps[String(i)];
        return t ? { tap: t } : undefined;
      }),
      vncPorts: def.devices.graphics.map((g) => g.port ?? 5900),
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Launching

  private domainDir(uuid: string): string {
    return join(this.qemuDir, uuid);
  }

  /** sun_path holds 108 bytes; a deep state directory gets its socket under the temp dir instead. */
  private socketPath(dir: string, uuid: string): string {
    const p = join(dir, 'qmp.sock');
    return Buffer.byteLength(p) < 100 ? p : join(tmpdir(), `virtplane-qmp-${uuid}.sock`);
  }

  private binaryFor(def: DomainDefinition): string {
    const b = this.opts.binary ?? def.devices.emulator;
    if (b && existsSync(b)) return b;
    const found = findQemuBinary();
    if (!found) throw new VirtError('operation-failed', 'qemu-system-x86_64 not found on this host');
    return found;
  }

  private async accelFor(def: DomainDefinition): Promise<'kvm' | 'tcg'> {
    const mode = this.opts.accel ?? 'auto';
    if (def.type === 'qemu' || mode === 'tcg') return 'tcg';
    if (def.type !== 'kvm') {
      throw new VirtError('operation-unsupported', `unsupported configuration: domain type '${def.type}' is not handled by the QEMU driver`);
    }
    const avail = await qemuAvailable();
    if (avail.kvm) return 'kvm';
    if (mode === 'kvm') {
      throw new VirtError(
        'operation-unsupported',
        `unsupported configuration: domain type 'kvm' cannot run here: ${avail.reason ?? 'KVM is not available'}`,
      );
    }
    return 'tcg';
  }

  private async resolveTaps(
    def: DomainDefinition,
    opts: QemuStartOptions,
  ): Promise<Array<(NetdevBackend & { bridge?: string; network?: string }) | undefined>> {
    const nics = def.devices.interfaces;
    const given = opts.taps ?? {};
    const fromOpts = nics.map((nic, i) => (nic.mac ? given[nic.mac.toLowerCase()] : undefined) ?? given[String(i)]);
    const needsTap = (i: number) => nics[i]!.type !== 'user' && !fromOpts[i];
    let prepared: Array<PreparedInterface | undefined> = [];
    if (nics.some((_, i) => needsTap(i)) && this.opts.prepareInterfaces) {
      opts.progress?.('preparing network interfaces');
      prepared = await this.opts.prepareInterfaces(def);
    }
    return nics.map((nic, i) => {
      if (nic.type === 'user') return undefined;
      const name = fromOpts[i];
      if (name) return { tap: name };
      const p = prepared[i];
      if (p) {
        return {
          tap: p.ifname,
          ...(p.vhost ? { vhost: true } : {}),
          ...(p.bridge ? { bridge: p.bridge } : {}),
          ...(p.network ? { network: p.network } : {}),
        };
      }
      // <interface type='ethernet'><target dev='tapX'/> names a tap the administrator made.
      if (nic.type === 'ethernet' && nic.targetDev && !nic.targetDev.includes('%')) return { tap: nic.targetDev };
      return undefined;
    });
  }

  /** Serialised across domains: two starts probing at once would both find the same port free. */
  private allocateVnc(def: DomainDefinition): Promise<number[]> {
    return this.withLock(' vnc-ports', () => this.allocateVncNow(def));
  }

  private async allocateVncNow(def: DomainDefinition): Promise<number[]> {
    const inUse = new Set([...this.reservedPorts, ...[...this.domains.values()].flatMap((d) => d.rec.vncPorts)]);
    const ports: number[] = [];
    for (const g of def.devices.graphics) {
      if (g.type !== 'vnc') continue;
      const fixed = g.autoport !== true && g.port !== undefined && g.port >= 5900 ? g.port : undefined;
      const port = fixed ?? (await allocatePort(graphicsListenOf(g) ?? this.opts.vncListen ?? '127.0.0.1', inUse));
      inUse.add(port);
      this.reservedPorts.add(port);
      ports.push(port);
    }
    return ports;
  }

  private async launch(def: DomainDefinition, opts: QemuStartOptions): Promise<ObservedState> {
    const uuid = def.uuid;
    const dir = this.domainDir(uuid);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const files = {
      pidfile: join(dir, 'qemu.pid'),
      qmpSocket: this.socketPath(dir, uuid),
      consoleLog: join(dir, 'console.log'),
      qemuLog: join(dir, 'qemu.log'),
      masterKey: join(dir, 'master-key.aes'),
    };
    // Keep the previous boot's console for post-mortems; this boot starts a fresh log.
    await rename(files.consoleLog, `${files.consoleLog}.1`).catch(() => undefined);
    await writeFile(files.masterKey, randomBytes(32), { mode: 0o600 });
    for (const f of [files.qmpSocket, files.pidfile, join(dir, VCPU_UNPLUGGED)]) await unlink(f).catch(() => undefined);

    // The log said whether the saved state is still wanted (managedsave-remove takes it away there).
    const managed = opts.restoreFile === undefined && opts.restore === true && existsSync(managedSavePath(dir));
    if (!managed) await unlink(managedSavePath(dir)).catch(() => undefined);
    const restore = managed || opts.restoreFile !== undefined;
    const accel = await this.accelFor(def);
    const binary = this.binaryFor(def);
    const netdevs = await this.resolveTaps(def, opts);
    const vncPorts = await this.allocateVnc(def);
    let cmd: QemuCommand;
    try {
      cmd = buildQemuCommand(def, {
        domainDir: dir,
        monitor: { path: files.qmpSocket },
        masterKeyPath: files.masterKey,
        pidfile: files.pidfile,
        consoleLog: files.consoleLog,
        accel,
        emulator: binary,
        netdevs,
        vncPorts,
        ...(this.opts.vncListen ? { vncListen: this.opts.vncListen } : {}),
      });
    } catch (e) {
      for (const p of vncPorts) this.reservedPorts.delete(p);
      throw e;
    }

    if (restore) cmd = { ...cmd, args: [...cmd.args, '-incoming', 'defer'] };
    await appendFile(files.qemuLog, `${new Date().toISOString()}: starting up\n${formatCommand(cmd)}\n`);
    const log = await open(files.qemuLog, 'a');
    let child: ChildProcess;
    try {
      opts.progress?.(`launching qemu (${accel})`);
      child = spawn(cmd.binary, cmd.args, {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...cmd.env },
        cwd: dir,
        // Its own process group: the guest outlives the driver and ignores signals sent to the driver's group.
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
      });
    } finally {
      await log.close();
    }
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.unref();
    const pid = child.pid;
    if (pid === undefined) {
      for (const p of vncPorts) this.reservedPorts.delete(p);
      const err = await spawnError;
      throw new VirtError('operation-failed', `failed to launch ${cmd.binary}: ${err.message}`);
    }

    const rec: DomainRecord = {
      version: 1,
      uuid,
      name: def.name,
      binary: cmd.binary,
      args: cmd.args,
      pid,
      ...files,
      def,
      state: { state: 'paused', reason: 'starting-up' },
      ifnames: netdevs.flatMap((n) => (n && 'tap' in n ? [n.tap] : [])),
      nics: def.devices.interfaces.map((nic, i) => {
        const n = netdevs[i];
        const bridge = n?.bridge ?? (nic.type === 'bridge' ? nic.source?.bridge : undefined);
        const network = n?.network ?? (nic.type === 'network' ? nic.source?.network : undefined);
        return {
          mac: (nic.mac ?? defaultMac(uuid, i)).toLowerCase(),
          index: i,
          ...(n && 'tap' in n ? { ifname: n.tap } : {}),
          ...(bridge ? { bridge } : {}),
          ...(network ? { network } : {}),
        };
      }),
      vncPorts,
      accel,
      startedAt: new Date().toISOString(),
    };
    const d = new Domain(dir, rec, pid);
    d.child = child;
    d.op = 'start';
    this.domains.set(uuid, d);
    this.stopped.delete(uuid);
    child.once('exit', (code, signal) => void this.onExit(d, { code, signal }));
    await this.save(d);

    try {
      opts.progress?.('waiting for the QEMU monitor');
      const qmp = await connectWhenReady(files.qmpSocket, {
        timeoutMs: this.opts.startTimeoutMs ?? 30_000,
        ...(opts.signal ? { signal: opts.signal } : {}),
        alive: () => d.alive,
      });
      this.attach(d, qmp);
      // libvirt asks qemu to report a guest reboot as a shutdown when on_reboot is destroy.
      if (def.onReboot === 'destroy') await qmp.execute('set-action', { reboot: 'shutdown' });
      rec.consolePty = await this.findPty(qmp);
      for (const g of def.devices.graphics) {
        if (g.type === 'vnc' && g.passwd) await qmp.execute('set_password', { protocol: 'vnc', password: g.passwd });
      }
      // <currentMemory> below <memory>: the balloon takes the difference back before the guest runs.
      const target = def.currentMemoryKiB;
      if (restore) {
        // The guest comes back as it was saved, its balloon included.
        opts.progress?.('restoring the saved guest state');
        if (opts.restoreFile !== undefined) await restoreGuestImage(qmp, opts.restoreFile, opts.signal);
        else await restoreGuestState(qmp, dir, opts.signal);
      } else if (target && target < def.memoryKiB && (def.devices.memballoon?.model ?? 'virtio') !== 'none') {
        await qmp.execute('balloon', { value: target * 1024 });
      }
      if (opts.signal?.aborted) throw abortReason(opts.signal, `start of domain '${def.name}'`);
      d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
      if (!opts.paused) await qmp.execute('cont');
      const status = await this.status(d);
      const state: ObservedState =
        status === 'running' ? (restore ? { state: 'running', reason: 'restored' } : RUNNING_BOOTED) : opts.paused ? { state: 'paused', reason: 'user' } : mapRunState(status);
      rec.state = state;
      await this.save(d);
      return state;
    } catch (e) {
      d.expectExit = SHUTOFF_FAILED;
      if (d.alive) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
      await within(d.exited, 10_000, undefined, 'cleanup after a failed start').catch(() => undefined);
      const tail = (await readFile(files.qemuLog, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      if (isVirtError(e)) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      throw new VirtError('operation-failed', `internal error: qemu failed to start domain '${def.name}': ${msg}\n${tail}`);
    } finally {
      d.op = undefined;
    }
  }

  private async findPty(qmp: QmpClient): Promise<string | undefined> {
    const devs = await qmp.execute<Array<{ label: string; filename: string }>>('query-chardev');
    const c = devs.find((x) => x.label === 'charserial0') ?? devs.find((x) => x.label.startsWith('charconsole'));
    return c?.filename.startsWith('pty:') ? c.filename.slice(4) : undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Hot-plug

  private async hotplugNic(d: Domain, iface: InterfaceModel, opts: OperationOptions): Promise<RuntimeInterface> {
    if (opts.signal?.aborted) throw abortReason(opts.signal, `attaching an interface to domain '${d.rec.name}'`);
    if ((await this.status(d)) === 'shutdown') throw notRunning();
    const mac = (iface.mac ?? randomMac()).toLowerCase();
    const have = d.rec.nics.find((n) => n.mac === mac);
    if (have) {
      if (have.unplugging) {
        throw new VirtError('operation-invalid', `Requested operation is not valid: interface ${mac} is being detached`);
      }
      if (!have.ifname) {
        throw new VirtError('operation-invalid', `Requested operation is not valid: MAC address ${mac} is already in use`);
      }
      return runtimeOf({ ...have, ifname: have.ifname });
    }
    if (iface.type !== 'network' && iface.type !== 'bridge' && iface.type !== 'ethernet') {
      throw new VirtError('operation-unsupported', `interface type '${iface.type}' cannot be hot-plugged by the qemu driver`);
    }
    // Hot-plugged NICs default to virtio: the guest needs no emulated-hardware driver for them.
    const model = iface.model ?? 'virtio';
    const driver = nicDriver(model);
    const nicDef: InterfaceModel = { ...iface, mac, model };
    const index = await this.nextNicIndex(d);
    // Validated before a tap exists, so a refusal leaves nothing behind.
    const device = nicDevice(nicDef, driver, index, mac);

    let plugged: { ifname: string; bridge?: string; network?: string };
    if (this.opts.plugInterface) {
      opts.progress?.('preparing the network device');
      plugged = await this.opts.plugInterface(d.uuid, nicDef);
    } else if (iface.type === 'ethernet' && iface.targetDev && !iface.targetDev.includes('%')) {
      plugged = { ifname: iface.targetDev };
    } else {
      throw new VirtError('operation-failed', `no tap device can be prepared for interface ${mac} (type ${iface.type})`);
    }
    const nic: NicRecord = {
      mac,
      index,
      ifname: plugged.ifname,
      ...(plugged.bridge ? { bridge: plugged.bridge } : {}),
      ...(plugged.network ? { network: plugged.network } : {}),
      hotplugged: true,
    };
    // Recorded before qemu has it: a driver that dies in between still releases the tap later.
    d.rec.nics.push(nic);
    if (!d.rec.ifnames.includes(plugged.ifname)) d.rec.ifnames.push(plugged.ifname);
    await this.persist(d);
    const qmp = await this.monitor(d);
    try {
      opts.progress?.(`adding ${driver} net${index} on ${plugged.ifname}`);
      await qmp.execute('netdev_add', tapNetdev(nicDef, driver, { tap: plugged.ifname }, `hostnet${index}`));
      try {
        await qmp.execute('device_add', device);
      } catch (e) {
        await qmp.execute('netdev_del', { id: `hostnet${index}` }).catch(() => undefined);
        throw e;
      }
    } catch (e) {
      d.rec.nics = d.rec.nics.filter((n) => n !== nic);
      d.rec.ifnames = d.rec.ifnames.filter((x) => x !== plugged.ifname);
      await this.persist(d);
      await this.opts.releaseInterfaces?.(d.uuid, [plugged.ifname]).catch(() => undefined);
      throw e;
    }
    return runtimeOf({ ...nic, ifname: plugged.ifname });
  }

  /** One above the highest index in use, as libvirt numbers hot-plugged NICs. */
  private async nextNicIndex(d: Domain): Promise<number> {
    const used = d.rec.nics.map((n) => n.index);
    // Devices the record does not know (added by hand through the monitor) must not clash either.
    const children = await (await this.monitor(d))
      .execute<Array<{ name: string }>>('qom-list', { path: '/machine/peripheral' })
      .catch(() => []);
    for (const c of children) {
      const m = /^net(\d+)$/.exec(c.name);
      if (m) used.push(Number(m[1]));
    }
    return used.length ? Math.max(...used) + 1 : 0;
  }

  private async unplugNic(d: Domain, mac: string, opts: OperationOptions): Promise<void> {
    const nic = d.rec.nics.find((n) => n.mac === mac);
    if (!nic) return;
    const qmp = await this.monitor(d);
    const id = `net${nic.index}`;
    const stopWaiting = new AbortController();
    const deleted = qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.device === id, {
      timeoutMs: Infinity,
      signal: stopWaiting.signal,
    });
    deleted.catch(() => undefined);
    let retry: NodeJS.Timeout | undefined;
    try {
      let gone = (await this.requestUnplug(qmp, id)) === 'gone';
      if (!nic.unplugging) {
        nic.unplugging = true;
        await this.persist(d);
      }
      if (!gone) {
        opts.progress?.(`waiting for the guest to release ${id}`);
        const deadline = opts.signal ? Infinity : (this.opts.unplugTimeoutMs ?? 30_000);
        const released = within(deleted, deadline, opts.signal, `detaching interface ${mac} from domain '${d.rec.name}'`);
        released.catch(() => undefined);
        while (!gone) {
          const tick = new Promise<'tick'>((r) => (retry = setTimeout(() => r('tick'), this.opts.unplugRetryMs ?? 5000)));
          if ((await Promise.race([released.then(() => 'released' as const), tick])) === 'released') break;
          // A guest drops eject requests that come before its OS has set up PCI hot-plug (early boot); ask again.
          gone = (await this.requestUnplug(qmp, id)) === 'gone';
        }
      }
    } finally {
      clearTimeout(retry);
      stopWaiting.abort();
    }
    await this.finishUnplug(d, nic);
  }

  private async requestUnplug(qmp: QmpClient, id: string): Promise<'sent' | 'gone'> {
    try {
      await qmp.execute('device_del', { id });
      return 'sent';
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
      // Released while no driver was watching.
      if (e.errorClass === 'DeviceNotFound') return 'gone';
      // An earlier request is still waiting on the guest.
      if (/already in the process of unplug/i.test(e.message)) return 'sent';
      throw e;
    }
  }

  /** The guest has let go of the NIC: drop its backend and give the tap back. Runs once per NIC. */
  private async finishUnplug(d: Domain, nic: NicRecord): Promise<void> {
    if (!d.alive || d.detached || !d.rec.nics.includes(nic)) return;
    const qmp = await this.monitor(d);
    await qmp.execute('netdev_del', { id: `hostnet${nic.index}` }).catch((e: unknown) => {
      if (!(e instanceof QmpError)) throw e;
      // Already gone: an earlier try got this far.
    });
    d.rec.nics = d.rec.nics.filter((n) => n !== nic);
    const ifname = nic.ifname;
    if (ifname) d.rec.ifnames = d.rec.ifnames.filter((x) => x !== ifname);
    await this.persist(d);
    if (ifname) await this.opts.releaseInterfaces?.(d.uuid, [ifname]).catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // Watching

  private attach(d: Domain, qmp: QmpClient): void {
    d.qmp = qmp;
    qmp.onEvent((e) => this.onEvent(d, e));
    void qmp.closed.then(() => {
      if (d.qmp === qmp) d.qmp = undefined;
      if (d.detached || !d.alive) return;
      // A child handle reports the exit itself; otherwise watch /proc until the process is gone.
      if (!d.child) d.pollExit(() => void this.onExit(d, { code: null, signal: null }), 50);
    });
  }

  private onEvent(d: Domain, e: QmpEvent): void {
    if (d.detached) return;
    switch (e.event) {
      case 'SHUTDOWN': {
        d.gotShutdown = true;
        const guest = e.data?.guest === true;
        const reason = typeof e.data?.reason === 'string' ? e.data.reason : 'unknown';
        // shutdown/reboot/destroy wait for this themselves.
        if (!guest || (d.op && ['shutdown', 'reboot', 'destroy', 'guest'].includes(d.op))) return;
        void this.withLock(d.uuid, () => this.onGuestShutdown(d, reason)).catch(() => undefined);
        return;
      }
      case 'STOP':
        if (d.op) return;
        void this.observeStatus(d, 'STOP: guest paused outside the driver');
        return;
      case 'RESUME':
        if (d.op) return;
        this.emit(d, this.record(d, { state: 'running', reason: 'unpaused' }), 'RESUME: guest resumed outside the driver');
        return;
      case 'RESET':
        // qemu reports a host-requested reset after the command has returned, so only the guest's
        // own reboots are news; the monitor is ours alone, so host resets are the driver's doing.
        // SeaBIOS resets the machine once more right after power-on; that is not a reboot either.
        if (d.op || e.data?.guest !== true || Date.now() < d.quietResetsUntil) return;
        this.emit(d, this.record(d, RUNNING_BOOTED), 'RESET: guest rebooted itself');
        return;
      case 'DEVICE_DELETED': {
        // A guest that let go of a NIC after its detach gave up waiting: finish the detach now.
        const nic = d.rec.nics.find((n) => n.unplugging && `net${n.index}` === e.data?.device);
        if (nic) void this.withLock(d.uuid, () => this.finishUnplug(d, nic)).catch(() => undefined);
        return;
      }
      case 'POWERDOWN':
        if (d.op) return;
        this.emit(d, d.rec.state, 'POWERDOWN: ACPI power button pressed outside the driver');
        return;
      default:
        return;
    }
  }

  private async observeStatus(d: Domain, cause: string): Promise<void> {
    try {
      const status = await this.status(d);
      // A guest that powered off stops too; its SHUTDOWN handling reports that.
      if (status === 'shutdown' || d.op) return;
      const prev = d.rec.state;
      const next = status === 'paused' ? { state: 'paused' as const, reason: 'unknown' as const } : mapRunState(status, prev);
      if (next.state === prev.state && next.reason === prev.reason) return;
      this.emit(d, this.record(d, next), cause);
    } catch {
      // The process went away meanwhile: its exit is reported instead.
    }
  }

  /** The guest powered off (or, with on_reboot=destroy, rebooted) by itself: apply the lifecycle action. */
  private async onGuestShutdown(d: Domain, reason: string): Promise<void> {
    if (!d.alive || d.detached) return;
    await this.during(d, 'guest', async () => {
      const status = await this.status(d).catch(() => undefined);
      if (status !== 'shutdown') return;
      const def = d.rec.def;
      const which = reason === 'guest-reset' ? 'reboot' : reason === 'guest-panic' ? 'crash' : 'poweroff';
      const action = which === 'reboot' ? def.onReboot : which === 'crash' ? def.onCrash : def.onPoweroff;
      const result = await this.applyLifecycle(d, action, which);
      this.emit(d, result, `SHUTDOWN: ${reason}`);
    }).catch(() => undefined);
  }

  /**
   * Applies an on_poweroff / on_reboot / on_crash action to a guest that has stopped (or, for an
   * explicit reboot, is to be reset). destroy and preserve end the process: qemu cannot keep a
   * powered-off machine around in a useful way, so preserve behaves like destroy, as in libvirt's
   * test driver.
   */
  private async applyLifecycle(
    d: Domain,
    action: string,
    which: 'poweroff' | 'reboot' | 'crash',
    opts: OperationOptions = {},
  ): Promise<ObservedState> {
    const restart = action === 'restart' || action === 'rename-restart' || action === 'coredump-restart';
    if (!restart) {
      const final = which === 'crash' ? SHUTOFF_CRASHED : SHUTOFF_SHUTDOWN;
      return this.terminate(d, final, opts);
    }
    const qmp = await this.monitor(d);
    const before = await this.status(d);
    d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
    await qmp.execute('system_reset');
    // A guest that halted stays stopped under -no-shutdown until told to run again.
    if (before === 'shutdown' || which !== 'reboot') await qmp.execute('cont');
    const after = await this.status(d);
    return this.record(d, after === 'running' ? RUNNING_BOOTED : mapRunState(after, d.rec.state));
  }

  /** Ends the process: QMP quit, then SIGTERM, then SIGKILL, each after the grace period. */
  private async terminate(d: Domain, final: ObservedState, opts: OperationOptions = {}): Promise<ObservedState> {
    d.expectExit = final;
    const grace = this.opts.destroyGraceMs ?? 5000;
    if (d.qmp && !d.qmp.isClosed) {
      opts.progress?.('asking qemu to quit');
      await d.qmp.execute('quit', undefined, { timeoutMs: grace }).catch(() => undefined);
    }
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      const gone = await within(d.exited, grace, undefined, 'qemu exit').then(
        () => true,
        () => false,
      );
      if (gone) break;
      opts.progress?.(`qemu did not exit; sending ${sig}`);
      try {
        process.kill(d.pid, sig);
      } catch {
        // Already gone.
      }
      if (!d.child) d.pollExit(() => void this.onExit(d, { code: null, signal: sig }), 50);
    }
    await within(d.exited, 60_000, undefined, `killing qemu ${d.pid}`);
    return this.stopped.get(d.uuid) ?? final;
  }

  private async onExit(d: Domain, info: ExitInfo): Promise<void> {
    if (d.exitInfo) return;
    d.exitInfo = info;
    d.stopPolling();
    if (d.detached) return d.markExited();
    // A qemu that dies while being launched failed to start; start() reports that itself.
    const starting = d.op === 'start';
    const final = d.expectExit ?? (starting ? SHUTOFF_FAILED : d.gotShutdown ? SHUTOFF_SHUTDOWN : SHUTOFF_CRASHED);
    this.stopped.set(d.uuid, final);
    if (this.domains.get(d.uuid) === d) this.domains.delete(d.uuid);
    for (const p of d.rec.vncPorts) this.reservedPorts.delete(p);
    await d.qmp?.close().catch(() => undefined);
    await this.cleanupDir(d.dir, d.rec.qmpSocket);
    if (d.rec.ifnames.length && this.opts.releaseInterfaces) {
      await this.opts.releaseInterfaces(d.uuid, d.rec.ifnames).catch(() => undefined);
    }
    await appendFile(
      d.rec.qemuLog,
      `${new Date().toISOString()}: shutting down, reason=${final.reason}` +
        `${info.signal ? ` (signal ${info.signal})` : info.code !== null ? ` (exit code ${info.code})` : ''}\n`,
    ).catch(() => undefined);
    d.markExited();
    if (!d.expectExit && !starting) {
      const how = info.signal
        ? `qemu was killed by ${info.signal}`
        : info.code !== null
          ? `qemu exited with code ${info.code}`
          : 'qemu exited';
      this.emit(d, final, d.gotShutdown ? `${how} after SHUTDOWN` : how);
    }
  }

  private async cleanupDir(dir: string, socket: string): Promise<void> {
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const e of entries) if (!KEEP_AFTER_STOP.has(e)) await rm(join(dir, e), { recursive: true, force: true });
    await unlink(socket).catch(() => undefined);
  }

  private emit(d: Domain, s: ObservedState, cause: string): void {
    if (this.closed) return;
    const o: DomainObservation = { uuid: d.uuid, state: s.state, reason: s.reason, cause };
    for (const l of [...this.listeners]) {
      try {
        l(o);
      } catch {
        // One subscriber's failure must not hide the change from the others.
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reattaching

  /** Picks up qemu processes started by an earlier driver on this state directory; clears the dead. */
  private async rescan(): Promise<void> {
    const entries = await readdir(this.qemuDir).catch(() => [] as string[]);
    await Promise.all(
      entries
        .filter((u) => !this.domains.has(u) && existsSync(join(this.qemuDir, u, 'domain.json')))
        .map((u) => this.withLock(u, () => this.reattach(u)).catch(() => undefined)),
    );
  }

  /** The running domain, reattaching to it when an earlier driver started it. */
  private async find(uuid: string): Promise<Domain | undefined> {
    const d = this.domains.get(uuid) ?? (await this.reattach(uuid));
    return d?.alive ? d : undefined;
  }

  private async reattach(uuid: string): Promise<Domain | undefined> {
    if (this.closed) return undefined;
    const known = this.domains.get(uuid);
    if (known) return known;
    const dir = this.domainDir(uuid);
    let rec: DomainRecord;
    try {
      rec = JSON.parse(await readFile(join(dir, 'domain.json'), 'utf8')) as DomainRecord;
    } catch {
      return undefined;
    }
    const pidText = await readFile(rec.pidfile, 'utf8').catch(() => '');
    const pid = Number.parseInt(pidText, 10) || rec.pid;
    const cmdline = pid ? await processCmdline(pid) : undefined;
    const same =
      cmdline !== undefined &&
      cmdline.length === rec.args.length + 1 &&
      cmdline.every((a, i) => a === (i === 0 ? rec.binary : rec.args[i - 1]));
    if (!pid || !same || (await processState(pid)) !== 'alive') {
      // Under -no-shutdown a guest that powered off keeps qemu alive, so a vanished qemu crashed.
      this.stopped.set(uuid, SHUTOFF_CRASHED);
      await this.cleanupDir(dir, rec.qmpSocket);
      for (const p of rec.vncPorts ?? []) this.reservedPorts.delete(p);
      if (rec.ifnames?.length && this.opts.releaseInterfaces) {
        await this.opts.releaseInterfaces(uuid, rec.ifnames).catch(() => undefined);
      }
      return undefined;
    }
    rec.nics ??= nicsFromArgs(rec);
    const d = new Domain(dir, rec, pid);
    this.domains.set(uuid, d);
    for (const p of rec.vncPorts ?? []) this.reservedPorts.add(p);
    try {
      const qmp = await QmpClient.connect(rec.qmpSocket, { timeoutMs: 10_000 });
      this.attach(d, qmp);
      const status = await this.status(d);
      d.rec.state = status === 'running' && rec.state.state === 'running' ? rec.state : mapRunState(status, rec.state);
      await this.save(d);
      // The guest powered off while nobody watched: finish what its SHUTDOWN would have started.
      if (status === 'shutdown') {
        d.gotShutdown = true;
        queueMicrotask(() => void this.withLock(uuid, () => this.onGuestShutdown(d, 'guest-shutdown')).catch(() => undefined));
      }
    } catch {
      // The monitor may be busy with another client; keep watching the process and retry on use.
      d.pollExit(() => void this.onExit(d, { code: null, signal: null }), 1000);
    }
    return d;
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  private async monitor(d: Domain): Promise<QmpClient> {
    if (d.qmp && !d.qmp.isClosed) return d.qmp;
    if (!d.alive) throw notRunning();
    // qemu serves one monitor client at a time: connecting here would starve the launch in progress.
    if (d.op === 'start') throw new VirtError('operation-failed', `domain '${d.rec.name}' is starting`);
    try {
      const qmp = await QmpClient.connect(d.rec.qmpSocket, { timeoutMs: 5000 });
      d.stopPolling();
      this.attach(d, qmp);
      return qmp;
    } catch (e) {
      throw new VirtError('operation-failed', `cannot reach the monitor of domain '${d.rec.name}': ${(e as Error).message}`);
    }
  }

  private async status(d: Domain): Promise<string> {
    const qmp = await this.monitor(d);
    const r = await qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs: 10_000 });
    return r.status;
  }

  private async liveState(d: Domain): Promise<ObservedState> {
    const status = await this.status(d);
    return mapRunState(status, d.rec.state);
  }

  /** Records the state now and persists it in order; operations wait for the write before replying. */
  private record(d: Domain, s: ObservedState): ObservedState {
    d.rec.state = s;
    d.saving = d.saving.then(() => this.save(d)).catch(() => undefined);
    return s;
  }

  /** Writes the record now, in order with state changes. */
  private persist(d: Domain): Promise<void> {
    d.saving = d.saving.then(() => this.save(d)).catch(() => undefined);
    return d.saving;
  }

  private async save(d: Domain): Promise<void> {
    if (!d.alive || d.detached) return;
    const file = join(d.dir, 'domain.json');
    const tmp = `${file}.${++this.saveSeq}.tmp`;
    await writeFile(tmp, JSON.stringify(d.rec, null, 2));
    await rename(tmp, file);
  }

  /** Marks an operation in flight and maps monitor failures to libvirt-style errors. */
  /** An operation only a running guest takes: under the guest's lock, refused when it does not run, marked under way (`during`). */
  private async onRunning<T>(uuid: string, op: string, fn: (d: Domain) => Promise<T>): Promise<T> {
    await this.ready;
    return this.withLock(uuid, async () => {
      const d = await this.find(uuid);
      if (!d) throw notRunning();
      return this.during(d, op, () => fn(d));
    });
  }

  private async during<T>(d: Domain, op: string, fn: () => Promise<T>): Promise<T> {
    const prev = d.op;
    d.op = op;
    try {
      return await fn();
    } catch (e) {
      if (isVirtError(e)) throw e;
      if (e instanceof QmpClosedError || !d.alive) throw notRunning();
      if (e instanceof QmpTimeoutError) throw new VirtError('timeout', `${op} of domain '${d.rec.name}': ${e.message}`);
      if (e instanceof QmpError) throw new VirtError('operation-failed', `internal error: ${e.message}`);
      throw e;
    } finally {
      d.op = prev;
      // A reply must not overtake the record a successor driver would reattach from.
      await d.saving;
    }
  }

  private withLock<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(uuid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(uuid, tail);
    void tail.then(() => {
      if (this.locks.get(uuid) === tail) this.locks.delete(uuid);
    });
    return next;
  }
}
