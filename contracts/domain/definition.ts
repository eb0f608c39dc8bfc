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

/**
 * libvirt accepts any 128-bit UUID (virUUIDParse), not only RFC 9562 variants: its own test guests use
 * ids such as c7a5fdbd-edaf-9455-926a-d65c16db1809, which z.uuid() refuses.
 */
export const Uuid = z.guid();

/** Attributes of an element kept exactly as given, e.g. `<address type='pci' slot='0x03'/>`. */
export const AttrMap = z.record(z.string(), z.string());
export type AttrMap = z.infer<typeof AttrMap>;

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
    /** `<host transport='unix' socket=...>`: the one host of a unix-socket network source. */
    socket: z.string(),
    startupPolicy: z.string(),
    query: z.string(),
    index: z.number().int(),
  })
  .partial();
export type DiskSource = z.infer<typeof DiskSource>;

/** One layer of an explicit `<backingStore>` chain; an empty object ends the chain. */
export interface BackingStore {
  type?: string;
  index?: number;
  format?: string;
  source?: DiskSource;
  backingStore?: BackingStore;
}
export const BackingStore: z.ZodType<BackingStore> = z.object({
  type: z.string().optional(),
  index: z.number().int().optional(),
  format: z.string().optional(),
  source: DiskSource.optional(),
  get backingStore() {
    return BackingStore.optional();
  },
});

const IOTUNE_KEYS = [
  'totalBytesSec', 'readBytesSec', 'writeBytesSec', 'totalIopsSec', 'readIopsSec', 'writeIopsSec',
  'totalBytesSecMax', 'readBytesSecMax', 'writeBytesSecMax', 'totalIopsSecMax', 'readIopsSecMax', 'writeIopsSecMax',
  'totalBytesSecMaxLength', 'readBytesSecMaxLength', 'writeBytesSecMaxLength',
  'totalIopsSecMaxLength', 'readIopsSecMaxLength', 'writeIopsSecMaxLength', 'sizeIopsSec',
] as const;
/** `<iotune>` limits; keys are libvirt's element names in camelCase (total_bytes_sec -> totalBytesSec). */
export const IoTune = z
  .object({
    ...(Object.fromEntries(IOTUNE_KEYS.map((k) => [k, z.number().int().nonnegative().optional()])) as {
      [K in (typeof IOTUNE_KEYS)[number]]: z.ZodOptional<z.ZodNumber>;
    }),
    groupName: z.string().optional(),
  });
export type IoTune = z.infer<typeof IoTune>;
export const IOTUNE_FIELDS = IOTUNE_KEYS;

export const DiskModel = z.object({
  type: z.enum(['file', 'block', 'network', 'volume', 'dir', 'nvme', 'vhostuser']).default('file'),
  device: z.enum(['disk', 'cdrom', 'floppy', 'lun']).default('disk'),
  driver: z
    .object({
      name: z.string(),
      type: z.string(),
      cache: z.string(),
      io: z.string(),
      discard: z.string(),
      iothread: z.number().int(),
      queues: z.number().int(),
      queueSize: z.number().int(),
      errorPolicy: z.string(),
      rerrorPolicy: z.string(),
      detectZeroes: z.string(),
      copyOnRead: z.string(),
      eventIdx: z.string(),
      ioeventfd: z.string(),
    })
    .partial()
    .optional(),
  source: DiskSource.optional(),
  target: z.object({
    dev: z.string().min(1),
    bus: z.string().optional(),
    tray: z.string().optional(),
    removable: z.string().optional(),
    rotationRate: z.number().int().optional(),
  }),
  readonly: z.boolean().default(false),
  shareable: z.boolean().default(false),
  transient: z.boolean().optional(),
  serial: z.string().optional(),
  wwn: z.string().optional(),
  vendor: z.string().optional(),
  product: z.string().optional(),
  bootOrder: z.number().int().positive().optional(),
  /** `<disk snapshot=...>`, `<disk sgio=...>` and `<disk rawio=...>`. */
  snapshot: z.string().optional(),
  sgio: z.string().optional(),
  rawio: z.string().optional(),
  auth: z
    .object({
      username: z.string().optional(),
      secret: z.object({ type: z.string(), usage: z.string(), uuid: z.string() }).partial().optional(),
    })
    .optional(),
  iotune: IoTune.optional(),
  backingStore: BackingStore.optional(),
  alias: z.string().optional(),
  address: AttrMap.optional(),
});
export type DiskModel = z.infer<typeof DiskModel>;

