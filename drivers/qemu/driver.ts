import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { DiskModel, type DomainDefinition, type InterfaceModel } from '../../contracts/domain/definition.ts';
import type { ObservedState, RuntimeDevices, RuntimeInterface } from '../../contracts/domain/state.ts';
import type { DomainStats } from '../../contracts/domain/stats.ts';
import type { SnapshotTask } from '../../contracts/domain/snapshots.ts';
import { VirtError } from '../../contracts/errors.ts';
import type { DomainCapsRequest } from '../../contracts/host/domain-caps.ts';
import { sysinfoXml, type NodeCpuMap, type NodeCpuStats, type VcpuInfo } from '../../contracts/host/host-reads.ts';
import { toQnum, type KeyPress } from '../../contracts/domain/keycodes.ts';
import type { DomainObservation, DriverCapabilities, DriverDomain, HypervisorDriver, OperationOptions } from '../hypervisor.ts';
import { hostSmbios, nodeCpuMap, nodeCpuStats } from '../node-info.ts';
import type { QemuCommand } from './argv.ts';
import { capabilities, domainCapabilities, maxVcpus } from './capabilities.ts';
import { chardevPtys, openPty, pickConsole, runtimeDevices, type QmpChardev } from './console.ts';
import { domainDir, newContext, withLock, type QemuContext } from './context.ts';
import { attachDisk, changeMedia, detachDisk, resizeDisk, runtimeDisks } from './disk-hotplug.ts';
import { memballoonOf } from './extras.ts';
import { FIRMWARE_RESET_WINDOW_MS, SHUTOFF_DESTROYED, SHUTOFF_SHUTDOWN, mapRunState, notRunning, type Domain } from './guest.ts';
import { applyLifecycle, attach, shutdownGuest, terminate } from './guest-events.ts';
import { managedSave, saveTo } from './guest-save.ts';
import { snapshotAbandon, snapshotCreate, snapshotDelete, snapshotNames, snapshotRevert } from './guest-snapshots.ts';
import { accelFor, commandFor, launch } from './launch.ts';
import { during, liveState, monitor, queryStatus, record } from './monitor.ts';
import { hotplugNic, unplugNic } from './nic-hotplug.ts';
import type { QemuDriverOptions, QemuStartOptions } from './options.ts';
import { find, reattach, rescan } from './reattach.ts';
import { qemuStats } from './stats.ts';
import { qemuVcpuInfo } from './vcpu-info.ts';
import { setOnlineVcpus, VCPU_UNPLUGGED } from './vcpus.ts';

export { mapRunState } from './guest.ts';
export type { PreparedInterface, QemuDriverOptions, QemuStartOptions } from './options.ts';

/**
 * The QEMU/KVM hypervisor driver: runs each domain as a qemu-system process it launches paused,
 * then drives and watches over QMP. qemu outlives the driver; a new driver on the same state
 * directory finds running guests again instead of starting them twice.
 */
export class QemuDriver implements HypervisorDriver {
  readonly name = 'qemu';
  private readonly ctx: QemuContext;
  private readonly ready: Promise<void>;

