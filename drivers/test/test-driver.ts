import { existsSync, readFileSync, statSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { CrashAction, DiskModel, LifecycleAction, type DomainDefinition } from '../../contracts/domain/definition.ts';
import { DomainStateName, StateReason, isActive, type ObservedState } from '../../contracts/domain/state.ts';
import { isVirtError, virtError, type VirtError } from '../../contracts/errors.ts';
import type { SnapshotTask } from '../../contracts/domain/snapshots.ts';
import { checkKeycodes, type KeyPress } from '../../contracts/domain/keycodes.ts';
import type { DomainStats } from '../../contracts/domain/stats.ts';
import { testDriverStats } from './stats.ts';
import { TEST_DOMAIN_TIME, TEST_MAX_VCPUS, TEST_NODE_CPU_MAP, TEST_NODE_CPU_STATS, TEST_SMBIOS, testVcpuInfo } from './host-reads.ts';
import { sysinfoXml, type NodeCpuMap, type NodeCpuStats, type VcpuInfo } from '../../contracts/host/host-reads.ts';
import { formatDomainXml, parseDomainXml } from '../../contracts/xml/domain.ts';
import { readImageHeader, testImageHeader, writeImage } from '../save-image.ts';
import type {
  DomainObservation,
  DriverCapabilities,
  DriverDomain,
  HypervisorDriver,
  OperationOptions,
} from '../hypervisor.ts';

/**
 * An in-memory hypervisor with the semantics of libvirt's test driver (src/test/test_driver.c):
 * the same result states and reasons, and on_poweroff / on_reboot / on_crash applied as libvirt
 * does. It runs no guests, so thousands of simulated hosts fit in one process: nothing here holds a
 * timer or an interval except the latency an option asks for.
 *
 * Where the test driver would refuse a repeated operation, this driver reports instead, because the
 * agent must be able to run a redelivered task safely. Each operation has a target; if it already
 * holds, the operation does nothing and reports the state as it is:
 *
 * | op       | target holds when             | reports                                        |
 * |----------|-------------------------------|------------------------------------------------|
 * | start    | the guest is active           | the current state (nothing boots a second time) |
 * | destroy  | the guest is shut off         | the current state, with the reason that really stopped it |
 * | shutdown | the guest is shut off         | the current state                              |
 * | suspend  | the guest is paused           | paused with its reason                         |
 * | resume   | the guest is running/blocked  | the current state                              |
 * | reboot   | shut off and on_reboot=destroy | the current state                             |
 * | reset    | never: it changes no state     | the current state (running or paused)          |
 * | managedsave | shut off, reason saved      | shut off (saved)                               |
 *
 * destroy on a guest that powered itself off reports shutoff/shutdown, not shutoff/destroyed: the
 * agent records what the host saw, and a made-up reason would tell operators the wrong story.
 * What is neither allowed nor already done is refused with the decider's codes and messages:
 * suspend of a shut off guest ("is not running"), resume of anything but a paused or running
 * guest ("is not paused"), reboot of a shut off guest unless on_reboot=destroy ("is not running").
 */

export type DriverOp = 'start' | 'shutdown' | 'destroy' | 'suspend' | 'resume' | 'reboot' | 'reset' | 'managedsave' | 'attach-disk' | 'detach-disk' | 'update-disk' | 'save' | 'snapshot-create' | 'snapshot-revert' | 'snapshot-delete' | 'send-key' | 'inject-nmi';

export interface TestDriverOptions {
  /** Time each operation takes: fixed, or drawn uniformly from [min, max]. 0 (the default) adds no timer. */
  latencyMs?: number | { min: number; max: number };
  /** Inject an operation-failed error: the probability per operation, or a function deciding each one. */
  failures?: number | ((op: DriverOp, uuid: string) => boolean);
  /**
   * Keep the simulated guests in this JSON file, so a new driver on the same file finds them running.
   * The file is the simulated host: a change another process makes to it (written whole, then renamed
   * over it) is what this driver sees from then on, as guests change behind a libvirt daemon's back.
   */
  stateFile?: string;
  /** Also run `kvm` and `qemu` domains, for fleets simulated with real-looking definitions. */
  acceptAllTypes?: boolean;
  /** Source of randomness for latency and failures; tests pass a seeded one. */
  random?: () => number;
}

const Guest = z.object({
  uuid: z.string(),
  name: z.string(),
  type: z.string(),
  state: DomainStateName,
  reason: StateReason,
  onPoweroff: LifecycleAction,
  onReboot: LifecycleAction,
  onCrash: CrashAction,
  boots: z.number().int().nonnegative(),
  reboots: z.number().int().nonnegative(),
  /** The disks the running guest has, by target. */
  disks: z.record(z.string(), DiskModel).optional(),
  /** The snapshots this host holds for the guest (libvirt's test driver keeps them in memory). */
  snapshots: z.array(z.string()).default([]),
  /** Keys pressed and NMIs received while running, so a test can count what reached the guest. */
  keysPressed: z.number().int().nonnegative().default(0),
  nmis: z.number().int().nonnegative().default(0),
});
type Guest = z.infer<typeof Guest>;

/** A 1x1 grey PNG, the test driver's screen. */
const TEST_SCREEN_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==';

const StateFile = z.object({ version: z.literal(1), guests: z.array(Guest) });

/** Host facts are the same for every simulated host: read them once per process. */
let hostFacts: { cpus: number; memoryKiB: number } | undefined;
const facts = () => (hostFacts ??= { cpus: cpus().length, memoryKiB: Math.floor(totalmem() / 1024) });

/** Tells the temporary files of drivers sharing one state file apart. */
let instances = 0;

const SHUTOFF_UNKNOWN: ObservedState = { state: 'shutoff', reason: 'unknown' };

/** libvirt's testDomainActionSetState: what on_poweroff / on_reboot leave behind. */
const afterLifecycleAction = (action: LifecycleAction): ObservedState =>
  action === 'restart' || action === 'rename-restart' ? { state: 'running', reason: 'booted' } : { state: 'shutoff', reason: 'shutdown' };

/** What a guest that crashed looks like under each on_crash action. */
const afterCrash = (action: CrashAction): ObservedState => {
  switch (action) {
    case 'preserve':
      return { state: 'crashed', reason: 'panicked' };
    case 'restart':
    case 'rename-restart':
    case 'coredump-restart':
      // QEMU's fake reboot after a panic reports RUNNING_CRASHED.
      return { state: 'running', reason: 'crashed' };
    default:
      return { state: 'shutoff', reason: 'crashed' };
  }
};

export class TestDriver implements HypervisorDriver {
  readonly name = 'test';
  private readonly guests = new Map<string, Guest>();
  private readonly listeners = new Set<(o: DomainObservation) => void>();
  private readonly random: () => number;
  private readonly tmpFile: string | undefined;
  private generation = 0;
  private saved = 0;
  private saving: Promise<void> = Promise.resolve();
  /** Each guest's JSON as last written: a write serialises only the guests changed since. */
  private readonly json = new Map<string, string>();
  private readonly dirty = new Set<string>();
  /** The state file as this driver last read or wrote it; another stamp means another process changed it. */
  private stamp: string | undefined;

  constructor(private readonly options: TestDriverOptions = {}) {
    this.random = options.random ?? Math.random;
    if (options.stateFile) {
      this.tmpFile = `${options.stateFile}.${process.pid}.${++instances}.tmp`;
      this.stamp = stampOf(options.stateFile);
      for (const g of load(options.stateFile)) {
        this.guests.set(g.uuid, g);
        this.json.set(g.uuid, JSON.stringify(g));
      }
    }
  }

  async capabilities(): Promise<DriverCapabilities> {
    return {
      driver: 'test',
      domainTypes: this.domainTypes(),
      ...facts(),
      features: { guests: 'simulated' },
    };
  }

  async list(): Promise<DriverDomain[]> {
    this.refresh();
    const out: DriverDomain[] = [];
    for (const g of this.guests.values()) {
      if (isActive(g.state)) out.push({ uuid: g.uuid, name: g.name, state: g.state, reason: g.reason });
    }
    return out;
  }

  async state(uuid: string): Promise<ObservedState> {
    this.refresh();
    return this.observed(uuid);
  }

  /** libvirt's test driver numbers for a running guest (see stats.ts). */
  async stats(def: DomainDefinition): Promise<DomainStats> {
    this.refresh();
    if (!isActive(this.observed(def.uuid).state)) throw virtError('operation-invalid', 'domain is not running');
    return testDriverStats(def, Date.now());
  }

  /** virsh vcpuinfo of a running guest, as libvirt's test driver makes it up (host-reads.ts). */
  async vcpuInfo(def: DomainDefinition): Promise<VcpuInfo[]> {
    this.refresh();
    if (!isActive(this.observed(def.uuid).state)) throw virtError('operation-invalid', 'domain is not running');
    return testVcpuInfo(def, Date.now());
  }

  /** virsh domtime: the test driver's fixed moment, for a running guest. */
  async domainTime(def: DomainDefinition): Promise<{ seconds: number; nseconds: number }> {
    this.refresh();
    if (!isActive(this.observed(def.uuid).state)) throw virtError('operation-invalid', 'domain is not running');
    return TEST_DOMAIN_TIME;
  }

  async maxVcpus(): Promise<number> {
    return TEST_MAX_VCPUS;
  }

  async nodeCpuStats(): Promise<NodeCpuStats> {
    return TEST_NODE_CPU_STATS;
  }

  async nodeCpuMap(): Promise<NodeCpuMap> {
    return TEST_NODE_CPU_MAP;
  }

  async sysinfo(): Promise<string> {
    return sysinfoXml(TEST_SMBIOS);
  }

  /** How many times the guest was booted from shut off; reboots and restarts keep the count. */
  bootCount(uuid: string): number {
    return this.guests.get(uuid)?.boots ?? 0;
  }

  /** How many times the guest rebooted in place (reboot, or on_poweroff=restart). */
  rebootCount(uuid: string): number {
    return this.guests.get(uuid)?.reboots ?? 0;
  }

  async start(def: DomainDefinition, opts: OperationOptions & { paused?: boolean; restoreFile?: string } = {}): Promise<ObservedState> {
    if (opts.restoreFile !== undefined) return this.restore(def, opts.restoreFile, opts);
    if (!this.domainTypes().includes(def.type)) {
      // Refused before any work, as libvirt refuses such a definition when it parses it.
      return Promise.reject(
        virtError('operation-unsupported', `domain type '${def.type}' is not supported by the test driver`, {
          supported: this.domainTypes(),
        }),
      );
    }
    return this.run(
      'start',
      def.uuid,
      def.name,
      opts,
      (g) => {
        if (g && isActive(g.state)) return null;
        return {
          ...this.guestFrom(def, g),
          ...(opts.paused ? { state: 'paused', reason: 'user' } : { state: 'running', reason: 'booted' }),
          boots: (g?.boots ?? 0) + 1,
        };
      },
      // A start that fails leaves SHUTOFF/FAILED, as testDomainStartState does.
      (g) => (g && isActive(g.state) ? null : { ...this.guestFrom(def, g), state: 'shutoff', reason: 'failed' }),
    );
  }

  shutdown(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('shutdown', def.uuid, def.name, opts, (g) => {
      if (!g || !isActive(g.state)) return null;
      return this.lifecycleAction({ ...g, ...lifecycleOf(def) }, def.onPoweroff);
    });
  }

  destroy(uuid: string, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('destroy', uuid, undefined, opts, (g) =>
      g && isActive(g.state) ? { ...g, state: 'shutoff', reason: 'destroyed' } : null,
    );
  }

  suspend(uuid: string, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('suspend', uuid, undefined, opts, (g, name) => {
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', `domain '${name}' is not running`);
      return g.state === 'paused' ? null : { ...g, state: 'paused', reason: 'user' };
    });
  }

  resume(uuid: string, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('resume', uuid, undefined, opts, (g, name) => {
      if (g?.state === 'paused') return { ...g, state: 'running', reason: 'unpaused' };
      if (g?.state === 'running' || g?.state === 'blocked') return null;
      throw virtError('operation-invalid', `domain '${name}' is not paused`);
    });
  }

  reboot(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('reboot', def.uuid, def.name, opts, (g, name) => {
      if (!g || !isActive(g.state)) {
        if (def.onReboot === 'destroy') return null;
        throw virtError('operation-invalid', `domain '${name}' is not running`);
      }
      return this.lifecycleAction({ ...g, ...lifecycleOf(def) }, def.onReboot);
    });
  }

  /** testDomainReset: the guest stays as it was, paused or running. */
  reset(uuid: string, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('reset', uuid, undefined, opts, (g) => {
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
      return null;
    });
  }

  /** testDomainSendKey: checks each key of its codeset (the decider did) and does nothing else; here the guest counts them. */
  sendKey(uuid: string, keys: KeyPress, opts: OperationOptions = {}): Promise<void> {
    return this.run('send-key', uuid, undefined, opts, (g) => {
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
      checkKeycodes(keys);
      return { ...g, keysPressed: g.keysPressed + keys.keycodes.length };
    }).then(() => undefined);
  }

  /** testDomainInjectNMI: accepted for a running guest; here the guest counts them. */
  injectNmi(uuid: string, opts: OperationOptions = {}): Promise<void> {
    return this.run('inject-nmi', uuid, undefined, opts, (g) => {
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
      return { ...g, nmis: g.nmis + 1 };
    }).then(() => undefined);
  }

  /** testDomainScreenshot: a picture whatever the domain's state (libvirt's is its logo; this one is a single grey pixel). */
  async screenshot(_def: DomainDefinition, _screen: number, file: string): Promise<void> {
    await writeFile(file, Buffer.from(TEST_SCREEN_PNG, 'base64'), { mode: 0o600 });
  }

  /** Keys pressed and NMIs the guest received. */
  guestInput(uuid: string): { keysPressed: number; nmis: number } {
    this.refresh();
    const g = this.guests.get(uuid);
    return { keysPressed: g?.keysPressed ?? 0, nmis: g?.nmis ?? 0 };
  }

  /** testDomainManagedSave: shut off with reason saved; the next start boots it as a new start does. */
  managedSave(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('managedsave', def.uuid, def.name, opts, (g) => {
      if (g && g.state === 'shutoff' && g.reason === 'saved') return null;
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
      return { ...g, state: 'shutoff', reason: 'saved' };
    });
  }

  /** Hot-plug: the simulated guest gains the disk; one it has already with this media is done already. */
  attachDisk(def: DomainDefinition, disk: DiskModel, opts: OperationOptions = {}): Promise<void> {
    return this.run('attach-disk', def.uuid, def.name, opts, (g) => {
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
      const disks = this.disksOf(g, def);
      const dev = disk.target.dev;
      if (dev in disks) {
        if (mediaOf(disks[dev]!) === mediaOf(disk)) return null;
        throw virtError('operation-failed', `target ${dev} already exists`);
      }
      return { ...g, disks: { ...disks, [dev]: disk } };
    }).then(() => undefined);
  }

  detachDisk(def: DomainDefinition, target: string, opts: OperationOptions = {}): Promise<void> {
    return this.run('detach-disk', def.uuid, def.name, opts, (g) => {
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
      const disks = this.disksOf(g, def);
      if (!(target in disks)) return null;
      const { [target]: _, ...rest } = disks;
      return { ...g, disks: rest };
    }).then(() => undefined);
  }

  updateDisk(def: DomainDefinition, disk: DiskModel, opts: OperationOptions = {}): Promise<void> {
    return this.run('update-disk', def.uuid, def.name, opts, (g) => {
      if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
      const disks = this.disksOf(g, def);
      const dev = disk.target.dev;
      if (!(dev in disks)) throw virtError('internal-error', `No device with bus '${disk.target.bus ?? ''}' and target '${dev}'`);
      return mediaOf(disks[dev]!) === mediaOf(disk) ? null : { ...g, disks: { ...disks, [dev]: disk } };
    }).then(() => undefined);
  }

  /** The disks the running guest has, as the guest itself would list them; undefined when it is not running. */
  async runtimeDisks(def: DomainDefinition): Promise<DiskModel[] | undefined> {
    this.refresh();
    const g = this.guests.get(def.uuid);
    return g && isActive(g.state) ? Object.values(this.disksOf(g, def)) : undefined;
  }

  /** A guest booted before disks were tracked has those of the definition it runs. */
  private disksOf(g: Guest, def: DomainDefinition): Record<string, DiskModel> {
    return g.disks ?? Object.fromEntries(def.devices.disks.map((d) => [d.target.dev, d]));
  }

  /**
   * testDomainSaveFlags: the image is the test driver's (magic, length, the domain's XML) and the
   * guest is shut off (saved). A guest found saved with its image in place was saved by an earlier
   * delivery of the same task.
   */
  async saveTo(def: DomainDefinition, file: string, opts: OperationOptions = {}): Promise<ObservedState> {
    this.refresh();
    const g = this.guests.get(def.uuid);
    if (g?.state === 'shutoff' && g.reason === 'saved' && existsSync(file)) return this.observed(def.uuid);
    if (!g || !isActive(g.state)) throw virtError('operation-invalid', 'domain is not running');
    await writeImage(file, testImageHeader(formatDomainXml(def)));
    return this.run('save', def.uuid, def.name, opts, (cur) => {
      if (!cur || !isActive(cur.state)) throw virtError('operation-invalid', 'domain is not running');
      return { ...cur, state: 'shutoff', reason: 'saved' };
    });
  }

  /** testDomainRestoreFlags: the image must be the test driver's and hold this domain; it runs, restored, and the image stays. */
  private async restore(def: DomainDefinition, file: string, opts: OperationOptions): Promise<ObservedState> {
    const header = await readImageHeader(file);
    if (header.format !== 'test') throw virtError('internal-error', 'mismatched header magic');
    const saved = parseDomainXml(header.xml);
    if (saved.uuid.toLowerCase() !== def.uuid.toLowerCase()) throw virtError('operation-invalid', `the image '${file}' holds domain '${saved.name}', not '${def.name}'`);
    return this.run('start', def.uuid, def.name, opts, (g) => {
      if (g && isActive(g.state)) return null;
      return { ...this.guestFrom(def, g), state: 'running', reason: 'restored', boots: g?.boots ?? 0 };
    });
  }

  /** testDomainSnapshotCreateXML: the guest's state is kept as it is; a name already held is already taken. */
  snapshotCreate(def: DomainDefinition, snapshot: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('snapshot-create', def.uuid, def.name, opts, (g) => {
      const guest = this.guestFrom(def, g);
      if (guest.snapshots.includes(snapshot.name)) return null;
      return { ...guest, snapshots: [...guest.snapshots, snapshot.name] };
    });
  }

  /**
   * testDomainRevertToSnapshot: a snapshot with memory leaves the guest running or paused (from
   * snapshot); one without stops an active guest (from snapshot) and leaves a shut off one as it was.
   */
  snapshotRevert(def: DomainDefinition, snapshot: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('snapshot-revert', def.uuid, def.name, opts, (g) => {
      const guest = this.guestFrom(def, g);
      if (!guest.snapshots.includes(snapshot.name)) throw virtError('operation-failed', `domain '${def.name}' has no snapshot '${snapshot.name}' on this host`);
      if (snapshot.target === 'running' || snapshot.target === 'paused') {
        return { ...guest, state: snapshot.target, reason: 'from-snapshot', boots: guest.boots + (isActive(guest.state) ? 0 : 1) };
      }
      return isActive(guest.state) ? { ...guest, state: 'shutoff', reason: 'from-snapshot' } : null;
    });
  }

  snapshotDelete(def: DomainDefinition, snapshot: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.run('snapshot-delete', def.uuid, def.name, opts, (g) => {
      if (!g) return null;
      const gone = new Set(snapshot.names ?? []);
      return g.snapshots.some((n) => gone.has(n)) ? { ...g, snapshots: g.snapshots.filter((n) => !gone.has(n)) } : null;
    });
  }

  async snapshotNames(def: DomainDefinition): Promise<string[]> {
    this.refresh();
    return [...(this.guests.get(def.uuid)?.snapshots ?? [])];
  }

  /** The guest crashed: on_crash decides what is left, and the change is observed as a hypervisor would. */
  crash(uuid: string, cause = 'guest crashed'): Promise<ObservedState> {
    return this.fromHost(uuid, cause, (g) => ({ ...g, ...afterCrash(g.onCrash) }));
  }

  /** The guest powered itself off: on_poweroff decides what is left, and the change is observed. */
  powerOffFromGuest(uuid: string, cause = 'guest powered off'): Promise<ObservedState> {
    return this.fromHost(uuid, cause, (g) => this.lifecycleAction(g, g.onPoweroff));
  }

  onObservation(listener: (o: DomainObservation) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.saving;
  }

  private domainTypes(): string[] {
    return this.options.acceptAllTypes ? ['test', 'kvm', 'qemu'] : ['test'];
  }

  private observed(uuid: string): ObservedState {
    const g = this.guests.get(uuid);
    return g ? { state: g.state, reason: g.reason } : { ...SHUTOFF_UNKNOWN };
  }

  private guestFrom(def: DomainDefinition, g: Guest | undefined): Guest {
    return {
      uuid: def.uuid,
      name: def.name,
      type: def.type,
      state: g?.state ?? 'shutoff',
      reason: g?.reason ?? 'unknown',
      ...lifecycleOf(def),
      boots: g?.boots ?? 0,
      reboots: g?.reboots ?? 0,
      // A guest boots with the disks of its definition; one running keeps those it has.
      disks: g && isActive(g.state) && g.disks ? g.disks : Object.fromEntries(def.devices.disks.map((d) => [d.target.dev, d])),
      snapshots: g?.snapshots ?? [],
      keysPressed: g?.keysPressed ?? 0,
      nmis: g?.nmis ?? 0,
    };
  }

  private lifecycleAction(g: Guest, action: LifecycleAction): Guest {
    const next = afterLifecycleAction(action);
    return { ...g, ...next, reboots: g.reboots + (isActive(next.state) ? 1 : 0) };
  }

  /**
   * One operation: wait the injected latency, maybe fail, then decide and apply in one step, so two
   * overlapping operations on a guest each see the other's result and a guest never boots twice.
   * `apply` returns the new guest, or null when the target already holds.
   */
  private async run(
    op: DriverOp,
    uuid: string,
    knownName: string | undefined,
    opts: OperationOptions,
    apply: (g: Guest | undefined, name: string) => Guest | null,
    onFailure?: (g: Guest | undefined) => Guest | null,
  ): Promise<ObservedState> {
    const name = () => knownName ?? this.guests.get(uuid)?.name ?? uuid;
    const { signal, progress } = opts;
    if (signal?.aborted) throw aborted(op, name(), signal);
    const ms = this.latency();
    if (ms > 0) {
      progress?.(`${op} domain '${name()}'`, 0);
      try {
        await sleep(ms, undefined, signal ? { signal } : undefined);
      } catch (e) {
        if (signal?.aborted) throw aborted(op, name(), signal);
        throw e;
      }
    }
    this.refresh();
    if (this.injectFailure(op, uuid)) {
      const left = onFailure?.(this.guests.get(uuid));
      if (left) await this.commit(left);
      throw virtError('operation-failed', `operation '${op}' failed for domain '${name()}': injected failure`);
    }
    const next = apply(this.guests.get(uuid), name());
    if (next) await this.commit(next);
    if (ms > 0) progress?.(`${op} domain '${name()}'`, 1);
    return this.observed(uuid);
  }

  private async fromHost(uuid: string, cause: string, change: (g: Guest) => Guest): Promise<ObservedState> {
    this.refresh();
    const g = this.guests.get(uuid);
    if (!g || !isActive(g.state)) throw virtError('operation-invalid', `domain '${g?.name ?? uuid}' is not running`);
    const next = change(g);
    const changed = next.state !== g.state || next.reason !== g.reason;
    await this.commit(next);
    if (changed) this.emit({ uuid, state: next.state, reason: next.reason, cause });
    return this.observed(uuid);
  }

  private emit(o: DomainObservation): void {
    for (const l of this.listeners) {
      try {
        l({ ...o });
      } catch {
        // A listener's failure is its own: the other listeners still hear about the guest.
      }
    }
  }

  private latency(): number {
    const l = this.options.latencyMs;
    if (l === undefined) return 0;
    if (typeof l === 'number') return l;
    return l.min + this.random() * (l.max - l.min);
  }

  private injectFailure(op: DriverOp, uuid: string): boolean {
    const f = this.options.failures;
    if (f === undefined) return false;
    if (typeof f === 'number') return f > 0 && this.random() < f;
    return f(op, uuid);
  }

  /**
   * Reads the state file again when another process changed it. Synchronous, so nothing runs between
   * the read and the decision that follows it; skipped while a write of this driver's own is pending,
   * which would otherwise be mistaken for a stranger's.
   */
  private refresh(): void {
    const file = this.options.stateFile;
    if (!file || this.saved !== this.generation) return;
    const stamp = stampOf(file);
    if (stamp === undefined || stamp === this.stamp) return;
    let guests: Guest[];
    try {
      guests = load(file);
    } catch {
      // Caught half written by a writer that does not rename: the next look reads it whole.
      return;
    }
    this.stamp = stamp;
    this.guests.clear();
    this.json.clear();
    for (const g of guests) {
      this.guests.set(g.uuid, g);
      this.json.set(g.uuid, JSON.stringify(g));
    }
  }

  /** Applies a guest change and, with a state file, resolves once the file holds it. */
  private commit(g: Guest): Promise<void> {
    this.guests.set(g.uuid, g);
    if (!this.options.stateFile) return Promise.resolve();
    this.dirty.add(g.uuid);
    const generation = ++this.generation;
    const write = this.saving.then(() => (this.saved >= generation ? undefined : this.save()));
    // A failed write fails the operations waiting on it, not every later one.
    this.saving = write.catch(() => undefined);
    return write;
  }

  private async save(): Promise<void> {
    const file = this.options.stateFile!;
    const tmp = this.tmpFile!;
    const generation = this.generation;
    // Changes made while a write runs go out together in the next one, and only they are serialised.
    for (const uuid of this.dirty) this.json.set(uuid, JSON.stringify(this.guests.get(uuid)));
    this.dirty.clear();
    const doc = `{"version":1,"guests":[${[...this.json.values()].join(',')}]}`;
    try {
      await writeFile(tmp, doc);
      // rename is atomic: a reader, or the next driver, sees the old document or the new one.
      await rename(tmp, file);
      this.stamp = stampOf(file);
      this.saved = generation;
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw virtError('internal-error', `cannot save simulated guests to ${file}: ${(e as Error).message}`);
    }
  }
}

const lifecycleOf = (def: DomainDefinition) => ({ onPoweroff: def.onPoweroff, onReboot: def.onReboot, onCrash: def.onCrash });

const aborted = (op: DriverOp, name: string, signal: AbortSignal): VirtError =>
  isVirtError(signal.reason) ? signal.reason : virtError('operation-failed', `operation '${op}' on domain '${name}' was aborted`);

/** Which version of the file this is: a rename over it changes the inode, a rewrite in place the time or size. */
const stampOf = (file: string): string | undefined => {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.mtimeMs}:${st.size}`;
  } catch {
    return undefined;
  }
};

const load = (file: string): Guest[] => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  try {
    return StateFile.parse(JSON.parse(text)).guests;
  } catch (e) {
    throw new Error(`test driver state file ${file} is unreadable: ${(e as Error).message.split('\n')[0]}`);
  }
};

const mediaOf = (d: DiskModel): string => d.source?.file ?? d.source?.dev ?? d.source?.name ?? '';