const Bandwidth = z
  .object({
    average: z.number().int().nonnegative(),
    peak: z.number().int().nonnegative(),
    burst: z.number().int().nonnegative(),
    floor: z.number().int().nonnegative(),
  })
  .partial();

export const InterfaceModel = z.object({
  /** libvirt's virDomainNetType; the first six are the ones host drivers plumb themselves. */
  type: z.enum([
    'network', 'bridge', 'direct', 'user', 'ethernet', 'vhostuser',
    'server', 'client', 'mcast', 'udp', 'hostdev', 'vdpa', 'internal', 'null', 'vds',
  ]),
  mac: MacAddress.optional(),
  source: z
    .object({
      network: z.string(),
      bridge: z.string(),
      dev: z.string(),
      mode: z.string(),
      portgroup: z.string(),
      /** vhostuser, server, client, mcast and udp sources. */
      type: z.string(),
      path: z.string(),
      address: z.string(),
      port: z.string(),
    })
    .partial()
    .optional(),
  model: z.string().optional(),
  /** `<target dev=...>`: a fixed name, a `%d` template, or absent (the host picks vnetN). */
  targetDev: z.string().optional(),
  mtu: z.number().int().positive().optional(),
  bootOrder: z.number().int().positive().optional(),
  managed: z.boolean().optional(),
  driver: z
    .object({ name: z.string(), queues: z.number().int(), txmode: z.string(), rxQueueSize: z.number().int(), txQueueSize: z.number().int() })
    .partial()
    .optional(),
  /** `<link state='down'/>`. */
  linkState: z.string().optional(),
  tune: z.object({ sndbuf: z.number().int().nonnegative() }).partial().optional(),
  bandwidth: z.object({ inbound: Bandwidth.optional(), outbound: Bandwidth.optional() }).optional(),
  filterref: z
    .object({ filter: z.string(), parameters: z.array(z.object({ name: z.string(), value: z.string() })).optional() })
    .optional(),
  vlan: z
    .object({ trunk: z.boolean().optional(), tags: z.array(z.object({ id: z.number().int().min(0).max(4095), nativeMode: z.string().optional() })) })
    .optional(),
  virtualport: z.object({ type: z.string().optional(), parameters: AttrMap.optional() }).optional(),
  /** `<backend type='passt'>` and friends. */
  backend: AttrMap.optional(),
  alias: z.string().optional(),
  address: AttrMap.optional(),
});
export type InterfaceModel = z.infer<typeof InterfaceModel>;

export const GraphicsModel = z.object({
  type: z.enum(['vnc', 'spice', 'sdl', 'rdp', 'desktop', 'egl-headless', 'dbus']),
  port: z.number().int().optional(),
  autoport: z.boolean().optional(),
  listen: z.string().optional(),
  tlsPort: z.number().int().optional(),
  websocket: z.number().int().optional(),
  keymap: z.string().optional(),
  passwd: z.string().optional(),
  socket: z.string().optional(),
  /** `<listen>` children, in order. */
  listens: z
    .array(z.object({ type: z.string(), address: z.string(), network: z.string(), socket: z.string() }).partial())
    .optional(),
  gl: z.object({ enable: z.string(), rendernode: z.string() }).partial().optional(),
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
  loaderReadonly: z.boolean().optional(),
  loaderType: z.string().optional(),
  loaderSecure: z.boolean().optional(),
  nvramTemplate: z.string().optional(),
  /** `<firmware><feature enabled='yes' name='secure-boot'/></firmware>`. */
  firmwareFeatures: z.array(z.object({ name: z.string(), enabled: z.boolean() })).optional(),
  bootmenu: z.object({ enable: z.boolean().optional(), timeout: z.number().int().optional() }).optional(),
  dtb: z.string().optional(),
  /** Container guests (lxc): the init binary and its arguments. */
  init: z.string().optional(),
  initargs: z.array(z.string()).optional(),
  smbiosMode: z.string().optional(),
});
export type OsModel = z.infer<typeof OsModel>;

/** The first `<source>` of a character device (pty, file, unix, tcp, udp, ...). */
export const CharSource = z
  .object({
    path: z.string(),
    mode: z.string(),
    host: z.string(),
    service: z.string(),
    tls: z.string(),
    channel: z.string(),
    master: z.string(),
    slave: z.string(),
  })
  .partial();

const DeviceInfo = { alias: z.string().optional(), address: AttrMap.optional() };