  constructor(private readonly opts: QemuDriverOptions) {
    this.ctx = newContext(opts, attach);
    this.ready = rescan(this.ctx).catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // HypervisorDriver

  async capabilities(): Promise<DriverCapabilities> {
    return capabilities(this.name, this.opts);
  }

  async list(): Promise<DriverDomain[]> {
    await this.ready;
    await rescan(this.ctx);
    const out: DriverDomain[] = [];
    for (const d of this.ctx.domains.values()) {
      if (!d.alive) continue;
      const s = await liveState(this.ctx, d).catch(() => d.rec.state);
      out.push({ uuid: d.uuid, name: d.rec.name, ...s });
    }
    return out;
  }

  async state(uuid: string): Promise<ObservedState> {
    await this.ready;
    const d = this.ctx.domains.get(uuid) ?? (await withLock(this.ctx, uuid, () => reattach(this.ctx, uuid)));
    if (d?.alive) return liveState(this.ctx, d).catch(() => d.rec.state);
    return this.ctx.stopped.get(uuid) ?? { state: 'shutoff', reason: 'unknown' };
  }

  async start(def: DomainDefinition, opts: QemuStartOptions = {}): Promise<ObservedState> {
    await this.ready;
    return withLock(this.ctx, def.uuid, async () => {
      const existing = await find(this.ctx, def.uuid);
      // Idempotent: a redelivered start for a guest that is already up reports it as it is.
      if (existing) return liveState(this.ctx, existing).catch(() => existing.rec.state);
      return launch(this.ctx, def, opts);
    });
  }

  async shutdown(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return withLock(this.ctx, def.uuid, async () => {
      const d = await find(this.ctx, def.uuid);
      if (!d) return this.ctx.stopped.get(def.uuid) ?? SHUTOFF_SHUTDOWN;
      d.rec.def = def;
      return shutdownGuest(this.ctx, d, def, opts);
    });
  }

  async destroy(uuid: string, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return withLock(this.ctx, uuid, async () => {
      const d = await find(this.ctx, uuid);
      if (!d) return this.ctx.stopped.get(uuid) ?? SHUTOFF_DESTROYED;
      return during(d, 'destroy', () => terminate(this.ctx, d, SHUTOFF_DESTROYED, opts));
    });
  }

  async suspend(uuid: string, _opts: OperationOptions = {}): Promise<ObservedState> {
    return this.onRunning(uuid, 'suspend', async (d) => {
      const status = await queryStatus(this.ctx, d);
      if (status === 'shutdown') throw notRunning();
      if (status !== 'running') return record(this.ctx, d, mapRunState(status, d.rec.state));
      await (await monitor(this.ctx, d)).execute('stop');
      return record(this.ctx, d, { state: 'paused', reason: 'user' });
    });
  }

  async resume(uuid: string, _opts: OperationOptions = {}): Promise<ObservedState> {
    return this.onRunning(uuid, 'resume', async (d) => {
      const status = await queryStatus(this.ctx, d);
      if (status === 'running') return record(this.ctx, d, mapRunState(status, d.rec.state));
      if (status === 'shutdown' || status === 'guest-panicked' || status === 'inmigrate') {
        throw new VirtError('operation-invalid', `Requested operation is not valid: domain is not paused (${status})`);
      }
      // A guest started paused meets its firmware now.
      d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
      await (await monitor(this.ctx, d)).execute('cont');
      return record(this.ctx, d, { state: 'running', reason: 'unpaused' });
    });
  }

  async reboot(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    return this.onRunning(def.uuid, 'reboot', async (d) => {
      d.rec.def = def;
      return applyLifecycle(this.ctx, d, def.onReboot, 'reboot', opts);
    });
  }

  /** qemuDomainManagedSave (guest-save.ts). */
  async managedSave(def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return managedSave(this.ctx, def, opts);
  }

  /** qemuDomainSaveFlags (guest-save.ts). */
  async saveTo(def: DomainDefinition, file: string, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return saveTo(this.ctx, def, file, opts);
  }

  /** Snapshots, internal or external (guest-snapshots.ts). */
  async snapshotCreate(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return snapshotCreate(this.ctx, def, snap, opts);
  }

  async snapshotRevert(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return snapshotRevert(this.ctx, def, snap, opts);
  }

  async snapshotDelete(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<ObservedState> {
    await this.ready;
    return snapshotDelete(this.ctx, def, snap, opts);
  }

  async snapshotAbandon(def: DomainDefinition, snap: SnapshotTask, opts: OperationOptions = {}): Promise<void> {
    await this.ready;
    return snapshotAbandon(this.ctx, def, snap, opts);
  }

  async snapshotNames(def: DomainDefinition): Promise<string[]> {
    await this.ready;
    return snapshotNames(this.ctx, def);
  }

  /** qemuDomainReset: system_reset, the guest's reset button; a paused guest stays paused. */
  async reset(uuid: string, _opts: OperationOptions = {}): Promise<ObservedState> {
    return this.onRunning(uuid, 'reset', async (d) => {
      const status = await queryStatus(this.ctx, d);
      if (status === 'shutdown') throw notRunning();
      // The firmware resets the machine once more as it comes up: not a reboot of the guest's own.
      d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
      await (await monitor(this.ctx, d)).execute('system_reset');
      return record(this.ctx, d, mapRunState(await queryStatus(this.ctx, d), d.rec.state));
    });
  }

  /** qemuDomainSendKey: QMP send-key with every key as qemu's number, held `holdtime` ms (qemu's 100 by default). */
  async sendKey(uuid: string, keys: KeyPress, _opts: OperationOptions = {}): Promise<void> {
    const qnums = toQnum(keys);
    await this.onRunning(uuid, 'send-key', async (d) => {
      const args = { keys: qnums.map((data) => ({ type: 'number', data })), ...(keys.holdtimeMs ? { 'hold-time': keys.holdtimeMs } : {}) };
      await (await monitor(this.ctx, d)).execute('send-key', args);
    });
  }

  /** qemuDomainBlockResize (disk-hotplug.ts). */
  async blockResize(def: DomainDefinition, target: string, bytes: number, _opts: OperationOptions = {}): Promise<void> {
    await this.onRunning(def.uuid, 'block-resize', (d) => resizeDisk(this.ctx, d, def, target, bytes));
  }

  /** qemuDomainScreenshot: QMP screendump (PPM); a screen after the first is named by its video device. */
  async screenshot(def: DomainDefinition, screen: number, file: string, _opts: OperationOptions = {}): Promise<void> {
    await this.onRunning(def.uuid, 'screenshot', async (d) => {
      await (await monitor(this.ctx, d)).execute('screendump', { filename: file, ...(screen > 0 ? { device: `video${screen}`, head: 0 } : {}) });
    });
  }

  /** qemuDomainInjectNMI: QMP inject-nmi, to every vCPU of an x86 guest. */
  async injectNmi(uuid: string, _opts: OperationOptions = {}): Promise<void> {
    await this.onRunning(uuid, 'inject-nmi', async (d) => {
      await (await monitor(this.ctx, d)).execute('inject-nmi');
    });
  }

  async attachInterface(def: DomainDefinition, iface: InterfaceModel, opts: OperationOptions = {}): Promise<RuntimeInterface> {
    return this.onRunning(def.uuid, 'attach-interface', (d) => hotplugNic(this.ctx, d, iface, opts));
  }

  async detachInterface(def: DomainDefinition, mac: string, opts: OperationOptions = {}): Promise<void> {
    return this.onRunning(def.uuid, 'detach-interface', (d) => unplugNic(this.ctx, d, mac.toLowerCase(), opts));
  }

  async attachDisk(def: DomainDefinition, disk: DiskModel, opts: OperationOptions = {}): Promise<void> {
    return this.onRunning(def.uuid, 'attach-disk', (d) => attachDisk(this.ctx, d, disk, opts));
  }

  async detachDisk(def: DomainDefinition, target: string, opts: OperationOptions = {}): Promise<void> {
    const disk = def.devices.disks.find((x) => x.target.dev === target) ?? DiskModel.parse({ target: { dev: target, bus: 'virtio' } });
    const timing = { timeoutMs: this.opts.unplugTimeoutMs ?? 30_000, retryMs: this.opts.unplugRetryMs ?? 5000 };
    return this.onRunning(def.uuid, 'detach-disk', (d) => detachDisk(this.ctx, d, disk, timing, opts));
  }

  async runtimeDisks(def: DomainDefinition): Promise<DiskModel[] | undefined> {
    await this.ready;
    const d = await find(this.ctx, def.uuid);
    if (!d || !d.alive) return undefined;
    return runtimeDisks(this.ctx, d);
  }

  async updateDisk(def: DomainDefinition, disk: DiskModel, _opts: OperationOptions = {}): Promise<void> {
    return this.onRunning(def.uuid, 'update-disk', async (d) => changeMedia(await monitor(this.ctx, d), disk));
  }

  onObservation(listener: (o: DomainObservation) => void): () => void {
    this.ctx.listeners.add(listener);
    return () => this.ctx.listeners.delete(listener);
  }

  /** The guest's counters now (drivers/qemu/stats.ts); beside operations, without their lock: it only reads. */
  async stats(def: DomainDefinition): Promise<DomainStats> {
    await this.ready;
    const d = await find(this.ctx, def.uuid);
    if (!d) throw notRunning();
    const qmp = await monitor(this.ctx, d);
    return qemuStats(qmp, { def: d.rec.def, pid: d.pid, nics: d.rec.nics ?? [], balloon: memballoonOf(d.rec.def).model === 'virtio' });
  }

  /** virsh setmem --live: the balloon's target, which the guest then gives back or takes. */
  async setMemory(uuid: string, kib: number): Promise<void> {
    await this.ready;
    return withLock(this.ctx, uuid, async () => {
      const d = await find(this.ctx, uuid);
      if (!d) throw notRunning();
      if (memballoonOf(d.rec.def).model !== 'virtio') {
        throw new VirtError('operation-invalid', 'Requested operation is not valid: Unable to change memory of active domain without the balloon device and guest OS balloon driver');
      }
      await during(d, 'setmem', async () => (await monitor(this.ctx, d)).execute('balloon', { value: kib * 1024 }));
    });
  }

  /** virsh domcapabilities (capabilities.ts). */
  async domainCapabilities(req: DomainCapsRequest): Promise<string> {
    return domainCapabilities(this.opts, req);
  }

  /** virsh vcpuinfo: the vCPU threads qemu names, read in /proc (vcpu-info.ts); beside operations, as stats. */
  async vcpuInfo(def: DomainDefinition): Promise<VcpuInfo[]> {
    await this.ready;
    const d = await find(this.ctx, def.uuid);
    if (!d) throw notRunning();
    return qemuVcpuInfo(await monitor(this.ctx, d), d.pid);
  }

  /**
   * virsh domtime needs the guest agent, a channel virtplane's guests are not given: libvirt's
   * answer for a running guest without one.
   */
  async domainTime(def: DomainDefinition): Promise<{ seconds: number; nseconds: number }> {
    await this.ready;
    if (!(await find(this.ctx, def.uuid))) throw notRunning();
    throw new VirtError('argument-unsupported', 'QEMU guest agent is not configured');
  }

  async maxVcpus(type?: string): Promise<number> {
    return maxVcpus(this.opts, type);
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
      const unplugged = (await accelFor(this.ctx, d.rec.def)) === 'tcg' ? join(domainDir(this.ctx, uuid), VCPU_UNPLUGGED) : undefined;
      await setOnlineVcpus(await monitor(this.ctx, d), count, opts.signal, unplugged);
    });
  }

