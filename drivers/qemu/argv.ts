import type { DiskModel, DomainDefinition, InterfaceModel } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import {
  bootMenuOf,
  channelsOf,
  chardevSourcePath,
  currentVcpusOf,
  graphicsListenOf,
  inputsOf,
  memoryBackingOf,
  rngsOf,
  unsupportedDevicesOf,
  clockOffsetOf,
  controllersOf,
  cpuOf,
  diskExtras,
  hasAcpi,
  interfaceExtras,
  iothreadsOf,
  loaderOf,
  memballoonOf,
  nvramOf,
  type PciAddress,
  videosOf,
} from './extras.ts';

/**
 * Builds the qemu-system command line for a domain, following what libvirt's QEMU driver generates
 * for the same XML (option order, JSON -device/-blockdev syntax, node and device names, implicit
 * devices and PCI slot assignment), so that guests see the same virtual hardware under virtplane
 * as under libvirt. Pure: everything host-specific (paths, tap devices, ports) comes in `QemuRuntime`.
 */

/** How a tap-backed interface reaches qemu. */
export type NetdevBackend =
  /** An existing tap device, opened by qemu itself by name. */
  | { tap: string; vhost?: boolean }
  /** Descriptors the caller passes to qemu (libvirt's way; used by the conformance tests). */
  | { fd: string; vhostfd?: string };

export interface QemuRuntime {
  /** The domain's private directory: qemu's HOME, the master key, sockets. */
  domainDir: string;
  /** QMP monitor: a unix socket path qemu listens on, or an inherited listening descriptor. */
  monitor: { path: string } | { fd: number };
  /** Defaults to `<domainDir>/master-key.aes`. */
  masterKeyPath?: string;
  pidfile?: string;
  /** Where the first serial (or console) chardev logs guest output. */
  consoleLog?: string;
  /** Overrides the accelerator chosen from the domain type. */
  accel?: 'kvm' | 'tcg';
  /** Overrides `<emulator>`. */
  emulator?: string;
  /** One entry per `def.devices.interfaces` element; `undefined` for user-mode interfaces. */
  netdevs?: Array<NetdevBackend | undefined>;
  /** Ports chosen for `<graphics type='vnc' autoport='yes'>`, by graphics index. */
  vncPorts?: Array<number | undefined>;
  /** Listen address for VNC displays whose definition names none (libvirt's vnc_listen). */
  vncListen?: string;
}

export interface QemuCommand {
  binary: string;
  args: string[];
  env: Record<string, string>;
}

export const DEFAULT_EMULATOR = '/usr/bin/qemu-system-x86_64';

const unsupported = (what: string): VirtError => new VirtError('operation-unsupported', `unsupported configuration: ${what}`);

/** qemu's option parser takes a doubled comma as a literal comma. */
export const qemuOptEscape = (s: string): string => s.replaceAll(',', ',,');

const json = (o: Record<string, unknown>): string => JSON.stringify(o);

const hex = (n: number): string => `0x${n.toString(16)}`;

const pciAddr = (slot: number, fn: number): string => (fn ? `${hex(slot)}.${hex(fn)}` : hex(slot));

/** libvirt's disk name index: vda → 0, vdz → 25, vdaa → 26. */
export const diskNameIndex = (dev: string): number => {
  const m = /^(?:hd|sd|vd|xvd|ubd|fd)([a-z]+)$/.exec(dev);
  if (!m) throw new VirtError('xml-error', `XML error: Unknown disk name '${dev}' and no address specified`);
  let idx = 0;
  for (const ch of m[1]!) idx = idx * 26 + (ch.charCodeAt(0) - 96);
  return idx - 1;
};

const diskBus = (disk: DiskModel, q35: boolean): string => {
  if (disk.target.bus) return disk.target.bus;
  const d = disk.target.dev;
  if (d.startsWith('vd')) return 'virtio';
  if (d.startsWith('sd')) return 'scsi';
  if (d.startsWith('fd')) return 'fdc';
  if (d.startsWith('hd')) return q35 ? 'sata' : 'ide';
  return 'ide';
};

