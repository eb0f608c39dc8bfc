import type { DomainDefinition, InterfaceModel } from '../../contracts/domain/definition.ts';
import type { OperationOptions } from '../hypervisor.ts';

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