  async close(): Promise<void> {
    this.ctx.closed = true;
    await this.ready;
    this.ctx.listeners.clear();
    for (const d of this.ctx.domains.values()) {
      await d.saving;
      d.detached = true;
      d.stopPolling();
      d.child?.removeAllListeners('exit');
      await d.qmp?.close().catch(() => undefined);
    }
    this.ctx.domains.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Extras beyond HypervisorDriver

  /** The tap devices a running domain uses (hot-plugged ones too), for the network side to reconcile after a restart. */
  interfaces(uuid: string): string[] {
    return this.ctx.domains.get(uuid)?.rec.ifnames ?? [];
  }

  /** Where the domain's serial console is logged and its pty, while it runs. */
  console(uuid: string): { log: string; pty?: string } | undefined {
    const d = this.ctx.domains.get(uuid);
    if (!d) return undefined;
    return { log: d.rec.consoleLog, ...(d.rec.consolePty ? { pty: d.rec.consolePty } : {}) };
  }

  /** The running qemu's pid, or undefined. */
  pid(uuid: string): number | undefined {
    const d = this.ctx.domains.get(uuid);
    return d?.alive ? d.pid : undefined;
  }

  /**
   * Runs one QMP command on a running domain's monitor (`virsh qemu-monitor-command`); qemu serves
   * a single monitor client, which is the driver's, so this is the only way in while it runs.
   */
  async monitorCommand<T = unknown>(uuid: string, command: string, args?: Record<string, unknown>): Promise<T> {
    await this.ready;
    const d = await find(this.ctx, uuid);
    if (!d) throw notRunning();
    return (await monitor(this.ctx, d)).execute<T>(command, args);
  }

  /**
   * Opens the guest's console (virDomainOpenConsole): its pty, chosen as libvirt chooses it. The
   * caller owns the stream; destroying it lets go of the console and leaves the guest running.
   */
  async openConsole(uuid: string, devName?: string): Promise<{ device: string; stream: Duplex }> {
    await this.ready;
    const d = await find(this.ctx, uuid);
    if (!d) throw notRunning();
    const chr = pickConsole(d.rec.def, devName);
    const devs = await (await monitor(this.ctx, d)).execute<QmpChardev[]>('query-chardev');
    const pty = chardevPtys(devs).find((c) => c.alias === chr.alias);
    if (!pty) throw new VirtError('internal-error', `internal error: character device ${chr.alias} is not using a PTY`);
    return { device: chr.alias, stream: await openPty(pty.path) };
  }

  /** What libvirt's live XML adds for a running guest (console.ts). */
  async runtimeDevices(uuid: string): Promise<RuntimeDevices | undefined> {
    await this.ready;
    const d = await find(this.ctx, uuid);
    if (!d) return undefined;
    return runtimeDevices(await monitor(this.ctx, d), d.rec.def);
  }

  /** VNC ports in use by a running domain, by graphics index. */
  vncPorts(uuid: string): number[] {
    return this.ctx.domains.get(uuid)?.rec.vncPorts ?? [];
  }

  /** For `domxml-to-native` (launch.ts). */
  async commandFor(def: DomainDefinition, taps: Record<string, string> = {}): Promise<QemuCommand> {
    return commandFor(this.ctx, def, taps);
  }

  /** An operation only a running guest takes: under the guest's lock, refused when it does not run, marked under way (`during`). */
  private async onRunning<T>(uuid: string, op: string, fn: (d: Domain) => Promise<T>): Promise<T> {
    await this.ready;
    return withLock(this.ctx, uuid, async () => {
      const d = await find(this.ctx, uuid);
      if (!d) throw notRunning();
      return during(d, op, () => fn(d));
    });
  }
}