export const ControllerModel = z.object({
  type: z.string(),
  index: z.number().int().nonnegative().optional(),
  model: z.string().optional(),
  ports: z.number().int().optional(),
  vectors: z.number().int().optional(),
  driver: AttrMap.optional(),
  target: AttrMap.optional(),
  ...DeviceInfo,
});
export type ControllerModel = z.infer<typeof ControllerModel>;

export const FilesystemModel = z.object({
  type: z.string().optional(),
  accessmode: z.string().optional(),
  multidevs: z.string().optional(),
  driver: AttrMap.optional(),
  /** dir, file, name, socket, usage, units: whichever the type uses. */
  source: AttrMap.optional(),
  target: z.object({ dir: z.string() }).partial().optional(),
  readonly: z.boolean().optional(),
  ...DeviceInfo,
});
export type FilesystemModel = z.infer<typeof FilesystemModel>;

export const ChannelModel = z.object({
  type: z.string(),
  source: CharSource.optional(),
  target: z.object({ type: z.string(), name: z.string(), address: z.string(), port: z.string(), state: z.string() }).partial().optional(),
  ...DeviceInfo,
});
export type ChannelModel = z.infer<typeof ChannelModel>;

export const InputModel = z.object({
  type: z.string(),
  bus: z.string().optional(),
  model: z.string().optional(),
  source: AttrMap.optional(),
  ...DeviceInfo,
});

export const VideoModel = z.object({
  model: z
    .object({
      type: z.string(),
      vram: z.number().int().nonnegative(),
      ram: z.number().int().nonnegative(),
      vgamem: z.number().int().nonnegative(),
      vram64: z.number().int().nonnegative(),
      heads: z.number().int().nonnegative(),
      primary: z.boolean(),
      blob: z.string(),
    })
    .partial()
    .optional(),
  driver: AttrMap.optional(),
  ...DeviceInfo,
});

export const SoundModel = z.object({
  model: z.string(),
  codecs: z.array(z.string()).optional(),
  ...DeviceInfo,
});

export const HostdevModel = z.object({
  mode: z.string().optional(),
  type: z.string().optional(),
  managed: z.boolean().optional(),
  source: z
    .object({
      address: AttrMap.optional(),
      vendor: z.string().optional(),
      product: z.string().optional(),
      adapter: AttrMap.optional(),
      startupPolicy: z.string().optional(),
    })
    .optional(),
  driver: AttrMap.optional(),
  rom: AttrMap.optional(),
  bootOrder: z.number().int().positive().optional(),
  ...DeviceInfo,
});
export type HostdevModel = z.infer<typeof HostdevModel>;

export const RngModel = z.object({
  model: z.string(),
  backend: z.object({ model: z.string(), type: z.string(), path: z.string() }).partial().optional(),
  rate: z.object({ bytes: z.number().int().positive(), period: z.number().int().positive().optional() }).optional(),
  ...DeviceInfo,
});

export const WatchdogModel = z.object({ model: z.string(), action: z.string().optional(), ...DeviceInfo });

export const MemballoonModel = z.object({
  model: z.string(),
  autodeflate: z.string().optional(),
  freePageReporting: z.string().optional(),
  statsPeriod: z.number().int().nonnegative().optional(),
  ...DeviceInfo,
});

export const TpmModel = z.object({
  model: z.string().optional(),
  backend: z
    .object({ type: z.string(), version: z.string(), devicePath: z.string(), persistentState: z.string() })
    .partial()
    .optional(),
  alias: z.string().optional(),
});

export const DevicesModel = z.object({
  emulator: z.string().optional(),
  disks: z.array(DiskModel).default([]),
  interfaces: z.array(InterfaceModel).default([]),
  graphics: z.array(GraphicsModel).default([]),
  /** serial/console present: the driver gives the guest a console. */
  serials: z
    .array(
      z.object({
        type: z.string(),
        targetPort: z.number().int().optional(),
        targetType: z.string().optional(),
        targetModel: z.string().optional(),
        source: CharSource.optional(),
        protocol: z.string().optional(),
        ...DeviceInfo,
      }),
    )
    .default([]),
  consoles: z
    .array(
      z.object({
        type: z.string(),
        targetType: z.string().optional(),
        targetPort: z.number().int().optional(),
        source: CharSource.optional(),
        /** The host pty of a running guest's pty console (live XML only). */
        tty: z.string().optional(),
        alias: z.string().optional(),
      }),
    )
    .default([]),
  controllers: z.array(ControllerModel).optional(),
  filesystems: z.array(FilesystemModel).optional(),
  channels: z.array(ChannelModel).optional(),
  inputs: z.array(InputModel).optional(),
  videos: z.array(VideoModel).optional(),
  sounds: z.array(SoundModel).optional(),
  hostdevs: z.array(HostdevModel).optional(),
  rngs: z.array(RngModel).optional(),
  watchdogs: z.array(WatchdogModel).optional(),
  memballoon: MemballoonModel.optional(),
  tpms: z.array(TpmModel).optional(),
});
export type DevicesModel = z.infer<typeof DevicesModel>;

