import type { DiskModel, DomainDefinition, InterfaceModel } from '../contracts/domain/definition.ts';
import type { Duplex } from 'node:stream';
import type { ObservedState, RuntimeDevices, RuntimeInterface } from '../contracts/domain/state.ts';
import type { DomainStats } from '../contracts/domain/stats.ts';
import type { SnapshotTask } from '../contracts/domain/snapshots.ts';
import type { KeyPress } from '../contracts/domain/keycodes.ts';
import type { DomainCapsRequest } from '../contracts/host/domain-caps.ts';
import type { NodeCpuMap, NodeCpuStats, VcpuInfo } from '../contracts/host/host-reads.ts';

/**
 * What a host agent needs from a hypervisor driver. Drivers are plain async code over the host OS:
 * they know nothing of NATS, events or tasks. Every operation is idempotent: asking for the state a
 * domain is already in reports that state and does nothing, so a redelivered task never runs a guest
 * twice.
 */
export interface OperationOptions {
  /** Aborted when the operation's deadline passes or the agent shuts down. */
  signal?: AbortSignal;
  /** Called with human-readable progress for long operations. */
  progress?: (message: string, fraction?: number) => void;
  /** The task this is done for: the same in every run of a task, redelivered or not. */
  taskId?: string;
}

export interface DriverDomain extends ObservedState {
  uuid: string;
  name: string;
}

/** An unexpected change the driver saw on its own (guest powered off, process died, guest paused). */
export interface DomainObservation extends ObservedState {
  uuid: string;
  /** Process exit details or the QMP event that caused the change. */
  cause?: string;
}

export interface DriverCapabilities {
  driver: string;
  /** `<domain type=...>` values this driver runs. */
  domainTypes: string[];
  cpus: number;
  memoryKiB: number;
  /** Free-form facts worth showing operators, e.g. `accel: kvm`. */
  features: Record<string, string>;
}

