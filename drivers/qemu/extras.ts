import type { DiskModel, DomainDefinition, InterfaceModel } from '../../contracts/domain/definition.ts';

/**
 * Optional libvirt fields the QEMU driver honours when a definition carries them.
 *
 * The stored DomainDefinition is being extended field by field as the XML layer grows, so the
 * driver reads everything beyond the core model defensively: a field that is absent means what an
 * absent element means to libvirt, and a field of an unexpected shape is ignored rather than
 * trusted. Numbers may arrive as strings ("0x02") when they were copied verbatim from XML.
 */

export interface PciAddress {
  bus: number;
  slot: number;
  function: number;
}

export interface DriveAddress {
  controller: number;
  bus: number;
  target: number;
  unit: number;
}

type Loose = Record<string, unknown>;

const isObj = (v: unknown): v is Loose => typeof v === 'object' && v !== null && !Array.isArray(v);

export const num = (v: unknown): number | undefined => {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = v.trim().toLowerCase().startsWith('0x') ? Number.parseInt(v, 16) : Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
};

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** `<tag/>`, `<tag state='on'/>`, `true`, `'on'`, `'yes'` all mean enabled. */
const enabled = (v: unknown): boolean | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') return !['off', 'no', 'false'].includes(v.toLowerCase());
  if (isObj(v)) {
    const s = v.state ?? v.enabled ?? v.enable;
    return s === undefined ? true : enabled(s);
  }
  return undefined;
};

const loose = (v: unknown): Loose => (isObj(v) ? v : {});

export const pciAddressOf = (device: unknown): PciAddress | undefined => {
  const a = loose(loose(device).address);
  if (a.type !== undefined && a.type !== 'pci') return undefined;
  const slot = num(a.slot);
  if (slot === undefined) return undefined;
  return { bus: num(a.bus) ?? 0, slot, function: num(a.function) ?? 0 };
};

export const driveAddressOf = (device: unknown): DriveAddress | undefined => {
  const a = loose(loose(device).address);
  if (a.type !== 'drive') return undefined;
  return {
    controller: num(a.controller) ?? 0,
    bus: num(a.bus) ?? 0,
    target: num(a.target) ?? 0,
    unit: num(a.unit) ?? 0,
  };
};

/** `<features><acpi/></features>`: an array of names, or an object keyed by feature name. */
export const hasAcpi = (def: DomainDefinition): boolean => {
  const f = (def as unknown as Loose).features;
  if (Array.isArray(f)) return f.includes('acpi');
  if (isObj(f)) return enabled(f.acpi) ?? false;
  return false;
};

export interface CpuExtras {
  mode?: string;
  model?: string;
  sockets?: number;
  dies?: number;
  cores?: number;
  threads?: number;
}

export const cpuOf = (def: DomainDefinition): CpuExtras => {
  const c = loose((def as unknown as Loose).cpu);
  const topo = loose(c.topology);
  const model = isObj(c.model) ? str(c.model.name ?? c.model.value ?? c.model['#text']) : str(c.model);
  return {
    mode: str(c.mode),
    model,
    sockets: num(topo.sockets),
    dies: num(topo.dies),
    cores: num(topo.cores),
    threads: num(topo.threads),
  };
};

export const clockOffsetOf = (def: DomainDefinition): string | undefined => {
  const c = (def as unknown as Loose).clock;
  if (typeof c === 'string') return c;
  return str(loose(c).offset);
};

export const iothreadsOf = (def: DomainDefinition): number => {
  const v = (def as unknown as Loose).iothreads;
  return num(isObj(v) ? v.count : v) ?? 0;
};

export const bootMenuOf = (def: DomainDefinition): boolean => {
  const os = def.os as unknown as Loose;
  return enabled(os.bootmenu ?? os.bootMenu) ?? false;
};

export const loaderOf = (def: DomainDefinition): { path: string; readonly?: boolean; type?: string } | undefined => {
  const os = def.os as unknown as Loose;
  const l = os.loader;
  if (typeof l === 'string' && l) {
    const ro = enabled(os.loaderReadonly);
    const type = str(os.loaderType);
    return { path: l, ...(ro === undefined ? {} : { readonly: ro }), ...(type ? { type } : {}) };
  }
  if (isObj(l)) {
    const path = str(l.path ?? l.value ?? l['#text']);
    if (!path) return undefined;
    const ro = enabled(l.readonly);
    return { path, ...(ro === undefined ? {} : { readonly: ro }), ...(str(l.type) ? { type: str(l.type)! } : {}) };
  }
  return undefined;
};

export const nvramOf = (def: DomainDefinition): string | undefined => {
  const n = (def.os as unknown as Loose).nvram;
  if (typeof n === 'string') return n || undefined;
  return str(loose(n).path ?? loose(n).value ?? loose(n)['#text']);
};

export interface ControllerExtras {
  type: string;
  index: number;
  model?: string;
  address?: PciAddress;
}

export const controllersOf = (def: DomainDefinition): ControllerExtras[] => {
  const list = (def.devices as unknown as Loose).controllers;
  if (!Array.isArray(list)) return [];
  return list.filter(isObj).flatMap((c) => {
    const type = str(c.type);
    if (!type) return [];
    const address = pciAddressOf(c);
    return [{ type, index: num(c.index) ?? 0, model: str(c.model), ...(address ? { address } : {}) }];
  });
};