export const DomainDefinition = z.object({
  /** The `type` attribute of `<domain>`: kvm, qemu, lxc, test, ... */
  type: z.string().default('test'),
  name: DomainName,
  uuid: Uuid,
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
  /** The children of `<metadata>` as XML text (application namespaces libvirt keeps verbatim). */
  metadata: z.string().optional(),
  maxMemorySlots: z.number().int().nonnegative().optional(),
  /** `<vcpu placement cpuset current>`; `vcpus` is the element's value (the maximum). */
  vcpu: z
    .object({
      placement: z.enum(['static', 'auto']).optional(),
      cpuset: z.string().optional(),
      current: z.number().int().min(1).optional(),
    })
    .optional(),
  iothreads: z.number().int().nonnegative().optional(),
  memoryBacking: z
    .object({
      hugepages: z.object({ pages: z.array(z.object({ sizeKiB: z.number().int().positive().optional(), nodeset: z.string().optional() })).optional() }).optional(),
      nosharepages: z.boolean().optional(),
      locked: z.boolean().optional(),
      discard: z.boolean().optional(),
      access: z.string().optional(),
      source: z.string().optional(),
      allocation: z.object({ mode: z.string(), threads: z.number().int().positive() }).partial().optional(),
    })
    .optional(),
  numatune: z
    .object({ memory: z.object({ mode: z.string(), nodeset: z.string(), placement: z.string() }).partial().optional() })
    .optional(),
  /** `<features>`: feature element name -> its attributes (`{}` for a bare `<acpi/>`). */
  features: z.record(z.string(), AttrMap).optional(),
  cpu: z
    .object({
      mode: z.string().optional(),
      match: z.string().optional(),
      check: z.string().optional(),
      migratable: z.string().optional(),
      model: z.object({ name: z.string(), fallback: z.string(), vendorId: z.string() }).partial().optional(),
      vendor: z.string().optional(),
      topology: z
        .object({
          sockets: z.number().int().positive(),
          dies: z.number().int().positive(),
          clusters: z.number().int().positive(),
          cores: z.number().int().positive(),
          threads: z.number().int().positive(),
        })
        .partial()
        .optional(),
      features: z.array(z.object({ policy: z.string().optional(), name: z.string() })).optional(),
      numa: z
        .object({
          cells: z
            .array(
              z.object({
                id: z.number().int().nonnegative().optional(),
                cpus: z.string().optional(),
                memoryKiB: z.number().int().nonnegative(),
                memAccess: z.string().optional(),
                discard: z.string().optional(),
              }),
            )
            .optional(),
        })
        .optional(),
    })
    .optional(),
  clock: z
    .object({
      offset: z.string().optional(),
      timezone: z.string().optional(),
      adjustment: z.string().optional(),
      basis: z.string().optional(),
      timers: z
        .array(
          z.object({
            name: z.string(),
            present: z.boolean().optional(),
            tickpolicy: z.string().optional(),
            track: z.string().optional(),
            mode: z.string().optional(),
            frequency: z.number().int().nonnegative().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  onLockfailure: z.string().optional(),
  pm: z.object({ suspendToMem: z.boolean().optional(), suspendToDisk: z.boolean().optional() }).optional(),
  devices: DevicesModel.default({ disks: [], interfaces: [], graphics: [], serials: [], consoles: [] }),
  /** The document as virtplane stores it (formatted libvirt XML), when the domain came from XML. */
  xml: z.string().optional(),
});
export type DomainDefinition = z.infer<typeof DomainDefinition>;
/**
 * What a client sends to define a domain: the definition without the uuid, which the command service
 * derives from the command id when absent (so a retried define is the same domain).
 */
export const DomainDefinitionRequest = DomainDefinition.extend({ uuid: Uuid.optional() });
export type DomainDefinitionInput = z.input<typeof DomainDefinitionRequest>;