export interface HypervisorDriver {
  readonly name: string;
  capabilities(): Promise<DriverCapabilities>;
  /** Active domains the driver has (reattached ones included). */
  list(): Promise<DriverDomain[]>;
  /** Current state; a domain the driver has never seen is shutoff/unknown. */
  state(uuid: string): Promise<ObservedState>;
  /** `restore`: resume from the managed save image, if the host has one; without it, an image left is discarded. */
  /**
   * `restoreFile`: start from that saved image (virsh restore), a path the agent has checked against
   * its image directories; the image stays.
   */
  start(def: DomainDefinition, opts?: OperationOptions & { paused?: boolean; restore?: boolean; restoreFile?: string }): Promise<ObservedState>;
  /** Asks the guest to shut down and resolves once it has, applying the domain's on_poweroff. */
  shutdown(def: DomainDefinition, opts?: OperationOptions): Promise<ObservedState>;
  destroy(uuid: string, opts?: OperationOptions): Promise<ObservedState>;
  suspend(uuid: string, opts?: OperationOptions): Promise<ObservedState>;
  resume(uuid: string, opts?: OperationOptions): Promise<ObservedState>;
  /** Applies on_reboot: restart keeps the guest running, destroy leaves it shut off. */
  reboot(def: DomainDefinition, opts?: OperationOptions): Promise<ObservedState>;
  /**
   * Hot-plugs a NIC into a running guest (`virsh attach-interface --live`). An interface whose MAC
   * the guest already has is reported as it is, without a second device. A guest that is not
   * running is an `operation-invalid` error.
   */
  attachInterface?(def: DomainDefinition, iface: InterfaceModel, opts?: OperationOptions): Promise<RuntimeInterface>;
  /**
   * Unplugs the NIC with this MAC from a running guest and releases its host device once the guest
   * has let go of it; a MAC the guest does not have is nothing to do. A guest that does not release
   * the device before `opts.signal` aborts is a `timeout` error, with the NIC still attached.
   */
  detachInterface?(def: DomainDefinition, mac: string, opts?: OperationOptions): Promise<void>;
  /**
   * Hot-plugs a disk into a running guest (`virsh attach-disk --live`). A target the guest already
   * has with this disk is done already; a guest that is not running is `operation-invalid`.
   */
  attachDisk?(def: DomainDefinition, disk: DiskModel, opts?: OperationOptions): Promise<void>;
  /**
   * Unplugs the disk of this target once the guest has let go of it, then closes its image; a target
   * the guest does not have is nothing to do. `def` is the running definition, which still has it.
   */
  detachDisk?(def: DomainDefinition, target: string, opts?: OperationOptions): Promise<void>;
  /** The disks a running guest has now (the resync compares them with its live definition); undefined when not running. */
  runtimeDisks?(def: DomainDefinition): Promise<DiskModel[] | undefined>;
  /** Changes a running guest's removable media to `disk`'s source, or ejects it when it has none (virsh change-media). */
  updateDisk?(def: DomainDefinition, disk: DiskModel, opts?: OperationOptions): Promise<void>;
  /**
   * A running guest's counters and sizes now (virsh domstats and the monitoring verbs). `def` is the
   * control plane's definition, for a driver that keeps none of its own. A guest that is not running
   * is an `operation-invalid` error.
   */
  stats?(def: DomainDefinition): Promise<DomainStats>;
  /**
   * Sets a running guest's balloon target in KiB (virsh setmem --live): the guest gives memory back
   * or takes it over the following moments. A guest without a balloon is `operation-invalid`.
   */
  setMemory?(uuid: string, kib: number): Promise<void>;
  /**
   * Plugs or unplugs vCPUs of a running guest until `count` are online (virsh setvcpus --live). Only
   * vCPUs added while it runs can be unplugged; unplugging waits for the guest to let go (`opts.signal`).
   */
  setVcpus?(uuid: string, count: number, opts?: OperationOptions): Promise<void>;
  /** virsh domcapabilities: libvirt's domain capabilities XML, read from the hypervisor now. */
  domainCapabilities?(req: DomainCapsRequest): Promise<string>;
  /** virsh vcpuinfo: each online vCPU of a running guest, the host CPU it last ran on, its time and affinity. */
  vcpuInfo?(def: DomainDefinition): Promise<VcpuInfo[]>;
  /** virsh domtime: the guest's clock, read by its guest agent. */
  domainTime?(def: DomainDefinition): Promise<{ seconds: number; nseconds: number }>;
  /** virsh maxvcpus: the most vCPUs a guest of `type` (the driver's default when absent) may have. */
  maxVcpus?(type?: string): Promise<number>;
  /** virsh nodecpustats: the host's CPU times, all CPUs (-1) or one; a CPU it lacks is `invalid-arg`. */
  nodeCpuStats?(cpu: number): Promise<NodeCpuStats>;
  /** virsh nodecpumap: CPUs present and online. */
  nodeCpuMap?(): Promise<NodeCpuMap>;
  /** virsh sysinfo: the host's SMBIOS as libvirt's sysinfo XML. */
  sysinfo?(): Promise<string>;
  /** virsh send-key: presses the keys together, holds them `holdtimeMs` (qemu's default when absent), releases them. */
  sendKey?(uuid: string, keys: KeyPress, opts?: OperationOptions): Promise<void>;
  /** virsh inject-nmi: a non-maskable interrupt to the running guest. */
  injectNmi?(uuid: string, opts?: OperationOptions): Promise<void>;
  /** virsh blockresize: the disk of `target` grows (or shrinks) to `bytes` under the running guest. */
  blockResize?(def: DomainDefinition, target: string, bytes: number, opts?: OperationOptions): Promise<void>;
  /** virsh screenshot: the picture on `screen` of the guest written to `file` (PPM from qemu, PNG from the test driver). */
  screenshot?(def: DomainDefinition, screen: number, file: string, opts?: OperationOptions): Promise<void>;
  /** virsh reset: a hard reset of the running guest, as a reset button; it stays in the state it was in. */
  reset?(uuid: string, opts?: OperationOptions): Promise<ObservedState>;
  /**
   * virsh managedsave: saves the running guest's state on the host and stops it, shut off with
   * reason `saved`; its next start resumes from that state. A guest already saved reports so.
   */
  managedSave?(def: DomainDefinition, opts?: OperationOptions): Promise<ObservedState>;
  /**
   * virsh save: the running guest's state into `file` (checked by the agent) with a header that
   * records its definition, and the guest stopped, shut off (saved). A guest already saved there reports so.
   */
  saveTo?(def: DomainDefinition, file: string, opts?: OperationOptions): Promise<ObservedState>;
  /**
   * Opens a running guest's console character device (virDomainOpenConsole) as a byte stream; the
   * caller destroys the stream to let go of it. Drivers without consoles leave it out.
   */
  openConsole?(uuid: string, devName?: string): Promise<{ device: string; stream: Duplex }>;
  /** Display ports and console ptys a running guest got, for its live XML; undefined when not running. */
  runtimeDevices?(uuid: string): Promise<RuntimeDevices | undefined>;
  /**
   * virsh snapshot-create: takes the named snapshot of the guest (its disks, and its memory when it
   * runs). A name the host already holds is reported taken, not taken again: a redelivered task must
   * not replace the first snapshot with a later state.
   */
  snapshotCreate?(def: DomainDefinition, snapshot: SnapshotTask, opts?: OperationOptions): Promise<ObservedState>;
  /**
   * Undoes what a snapshot-create task did that the log will never record (its deadline passed while
   * the agent was away, so the log says it failed): only what the task itself made, by its marker.
   */
  snapshotAbandon?(def: DomainDefinition, snapshot: SnapshotTask, opts?: OperationOptions): Promise<void>;
  /** virsh snapshot-revert: the guest's disks (and memory) as the snapshot has them, left in `snapshot.target`. */
  snapshotRevert?(def: DomainDefinition, snapshot: SnapshotTask, opts?: OperationOptions): Promise<ObservedState>;
  /** virsh snapshot-delete: drops each of `snapshot.names` the host holds; a name it does not hold is already gone. */
  snapshotDelete?(def: DomainDefinition, snapshot: SnapshotTask, opts?: OperationOptions): Promise<ObservedState>;
  /** The snapshot names the host holds for the guest. */
  snapshotNames?(def: DomainDefinition): Promise<string[]>;
  /** Subscribe to unexpected state changes; returns an unsubscribe function. */
  onObservation(listener: (o: DomainObservation) => void): () => void;
  /** Releases monitors and timers; running guests keep running. */
  close(): Promise<void>;
}