export interface VideoExtras {
  model: string;
  vramKiB?: number;
  heads?: number;
  address?: PciAddress;
}

export const videosOf = (def: DomainDefinition): VideoExtras[] | undefined => {
  const d = def.devices as unknown as Loose;
  const list = d.videos ?? d.video;
  if (list === undefined) return undefined;
  const arr = Array.isArray(list) ? list : [list];
  return arr.filter(isObj).map((v) => {
    const m = isObj(v.model) ? v.model : { type: v.model ?? v.type };
    const address = pciAddressOf(v);
    return {
      model: str(m.type) ?? 'default',
      vramKiB: num(m.vram),
      heads: num(m.heads),
      ...(address ? { address } : {}),
    };
  });
};

export interface BalloonExtras {
  model: string;
  address?: PciAddress;
  autodeflate?: boolean;
}

export const memballoonOf = (def: DomainDefinition): BalloonExtras => {
  const d = def.devices as unknown as Loose;
  const b = d.memballoon;
  if (typeof b === 'string') return { model: b };
  if (!isObj(b)) return { model: 'virtio' };
  const address = pciAddressOf(b);
  const autodeflate = enabled(b.autodeflate);
  return {
    model: str(b.model) ?? 'virtio',
    ...(address ? { address } : {}),
    ...(autodeflate === undefined ? {} : { autodeflate }),
  };
};

export const diskExtras = (disk: DiskModel) => {
  const drv = loose((disk as unknown as Loose).driver);
  return {
    eventIdx: enabled(drv.event_idx ?? drv.eventIdx),
    pci: pciAddressOf(disk),
    drive: driveAddressOf(disk),
  };
};

export const interfaceExtras = (nic: InterfaceModel) => {
  const n = nic as unknown as Loose;
  const tune = loose(n.tune);
  return {
    sndbuf: num(tune.sndbuf ?? n.sndbuf),
    pci: pciAddressOf(nic),
  };
};

/** `<serial type='file'><source path=.../>` and `type='unix'` carry a path. */
export const chardevSourcePath = (chr: unknown): string | undefined => {
  const c = loose(chr);
  return str(loose(c.source).path ?? c.path);
};

/** `<vcpu current=N>`: fewer vCPUs online at boot than the maximum. */
export const currentVcpusOf = (def: DomainDefinition): number | undefined => num(loose((def as unknown as Loose).vcpu).current);

/** `<graphics listen=...>` or its first `<listen type='address'>` child. */
export const graphicsListenOf = (g: unknown): string | undefined => {
  const o = loose(g);
  const direct = str(o.listen);
  if (direct) return direct;
  const ls = Array.isArray(o.listens) ? o.listens.filter(isObj) : [];
  return str(ls.find((l) => l.type === undefined || l.type === 'address')?.address);
};

export interface ChannelExtras {
  type: string;
  targetType?: string;
  name?: string;
  path?: string;
  port?: number;
  controller?: number;
}

export const channelsOf = (def: DomainDefinition): ChannelExtras[] => {
  const list = (def.devices as unknown as Loose).channels;
  if (!Array.isArray(list)) return [];
  return list.filter(isObj).map((c) => {
    const t = loose(c.target);
    const a = loose(c.address);
    return {
      type: str(c.type) ?? 'pty',
      targetType: str(t.type),
      name: str(t.name),
      path: str(loose(c.source).path),
      port: num(a.port),
      controller: num(a.controller),
    };
  });
};

export interface RngExtras {
  model: string;
  backendModel?: string;
  path?: string;
  address?: PciAddress;
}

export const rngsOf = (def: DomainDefinition): RngExtras[] => {
  const list = (def.devices as unknown as Loose).rngs;
  if (!Array.isArray(list)) return [];
  return list.filter(isObj).map((r) => {
    const b = loose(r.backend);
    const address = pciAddressOf(r);
    return {
      model: str(r.model) ?? 'virtio',
      backendModel: str(b.model),
      path: str(b.path),
      ...(address ? { address } : {}),
    };
  });
};

export const inputsOf = (def: DomainDefinition): Array<{ type: string; bus?: string }> => {
  const list = (def.devices as unknown as Loose).inputs;
  if (!Array.isArray(list)) return [];
  return list.filter(isObj).flatMap((i) => (str(i.type) ? [{ type: str(i.type)!, bus: str(i.bus) }] : []));
};

/** Device classes present in the definition that this driver cannot give the guest. */
export const unsupportedDevicesOf = (def: DomainDefinition): string[] => {
  const d = def.devices as unknown as Loose;
  const present = (k: string) => (Array.isArray(d[k]) ? (d[k] as unknown[]).length > 0 : d[k] !== undefined && d[k] !== null);
  return ['filesystems', 'sounds', 'hostdevs', 'watchdogs', 'tpms'].filter(present);
};

/** `<memoryBacking>` settings that need host memory other than anonymous RAM. */
export const memoryBackingOf = (def: DomainDefinition): { hugepages: boolean; source?: string; locked: boolean } => {
  const m = loose((def as unknown as Loose).memoryBacking);
  return { hugepages: m.hugepages !== undefined, source: str(m.source), locked: enabled(m.locked) ?? false };
};
