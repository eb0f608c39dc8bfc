import { z } from 'zod';

/**
 * The stored form of a domain definition: what `define` records and what drivers consume.
 * The libvirt XML layer parses into this model and formats it back; fields mirror libvirt's
 * element names in camelCase. Memory is always KiB, as libvirt normalises it.
 */

export const DomainName = z
  .string()
  .min(1)
  .max(255)
  // virXMLCheckIllegalChars rejects a newline in a name; "/" would break file paths on hosts.
  .refine((n) => !n.includes('\n'), 'name must not contain a newline')
  .refine((n) => !n.includes('/'), 'name must not contain "/"');

export const LifecycleAction = z.enum(['destroy', 'restart', 'preserve', 'rename-restart']);
export type LifecycleAction = z.infer<typeof LifecycleAction>;
export const CrashAction = z.enum([
  'destroy',
  'restart',
  'preserve',
  'rename-restart',
  'coredump-destroy',
  'coredump-restart',
]);
export type CrashAction = z.infer<typeof CrashAction>;

export const MacAddress = z
  .string()
  .regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, 'must be a MAC address like 52:54:00:12:34:56')
  .transform((m) => m.toLowerCase());

export const DiskSource = z
  .object({
    file: z.string(),
    dev: z.string(),
    dir: z.string(),
    protocol: z.string(),
    name: z.string(),
    pool: z.string(),
    volume: z.string(),
    hosts: z.array(z.object({ name: z.string(), port: z.number().int().optional(), transport: z.string().optional() })),
  })
  .partial();

export const DiskModel = z.object({
  type: z.enum(['file', 'block', 'network', 'volume', 'dir', 'nvme', 'vhostuser']).default('file'),
  device: z.enum(['disk', 'cdrom', 'floppy', 'lun']).default('disk'),
  driver: z
    .object({ name: z.string(), type: z.string(), cache: z.string(), io: z.string(), discard: z.string() })
    .partial()
    .optional(),
  source: DiskSource.optional(),
  target: z.object({ dev: z.string().min(1), bus: z.string().optional() }),
  readonly: z.boolean().default(false),
  shareable: z.boolean().default(false),
  serial: z.string().optional(),
  bootOrder: z.number().int().positive().optional(),
});
export type DiskModel = z.infer<typeof DiskModel>;

export const InterfaceModel = z.object({
  type: z.enum(['network', 'bridge', 'direct', 'user', 'ethernet', 'vhostuser']),
  mac: MacAddress.optional(),
  source: z
    .object({ network: z.string(), bridge: z.string(), dev: z.string(), mode: z.string(), portgroup: z.string() })
    .partial()
    .optional(),
  model: z.string().optional(),
  /** `<target dev=...>`: a fixed name, a `%d` template, or absent (the host picks vnetN). */
  targetDev: z.string().optional(),
  mtu: z.number().int().positive().optional(),
  bootOrder: z.number().int().positive().optional(),
});
export type InterfaceModel = z.infer<typeof InterfaceModel>;

export const GraphicsModel = z.object({
  type: z.enum(['vnc', 'spice', 'sdl', 'rdp', 'desktop', 'egl-headless', 'dbus']),
  port: z.number().int().optional(),
  autoport: z.boolean().optional(),
  listen: z.string().optional(),
});
export type GraphicsModel = z.infer<typeof GraphicsModel>;

export const OsModel = z.object({
  type: z.string().default('hvm'),
  arch: z.string().optional(),
  machine: z.string().optional(),
  firmware: z.string().optional(),
  loader: z.string().optional(),
  nvram: z.string().optional(),
  kernel: z.string().optional(),
  initrd: z.string().optional(),
  cmdline: z.string().optional(),
  boot: z.array(z.string()).default([]),
});
export type OsModel = z.infer<typeof OsModel>;

export const DevicesModel = z.object({
  emulator: z.string().optional(),
  disks: z.array(DiskModel).default([]),
  interfaces: z.array(InterfaceModel).default([]),
  graphics: z.array(GraphicsModel).default([]),
  /** serial/console present: the driver gives the guest a console. */
  serials: z.array(z.object({ type: z.string(), targetPort: z.number().int().optional() })).default([]),
  consoles: z.array(z.object({ type: z.string(), targetType: z.string().optional() })).default([]),
});
export type DevicesModel = z.infer<typeof DevicesModel>;

export const DomainDefinition = z.object({
  /** The `type` attribute of `<domain>`: kvm, qemu, lxc, test, ... */
  type: z.string().default('test'),
  name: DomainName,
  uuid: z.uuid(),
  title: z.string().optional(),
  description: z.string().optional(),
  memoryKiB: z.number().int().positive(),
  currentMemoryKiB: z.number().int().positive().optional(),
  maxMemoryKiB: z.number().int().positive().optional(),
  vcpus: z.number().int().min(1).max(16384),
  os: OsModel.default({ type: 'hvm', boot: [] }),
  onPoweroff: LifecycleAction.default('destroy'),
  onReboot: LifecycleAction.default('restart'),
  onCrash: CrashAction.default('destroy'),
  devices: DevicesModel.default({ disks: [], interfaces: [], graphics: [], serials: [], consoles: [] }),
  /** The document as virtplane stores it (formatted libvirt XML), when the domain came from XML. */
  xml: z.string().optional(),
});
export type DomainDefinition = z.infer<typeof DomainDefinition>;
export type DomainDefinitionInput = z.input<typeof DomainDefinition>;