/** libvirt derives MACs from its 52:54:00 prefix; a stable one per domain and slot survives restarts. */
export const defaultMac = (uuid: string, index: number): string => {
  const hexs = uuid.replaceAll('-', '');
  let h = 0x811c9dc5;
  for (const c of `${hexs}/${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  const b = [(h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff].map((x) => x.toString(16).padStart(2, '0'));
  return `52:54:00:${b.join(':')}`;
};

/** PCI slots on the root bus, handed out in libvirt's order: each search continues after the last one. */
class PciSlots {
  private readonly used = new Set<number>();
  private last = 0;

  constructor(readonly busName: string) {}

  reserve(slot: number): void {
    this.used.add(slot);
  }

  inUse(slot: number): boolean {
    return this.used.has(slot);
  }

  next(): number {
    for (let pass = 0; pass < 2; pass++) {
      const [from, to] = pass === 0 ? [this.last + 1, 31] : [1, this.last];
      for (let s = from; s <= to; s++) {
        if (!this.used.has(s)) {
          this.used.add(s);
          this.last = s;
          return s;
        }
      }
    }
    throw new VirtError('operation-failed', 'No more available PCI slots');
  }

  place(explicit: PciAddress | undefined): { bus: string; addr: string } {
    if (explicit) {
      if (explicit.bus !== 0) throw unsupported(`PCI bus ${explicit.bus} (only the root bus is supported)`);
      return { bus: this.busName, addr: pciAddr(explicit.slot, explicit.function) };
    }
    return { bus: this.busName, addr: hex(this.next()) };
  }
}

interface CacheMode {
  writeback: boolean;
  direct: boolean;
  noFlush: boolean;
}

const CACHE_MODES: Record<string, CacheMode> = {
  none: { writeback: true, direct: true, noFlush: false },
  writethrough: { writeback: false, direct: false, noFlush: false },
  writeback: { writeback: true, direct: false, noFlush: false },
  directsync: { writeback: false, direct: true, noFlush: false },
  unsafe: { writeback: true, direct: false, noFlush: true },
};

interface DiskPlan {
  disk: DiskModel;
  bus: string;
  index: number;
  nodeIndex: number;
  pci?: { bus: string; addr: string };
  bootindex?: number;
}

export function buildQemuCommand(def: DomainDefinition, rt: QemuRuntime): QemuCommand {
  const args: string[] = [];
  const add = (...a: string[]) => args.push(...a);
  const dev = (o: Record<string, unknown>) => add('-device', json(o));

  const arch = def.os.arch ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'i686') {
    throw unsupported(`Emulator '${rt.emulator ?? def.devices.emulator ?? DEFAULT_EMULATOR}' does not support arch '${arch}'`);
  }
  if (def.os.type !== 'hvm') throw unsupported(`OS type '${def.os.type}' (only hvm)`);
  const accel = rt.accel ?? (def.type === 'kvm' ? 'kvm' : def.type === 'qemu' ? 'tcg' : undefined);
  if (!accel) throw unsupported(`domain type '${def.type}' is not handled by the QEMU driver`);

  const notHere = unsupportedDevicesOf(def);
  if (notHere.length) throw unsupported(`devices not supported by this driver: ${notHere.join(', ')}`);
  const backing = memoryBackingOf(def);
  if (backing.hugepages || (backing.source && backing.source !== 'anonymous')) {
    throw unsupported('memory backing other than anonymous RAM');
  }

  const machine = def.os.machine ?? 'pc';
  const q35 = /^(pc-)?q35/.test(machine);
  if (!q35 && !/^pc($|-i440fx|-[0-9])/.test(machine)) throw unsupported(`machine type '${machine}'`);
  const slots = new PciSlots(q35 ? 'pcie.0' : 'pci.0');
  // PIIX3 occupies slot 1 on i440fx; ICH9's integrated devices sit at 0x1f on q35.
  slots.reserve(0);
  if (q35) slots.reserve(0x1f);
  else slots.reserve(1);

  const name = def.name;
  const masterKey = rt.masterKeyPath ?? `${rt.domainDir}/master-key.aes`;

  // ---- devices are planned first: PCI slots must be known before anything is emitted ----
  const controllers = controllersOf(def);
  const disks = def.devices.disks;
  const nics = def.devices.interfaces;
  const graphics = def.devices.graphics;
  for (const g of graphics) if (g.type !== 'vnc') throw unsupported(`graphics type '${g.type}'`);
  if (graphics.length > 1) throw unsupported('only one graphics device is supported');

  const videoDefs = videosOf(def) ?? (graphics.length ? [{ model: 'default' }] : []);
  const videos = videoDefs
    .map((v) => ({ ...v, model: v.model === 'default' ? 'cirrus' : v.model }))
    .filter((v) => v.model !== 'none');
  const balloon = memballoonOf(def);
  if (balloon.model !== 'none' && balloon.model !== 'virtio') throw unsupported(`memballoon model '${balloon.model}'`);

  const explicitPci = [
    ...controllers.map((c) => c.address),
    ...disks.map((d) => diskExtras(d).pci),
    ...nics.map((n) => interfaceExtras(n).pci),
    ...videos.map((v) => v.address),
    balloon.address,
  ];
  for (const a of explicitPci) if (a && a.bus === 0) slots.reserve(a.slot);

  // Primary video: the first device qemu places after the integrated ones, so libvirt pins it there.
  const videoPlacement: Array<{ bus: string; addr: string } | undefined> = [];
  if (videos[0]) {
    const want = q35 ? 1 : 2;
    if (videos[0].address) videoPlacement[0] = slots.place(videos[0].address);
    else if (!slots.inUse(want)) {
      slots.reserve(want);
      videoPlacement[0] = { bus: slots.busName, addr: hex(want) };
    }
  }

  // Consoles: a serial-type console is the first serial port; a virtio one needs virtio-serial.
  const serials = def.devices.serials.map((s) => ({ ...s }) as { type: string; targetPort?: number });
  const consoles = def.devices.consoles;
  const firstConsole = consoles[0];
  if (serials.length === 0 && firstConsole && (firstConsole.targetType ?? 'serial') === 'serial') {
    serials.push({ type: firstConsole.type });
  }
  const virtioConsoles = consoles.filter((c, i) => c.targetType === 'virtio' || (i > 0 && c.targetType !== 'serial'));
  const channels = channelsOf(def);
  for (const c of channels) {
    if ((c.targetType ?? 'virtio') !== 'virtio') throw unsupported(`channel target type '${c.targetType}'`);
    if (c.type !== 'unix' && c.type !== 'pty') throw unsupported(`channel type '${c.type}'`);
  }
  const rngs = rngsOf(def);
  for (const r of rngs) if (r.model !== 'virtio') throw unsupported(`rng model '${r.model}'`);
  const inputs = inputsOf(def);
  for (const i of inputs) {
    if (i.bus !== undefined && i.bus !== 'ps2' && i.bus !== 'usb') throw unsupported(`input bus '${i.bus}'`);
  }

  // Implicit controllers, as libvirt adds them for the devices present.
  type Ctl = { type: string; index: number; model?: string; address?: PciAddress };
  const ctls: Ctl[] = controllers.map((c) => ({ ...c }));
  const hasCtl = (type: string, index = 0) => ctls.some((c) => c.type === type && c.index === index);
  const diskBuses = disks.map((d) => diskBus(d, q35));
  if (diskBuses.includes('scsi') && !hasCtl('scsi')) ctls.push({ type: 'scsi', index: 0 });
  if (!q35 && diskBuses.includes('sata') && !hasCtl('sata')) ctls.push({ type: 'sata', index: 0 });
  if ((virtioConsoles.length || channels.length) && !hasCtl('virtio-serial')) ctls.push({ type: 'virtio-serial', index: 0 });
  const usb = ctls.find((c) => c.type === 'usb' && c.index === 0);
  const usbModel = usb?.model ?? (q35 ? 'qemu-xhci' : 'piix3-uhci');
  for (const d of diskBuses) if (!['virtio', 'ide', 'scsi', 'sata'].includes(d)) throw unsupported(`disk bus '${d}'`);
  if (q35 && diskBuses.includes('ide')) throw unsupported('IDE controllers are unsupported for this QEMU binary or machine type');

  // PCI assignment order (qemuDomainAssignDevicePCISlots): nets, controllers, virtio disks, balloon, other videos.
  const nicPlacement = nics.map((n) => slots.place(interfaceExtras(n).pci));
  const ctlOrder = ['usb', 'scsi', 'sata', 'virtio-serial'];
  const ctlPlacement = new Map<Ctl, { bus: string; addr: string }>();
  for (const c of ctls) {
    if (!ctlOrder.includes(c.type)) continue;
    if (c.type === 'usb') {
      if (usbModel === 'none' || c.index !== 0) continue;
      if (usbModel === 'piix3-uhci' && !q35) {
        ctlPlacement.set(c, { bus: slots.busName, addr: '0x1.0x2' });
        continue;
      }
    }
    if (c.type === 'sata' && q35 && c.index === 0) continue;
    ctlPlacement.set(c, slots.place(c.address));
  }
  // A USB controller nobody declared still exists: libvirt adds one by default.
  const implicitUsb: Ctl | undefined = usb ? undefined : { type: 'usb', index: 0, model: usbModel };
  if (implicitUsb) {
    ctlPlacement.set(
      implicitUsb,
      !q35 ? { bus: slots.busName, addr: '0x1.0x2' } : slots.place(undefined),
    );
  }

  const n = disks.length;
  const plans: DiskPlan[] = disks.map((disk, i) => ({
    disk,
    bus: diskBuses[i]!,
    index: diskNameIndex(disk.target.dev),
    // libvirt numbers storage nodes from the last disk up.
    nodeIndex: n - i,
  }));
  for (const p of plans) if (p.bus === 'virtio') p.pci = slots.place(diskExtras(p.disk).pci);
  const balloonPlacement = balloon.model === 'virtio' ? slots.place(balloon.address) : undefined;
  const rngPlacement = rngs.map((r) => slots.place(r.address));
  for (let i = 0; i < videos.length; i++) if (!videoPlacement[i]) videoPlacement[i] = slots.place(videos[i]!.address);

  // Boot order: per-device <boot order=N/> wins; otherwise <os><boot dev=.../> picks the first of each kind.
  const nicBoot: Array<number | undefined> = nics.map((nic) => nic.bootOrder);
  const perDevice = disks.some((d) => d.bootOrder !== undefined) || nics.some((x) => x.bootOrder !== undefined);
  if (perDevice) {
    for (const p of plans) p.bootindex = p.disk.bootOrder;
  } else {
    const bootDevs = def.os.boot.length ? def.os.boot : def.os.kernel ? [] : ['hd'];
    let next = 1;
    for (const b of bootDevs) {
      if (b === 'hd') {
        const p = plans.find((x) => x.disk.device === 'disk' && x.bootindex === undefined);
        if (p) p.bootindex = next++;
      } else if (b === 'cdrom') {
        const p = plans.find((x) => x.disk.device === 'cdrom' && x.bootindex === undefined);
        if (p) p.bootindex = next++;
      } else if (b === 'fd') {
        const p = plans.find((x) => x.disk.device === 'floppy' && x.bootindex === undefined);
        if (p) p.bootindex = next++;
      } else if (b === 'network') {
        if (nics.length && nicBoot[0] === undefined) nicBoot[0] = next++;
      }
    }
  }

  // ---- emission, in qemuBuildCommandLine's order ----
  add('-name', `guest=${qemuOptEscape(name)},debug-threads=on`);
  add('-S');
  add('-object', json({ 'qom-type': 'secret', id: 'masterKey0', format: 'raw', file: masterKey }));

  const loader = loaderOf(def);
  const nvram = nvramOf(def);
  if (def.os.firmware && !loader) throw unsupported(`firmware autoselection ('${def.os.firmware}'); give <loader>`);
  const pflash = loader && (nvram !== undefined || loader.type === 'pflash');
  if (pflash) {
    add(
      '-blockdev',
      json({ driver: 'file', filename: loader.path, 'node-name': 'libvirt-pflash0-storage', 'auto-read-only': true, discard: 'unmap' }),
    );
    add(
      '-blockdev',
      json({ 'node-name': 'libvirt-pflash0-format', 'read-only': true, driver: 'raw', file: 'libvirt-pflash0-storage' }),
    );
    if (nvram) {
      add('-blockdev', json({ driver: 'file', filename: nvram, 'node-name': 'libvirt-pflash1-storage', 'read-only': false }));
    }
  }

  const machineOpts = [machine, 'usb=off', 'dump-guest-core=off', 'memory-backend=pc.ram'];
  if (pflash) machineOpts.push('pflash0=libvirt-pflash0-format');
  if (pflash && nvram) machineOpts.push('pflash1=libvirt-pflash1-storage');
  machineOpts.push(hasAcpi(def) ? 'acpi=on' : 'acpi=off');
  add('-machine', machineOpts.join(','));
  add('-accel', accel);

  const cpu = cpuOf(def);
  if (cpu.mode === 'host-passthrough' || cpu.mode === 'host-model' || cpu.mode === 'maximum') {
    if (accel !== 'kvm' && cpu.mode !== 'maximum') throw unsupported(`CPU mode '${cpu.mode}' needs KVM`);
    add('-cpu', cpu.mode === 'maximum' ? 'max' : 'host,migratable=on');
  } else {
    add('-cpu', cpu.model ?? 'qemu64');
  }
  if (loader && !pflash) add('-bios', loader.path);

  // libvirt aligns guest RAM to 1 MiB on x86.
  const memKiB = Math.ceil(def.memoryKiB / 1024) * 1024;
  add('-m', `size=${memKiB}k`);
  add('-object', json({ 'qom-type': 'memory-backend-ram', id: 'pc.ram', size: memKiB * 1024 }));
  add('-overcommit', backing.locked ? 'mem-lock=on' : 'mem-lock=off');

  const threads = cpu.threads ?? 1;
  const cores = cpu.cores ?? 1;
  const dies = cpu.dies;
  const sockets = cpu.sockets ?? Math.max(1, Math.floor(def.vcpus / (cores * threads * (dies ?? 1))));
  const current = currentVcpusOf(def);
  const smpCount = current !== undefined && current < def.vcpus ? [String(current), `maxcpus=${def.vcpus}`] : [String(def.vcpus)];
  add('-smp', [...smpCount, `sockets=${sockets}`, ...(dies && dies > 1 ? [`dies=${dies}`] : []), `cores=${cores}`, `threads=${threads}`].join(','));
  for (let i = 1; i <= iothreadsOf(def); i++) add('-object', json({ 'qom-type': 'iothread', id: `iothread${i}` }));

  add('-uuid', def.uuid);
  if (graphics.length === 0) add('-display', 'none');
  add('-no-user-config');
  add('-nodefaults');

  const mon =
    'fd' in rt.monitor
      ? `socket,id=charmonitor,fd=${rt.monitor.fd},server=on,wait=off`
      : `socket,id=charmonitor,path=${qemuOptEscape(rt.monitor.path)},server=on,wait=off`;
  add('-chardev', mon);
  add('-mon', 'chardev=charmonitor,id=monitor,mode=control');

  const offset = clockOffsetOf(def) ?? 'utc';
  if (offset !== 'utc' && offset !== 'localtime') throw unsupported(`clock offset '${offset}'`);
  add('-rtc', `base=${offset}`);
  // Kept alive after guest power-off so the driver sees it and applies on_poweroff itself.
  add('-no-shutdown');
  add('-boot', bootMenuOf(def) ? 'menu=on,strict=on' : 'strict=on');
  if (def.os.kernel) add('-kernel', def.os.kernel);
  if (def.os.initrd) add('-initrd', def.os.initrd);
  if (def.os.cmdline) add('-append', def.os.cmdline);

  // Controllers: USB, SCSI, SATA, virtio-serial, in that order.
  const ctlsInOrder = [...(implicitUsb ? [implicitUsb] : []), ...ctls];
  for (const type of ctlOrder) {
    for (const c of ctlsInOrder.filter((x) => x.type === type)) {
      const place = ctlPlacement.get(c);
      if (!place) continue;
      if (type === 'usb') {
        const driver = { 'piix3-uhci': 'piix3-usb-uhci', 'qemu-xhci': 'qemu-xhci', 'nec-xhci': 'nec-usb-xhci', ehci: 'usb-ehci' }[
          c.model ?? usbModel
        ];
        if (!driver) throw unsupported(`USB controller model '${c.model}'`);
        dev({ driver, id: 'usb', ...place });
      } else if (type === 'scsi') {
        const model = c.model ?? 'lsilogic';
        const driver = { lsilogic: 'lsi', 'virtio-scsi': 'virtio-scsi-pci' }[model];
        if (!driver) throw unsupported(`SCSI controller model '${model}'`);
        dev({ driver, id: `scsi${c.index}`, ...place });
      } else if (type === 'sata') {
        dev({ driver: 'ahci', id: `sata${c.index}`, ...place });
      } else if (type === 'virtio-serial') {
        dev({ driver: 'virtio-serial-pci', id: `virtio-serial${c.index}`, ...place });
      }
    }
  }

  for (const p of plans) emitDisk(p, q35, ctls, add, dev);

  nics.forEach((nic, i) => emitNic(def, nic, i, rt.netdevs?.[i], nicPlacement[i]!, nicBoot[i], add, dev));

  serials.forEach((s, i) => {
    const id = `charserial${i}`;
    add('-chardev', chardevOpts(s, id, i === 0 ? rt.consoleLog : undefined, def.devices.serials[i]));
    dev({ driver: 'isa-serial', chardev: id, id: `serial${i}`, index: s.targetPort ?? i });
  });
  channels.forEach((c, i) => {
    const id = `charchannel${i}`;
    const path = c.path ?? `${rt.domainDir}/channel${i}.sock`;
    add('-chardev', c.type === 'unix' ? `socket,id=${id},path=${qemuOptEscape(path)},server=on,wait=off` : `pty,id=${id}`);
    dev({
      driver: 'virtserialport',
      bus: `virtio-serial${c.controller ?? 0}.0`,
      nr: c.port ?? i + 1,
      chardev: id,
      id: `channel${i}`,
      ...(c.name ? { name: c.name } : {}),
    });
  });
  virtioConsoles.forEach((c, i) => {
    const idx = consoles.indexOf(c);
    const id = `charconsole${idx}`;
    add('-chardev', chardevOpts(c, id, serials.length === 0 && i === 0 ? rt.consoleLog : undefined, c));
    dev({ driver: 'virtconsole', chardev: id, id: `console${idx}` });
  });

  let usbPort = 0;
  inputs.forEach((inp, i) => {
    if (inp.bus !== 'usb') return;
    if (usbModel === 'none') throw unsupported('USB input device without a USB controller');
    const driver = { tablet: 'usb-tablet', mouse: 'usb-mouse', keyboard: 'usb-kbd' }[inp.type];
    if (!driver) throw unsupported(`input type '${inp.type}'`);
    dev({ driver, id: `input${i}`, bus: 'usb.0', port: String(++usbPort) });
  });

  add('-audiodev', json({ id: 'audio1', driver: 'none' }));

  graphics.forEach((g, i) => {
    const port = rt.vncPorts?.[i] ?? (g.autoport === false || (g.port !== undefined && g.port >= 5900) ? g.port : undefined);
    if (port === undefined || port < 5900) throw new VirtError('internal-error', 'no VNC port was allocated for the display');
    const listen = graphicsListenOf(g) ?? rt.vncListen ?? '127.0.0.1';
    const host = listen.includes(':') ? `[${listen}]` : listen;
    // The password itself goes over QMP (set_password), never on the command line.
    add('-vnc', `${host}:${port - 5900}${g.passwd ? ',password=on' : ''},audiodev=audio1`);
  });

  videos.forEach((v, i) => {
    const place = videoPlacement[i]!;
    const primary = i === 0;
    switch (v.model) {
      case 'cirrus':
        if (!primary) throw unsupported('video type cirrus is only valid as primary video device');
        dev({ driver: 'cirrus-vga', id: `video${i}`, ...place });
        break;
      case 'vga':
        dev({
          driver: primary ? 'VGA' : 'secondary-vga',
          id: `video${i}`,
          vgamem_mb: Math.floor((v.vramKiB ?? 16384) / 1024),
          ...place,
        });
        break;
      case 'virtio':
        dev({ driver: primary ? 'virtio-vga' : 'virtio-gpu-pci', id: `video${i}`, max_outputs: v.heads ?? 1, ...place });
        break;
      case 'bochs':
        dev({ driver: 'bochs-display', id: `video${i}`, vgamem: (v.vramKiB ?? 16384) * 1024, ...place });
        break;
      default:
        throw unsupported(`video type '${v.model}'`);
    }
  });

  if (balloonPlacement) {
    dev({
      driver: 'virtio-balloon-pci',
      id: 'balloon0',
      ...balloonPlacement,
      ...(balloon.autodeflate !== undefined ? { 'deflate-on-oom': balloon.autodeflate } : {}),
    });
  }

  rngs.forEach((r, i) => {
    const backend =
      r.backendModel === 'builtin'
        ? { 'qom-type': 'rng-builtin', id: `objrng${i}` }
        : { 'qom-type': 'rng-random', id: `objrng${i}`, filename: r.path ?? '/dev/urandom' };
    add('-object', json(backend));
    dev({ driver: 'virtio-rng-pci', rng: `objrng${i}`, id: `rng${i}`, ...rngPlacement[i]! });
  });

  add('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
  add('-msg', 'timestamp=on');
  if (rt.pidfile) add('-pidfile', rt.pidfile);

  return {
    binary: rt.emulator ?? def.devices.emulator ?? DEFAULT_EMULATOR,
    args,
    env: {
      LC_ALL: 'C',
      HOME: rt.domainDir,
      XDG_DATA_HOME: `${rt.domainDir}/.local/share`,
      XDG_CACHE_HOME: `${rt.domainDir}/.cache`,
      XDG_CONFIG_HOME: `${rt.domainDir}/.config`,
    },
  };
}

function chardevOpts(chr: { type: string }, id: string, logfile: string | undefined, source: unknown): string {
  let base: string;
  switch (chr.type) {
    case 'pty':
      base = `pty,id=${id}`;
      break;
    case 'null':
      base = `null,id=${id}`;
      break;
    case 'file': {
      const path = chardevSourcePath(source);
      if (!path) throw new VirtError('xml-error', `XML error: missing source path for ${id}`);
      base = `file,id=${id},path=${qemuOptEscape(path)}`;
      break;
    }
    case 'unix': {
      const path = chardevSourcePath(source);
      if (!path) throw new VirtError('xml-error', `XML error: missing source path for ${id}`);
      base = `socket,id=${id},path=${qemuOptEscape(path)},server=on,wait=off`;
      break;
    }
    default:
      throw unsupported(`character device type '${chr.type}'`);
  }
  return logfile ? `${base},logfile=${qemuOptEscape(logfile)},logappend=on` : base;
}

function emitDisk(
  p: DiskPlan,
  q35: boolean,
  ctls: Array<{ type: string; index: number; model?: string }>,
  add: (...a: string[]) => void,
  dev: (o: Record<string, unknown>) => void,
): void {
  const { disk } = p;
  const drv = disk.driver ?? {};
  const format = drv.type ?? 'raw';
  const cdrom = disk.device === 'cdrom';
  const readonly = disk.readonly || cdrom;
  const cache = drv.cache && drv.cache !== 'default' ? CACHE_MODES[drv.cache] : undefined;
  if (drv.cache && drv.cache !== 'default' && !cache) throw unsupported(`disk cache mode '${drv.cache}'`);
  if (disk.device === 'floppy' || disk.device === 'lun') throw unsupported(`disk device '${disk.device}'`);
  const src = disk.source ?? {};

  let drive: string | undefined;
  const path = disk.type === 'block' ? src.dev : disk.type === 'file' ? src.file : undefined;
  if (disk.type !== 'file' && disk.type !== 'block') throw unsupported(`disk type '${disk.type}'`);
  if (path) {
    const storage = `libvirt-${p.nodeIndex}-storage`;
    // libvirt picks host_cdrom only for a real optical drive, not for any block device used as a cdrom.
    const driver = disk.type === 'block' ? (cdrom && isOpticalDrive(path) ? 'host_cdrom' : 'host_device') : 'file';
    const cacheProps = cache ? { cache: { direct: cache.direct, 'no-flush': cache.noFlush } } : {};
    const aio = drv.io ? { aio: drv.io } : {};
    const discard = drv.discard === 'unmap' ? { discard: 'unmap' } : {};
    if (format === 'raw') {
      // libvirt opens raw images without a format layer: the protocol node is the drive.
      add(
        '-blockdev',
        json({ driver, filename: path, ...aio, 'node-name': storage, ...cacheProps, 'read-only': readonly, ...discard }),
      );
      drive = storage;
    } else {
      const fmtNode = `libvirt-${p.nodeIndex}-format`;
      add(
        '-blockdev',
        json({ driver, filename: path, ...aio, 'node-name': storage, ...cacheProps, 'auto-read-only': true, discard: 'unmap' }),
      );
      add(
        '-blockdev',
        json({ 'node-name': fmtNode, 'read-only': readonly, ...discard, ...cacheProps, driver: format, file: storage }),
      );
      drive = fmtNode;
    }
  } else if (!cdrom) {
    throw new VirtError('xml-error', `XML error: disk '${disk.target.dev}' has no source`);
  }

  const tail = {
    ...(disk.shareable ? { 'share-rw': true } : {}),
    ...(drive ? { drive } : {}),
  };
  const after = {
    ...(p.bootindex !== undefined ? { bootindex: p.bootindex } : {}),
    ...(cache ? { 'write-cache': cache.writeback ? 'on' : 'off' } : {}),
    ...(disk.serial ? { serial: disk.serial } : {}),
  };
  const ex = diskExtras(disk);

  switch (p.bus) {
    case 'virtio': {
      if (cdrom) throw unsupported('virtio cdrom');
      dev({
        driver: 'virtio-blk-pci',
        ...(ex.eventIdx !== undefined ? { event_idx: ex.eventIdx } : {}),
        ...p.pci,
        ...tail,
        id: `virtio-disk${p.index}`,
        ...after,
      });
      return;
    }
    case 'ide': {
      const a = ex.drive ?? { controller: Math.floor(p.index / 4), bus: Math.floor((p.index % 4) / 2), target: 0, unit: p.index % 2 };
      if (a.controller !== 0) throw unsupported('Only 1 ide controller is supported');
      dev({
        driver: cdrom ? 'ide-cd' : 'ide-hd',
        bus: `ide.${a.bus}`,
        unit: a.unit,
        ...tail,
        id: `ide${a.controller}-${a.bus}-${a.unit}`,
        ...after,
      });
      return;
    }
    case 'sata': {
      const a = ex.drive ?? { controller: Math.floor(p.index / 6), bus: 0, target: 0, unit: p.index % 6 };
      if (a.controller !== 0) throw unsupported('only one SATA controller is supported');
      dev({
        driver: cdrom ? 'ide-cd' : 'ide-hd',
        // q35's built-in AHCI names its ports ide.N.
        bus: q35 ? `ide.${a.unit}` : `sata0.${a.unit}`,
        ...tail,
        id: `sata0-0-${a.unit}`,
        ...after,
      });
      return;
    }
    case 'scsi': {
      const a = ex.drive ?? { controller: Math.floor(p.index / 7), bus: 0, target: 0, unit: p.index % 7 };
      const ctl = ctls.find((c) => c.type === 'scsi' && c.index === a.controller);
      if (!ctl) throw unsupported(`no SCSI controller ${a.controller}`);
      const lsi = (ctl.model ?? 'lsilogic') === 'lsilogic';
      const alias = lsi
        ? `scsi${a.controller}-${a.bus}-${a.unit}`
        : `scsi${a.controller}-${a.bus}-${a.target}-${a.unit}`;
      dev({
        driver: cdrom ? 'scsi-cd' : 'scsi-hd',
        bus: `scsi${a.controller}.${a.bus}`,
        ...(lsi ? { 'scsi-id': a.unit } : { channel: a.bus, 'scsi-id': a.target, lun: a.unit }),
        ...(cdrom ? {} : { device_id: `drive-${alias}` }),
        ...tail,
        id: alias,
        ...after,
      });
      return;
    }
  }
}

const isOpticalDrive = (path: string): boolean => /^\/dev\/(cdrom\d*|dvd\d*|sr\d+|scd\d+)$/.test(path);

const NIC_DRIVERS: Record<string, string> = {
  virtio: 'virtio-net-pci',
  rtl8139: 'rtl8139',
  e1000: 'e1000',
  e1000e: 'e1000e',
  'virtio-transitional': 'virtio-net-pci-transitional',
  'virtio-non-transitional': 'virtio-net-pci-non-transitional',
};

/** The qemu device driver for an interface model; x86 guests get an rtl8139 when none is named, as under libvirt. */
export const nicDriver = (model: string | undefined): string => {
  const m = model ?? 'rtl8139';
  const driver = NIC_DRIVERS[m];
  if (!driver) throw unsupported(`interface model '${m}'`);
  return driver;
};

/** `-netdev` properties for a tap-backed interface; the id is shared with hot-plugged NICs. */
export function tapNetdev(nic: InterfaceModel, driver: string, backend: NetdevBackend, id: string): Record<string, unknown> {
  const virtio = driver.startsWith('virtio');
  const ex = interfaceExtras(nic);
  const sndbuf = ex.sndbuf !== undefined ? { sndbuf: ex.sndbuf } : {};
  if ('fd' in backend) {
    const vhost = virtio && backend.vhostfd ? { vhost: true, vhostfd: backend.vhostfd } : {};
    return { type: 'tap', fd: backend.fd, ...vhost, ...sndbuf, id };
  }
  const vhost = virtio && backend.vhost ? { vhost: true } : {};
  return { type: 'tap', ifname: backend.tap, script: 'no', downscript: 'no', ...vhost, ...sndbuf, id };
}

/** `-device` properties of a NIC without its PCI placement; libvirt's aliases: net<N> on hostnet<N>. */
export function nicDevice(nic: InterfaceModel, driver: string, index: number, mac: string): Record<string, unknown> {
  const virtio = driver.startsWith('virtio');
  if (nic.mtu !== undefined && !virtio) throw unsupported(`setting MTU on interface model '${nic.model ?? 'rtl8139'}'`);
  return {
    driver,
    ...(virtio && nic.mtu !== undefined ? { host_mtu: nic.mtu } : {}),
    netdev: `hostnet${index}`,
    id: `net${index}`,
    mac,
  };
}

function emitNic(
  def: DomainDefinition,
  nic: InterfaceModel,
  i: number,
  backend: NetdevBackend | undefined,
  place: { bus: string; addr: string },
  bootindex: number | undefined,
  add: (...a: string[]) => void,
  dev: (o: Record<string, unknown>) => void,
): void {
  const driver = nicDriver(nic.model);
  const id = `hostnet${i}`;

  switch (nic.type) {
    case 'user':
      add('-netdev', json({ type: 'user', id }));
      break;
    case 'network':
    case 'bridge':
    case 'ethernet':
    case 'direct': {
      if (!backend) {
        throw new VirtError(
          'operation-failed',
          `no tap device was prepared for interface ${i} (${nic.mac ?? 'no MAC'}, type ${nic.type})`,
        );
      }
      add('-netdev', json(tapNetdev(nic, driver, backend, id)));
      break;
    }
    default:
      throw unsupported(`interface type '${nic.type}'`);
  }
  dev({
    ...nicDevice(nic, driver, i, nic.mac ?? defaultMac(def.uuid, i)),
    ...place,
    ...(bootindex !== undefined ? { bootindex } : {}),
  });
}

/** One option per line, quoted for a shell, as libvirt writes the command line into the domain log. */
export const formatCommand = (cmd: QemuCommand): string => {
  const q = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);
  const lines = Object.entries(cmd.env).map(([k, v]) => `${k}=${q(v)}`);
  lines.push(q(cmd.binary));
  for (let i = 0; i < cmd.args.length; i++) {
    const a = cmd.args[i]!;
    const next = cmd.args[i + 1];
    if (a.startsWith('-') && next !== undefined && !next.startsWith('-')) {
      lines.push(`${a} ${q(next)}`);
      i++;
    } else lines.push(a);
  }
  return lines.join(' \\\n');
};
