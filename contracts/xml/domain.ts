import {
  CrashAction,
  DiskModel,
  DomainDefinition,
  GraphicsModel,
  IOTUNE_FIELDS,
  InterfaceModel,
  LifecycleAction,
  type DomainDefinitionInput,
} from '../domain/definition.ts';
import {
  attr,
  attrs,
  child,
  childAttr,
  childText,
  custom,
  flag,
  int,
  list,
  mac,
  obj,
  oneOf,
  positive,
  scaledAttr,
  scaledText,
  str,
  text,
  uint,
  ulong,
  uuid,
  yesno,
  type Codec,
  type ScaleOptions,
} from './codec.ts';
import { formatWith, generateMac, parseWith, type Generators, type KindSpec, type ParseOptions } from './common.ts';
import { parseDocument } from './document.ts';
import { quote, xmlError } from './errors.ts';
import {
  childElements,
  childrenNamed,
  element,
  firstChild,
  insertOrdered,
  removeChild,
  serializeChildren,
  type XElement,
} from './tree.ts';
import { ARCHES, LLONG_MAX, defaultDiskBus, diskNameToIndex, isMulticastMac, parseBitmap } from './units.ts';

// ---------------------------------------------------------------------------------------------
// Orders in which libvirt's formatter writes children; new children are inserted accordingly.

const DOMAIN_ORDER = [
  'name', 'uuid', 'genid', 'title', 'description', 'metadata', 'maxMemory', 'memory', 'currentMemory', 'blkiotune',
  'memtune', 'memoryBacking', 'vcpu', 'vcpus', 'iothreads', 'iothreadids', 'defaultiothread', 'cputune', 'numatune',
  'resource', 'sysinfo', 'bootloader', 'bootloader_args', 'os', 'idmap', 'features', 'cpu', 'clock', 'on_poweroff',
  'on_reboot', 'on_crash', 'on_lockfailure', 'pm', 'perf', 'devices', 'seclabel', 'keywrap', 'launchSecurity',
] as const;
const OS_ORDER = [
  'type', 'firmware', 'loader', 'nvram', 'kernel', 'initrd', 'cmdline', 'dtb', 'acpi', 'init', 'initarg', 'initenv',
  'initdir', 'inituser', 'initgroup', 'boot', 'bootmenu', 'smbios', 'bios',
] as const;
const DEVICES_ORDER = [
  'emulator', 'disk', 'controller', 'lease', 'filesystem', 'interface', 'smartcard', 'serial', 'parallel', 'console',
  'channel', 'input', 'tpm', 'graphics', 'sound', 'audio', 'video', 'hostdev', 'redirdev', 'redirfilter', 'hub',
  'watchdog', 'memballoon', 'rng', 'panic', 'shmem', 'memory', 'iommu', 'vsock', 'crypto', 'pstore',
] as const;
const DISK_ORDER = [
  'driver', 'auth', 'source', 'backingStore', 'geometry', 'blockio', 'target', 'iotune', 'boot', 'readonly', 'shareable',
  'transient', 'serial', 'wwn', 'vendor', 'product', 'encryption', 'alias', 'address',
] as const;
const SOURCE_ORDER = ['host', 'snapshot', 'config', 'auth', 'encryption', 'reservations', 'seclabel'] as const;
const IFACE_ORDER = [
  'mac', 'source', 'virtualport', 'ip', 'route', 'script', 'target', 'guest', 'model', 'driver', 'backend', 'filterref',
  'tune', 'teaming', 'link', 'mtu', 'bandwidth', 'vlan', 'port', 'coalesce', 'rom', 'boot', 'alias', 'address',
] as const;
const CPU_ORDER = ['model', 'vendor', 'topology', 'cache', 'maxphysaddr', 'feature', 'numa'] as const;
const CHAR_ORDER = ['source', 'protocol', 'log', 'target', 'alias', 'address'] as const;
const HOSTDEV_ORDER = ['source', 'driver', 'rom', 'acpi', 'boot', 'alias', 'address'] as const;
const MEMBACKING_ORDER = ['hugepages', 'nosharepages', 'locked', 'source', 'access', 'allocation', 'discard'] as const;

// ---------------------------------------------------------------------------------------------
// Sizes: memory is KiB in the model and in formatted XML, as libvirt writes it.

const MEMORY: ScaleOptions = { defaultScale: 1024n, modelScale: 1024n, unit: 'KiB', limit: LLONG_MAX, normalize: true };
const MEMORY_KEEP: ScaleOptions = { ...MEMORY, normalize: false };

export const VIRT_TYPES = [
  'none', 'qemu', 'kqemu', 'kvm', 'xen', 'lxc', 'uml', 'openvz', 'test', 'vmware', 'hyperv', 'vbox', 'phyp',
  'parallels', 'bhyve', 'vz', 'hvf',
] as const;
export const DISK_BUSES = ['ide', 'fdc', 'scsi', 'virtio', 'xen', 'usb', 'uml', 'sata', 'sd', 'none'] as const;

const s = str;
const alias = childAttr('alias', 'name', s);
const address = child('address', attrs());

const charSource = child(
  'source',
  obj({
    path: attr('path', s),
    mode: attr('mode', s),
    host: attr('host', s),
    service: attr('service', s),
    tls: attr('tls', s),
    channel: attr('channel', s),
    master: attr('master', s),
    slave: attr('slave', s),
  }),
);

/** The one `<host transport='unix' socket=...>` of a unix-socket network disk source. */
const socketHost: Codec<string> = custom(
  (el) => childrenNamed(el, 'host').find((h) => h.attrs.socket !== undefined)?.attrs.socket,
  (el, value, order) => {
    const h = childrenNamed(el, 'host').find((x) => x.attrs.socket !== undefined);
    if (value === undefined) {
      if (h) removeChild(el, h);
    } else if (h) {
      if (h.attrs.socket !== value) h.attrs.socket = value;
    } else insertOrdered(el, element('host', { transport: 'unix', socket: value }), order);
  },
);

const diskSource = obj(
  {
    protocol: attr('protocol', s),
    name: attr('name', s),
    file: attr('file', s),
    dev: attr('dev', s),
    dir: attr('dir', s),
    pool: attr('pool', s),
    volume: attr('volume', s),
    query: attr('query', s),
    index: attr('index', uint),
    startupPolicy: attr('startupPolicy', s),
    hosts: list(
      'host',
      obj({ name: attr('name', s), port: attr('port', uint), transport: attr('transport', s) }),
      { filter: (h) => h.attrs.socket === undefined },
    ),
    socket: socketHost,
  },
  SOURCE_ORDER,
);

const lazy = <T>(get: () => Codec<T>): Codec<T> => ({
  read: (el, path) => get().read(el, path),
  write: (el, v, order, ctx) => get().write(el, v, order, ctx),
});

const backingStore: Codec = obj(
  {
    type: attr('type', s),
    index: attr('index', uint),
    format: childAttr('format', 'type', s),
    source: child('source', diskSource),
    backingStore: child('backingStore', lazy(() => backingStore)),
  },
  ['format', 'source', 'backingStore'],
);

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const iotune = obj({
  ...Object.fromEntries(IOTUNE_FIELDS.map((k) => [k, childText(snake(k), ulong)])),
  groupName: childText('group_name', s),
});

const disk = obj(
  {
    type: attr('type', oneOf(DiskModel.shape.type.unwrap().options)),
    device: attr('device', oneOf(DiskModel.shape.device.unwrap().options)),
    snapshot: attr('snapshot', s),
    sgio: attr('sgio', s),
    rawio: attr('rawio', s),
    driver: child(
      'driver',
      obj({
        name: attr('name', s),
        type: attr('type', s),
        cache: attr('cache', s),
        io: attr('io', s),
        discard: attr('discard', s),
        iothread: attr('iothread', uint),
        queues: attr('queues', uint),
        queueSize: attr('queue_size', uint),
        errorPolicy: attr('error_policy', s),
        rerrorPolicy: attr('rerror_policy', s),
        detectZeroes: attr('detect_zeroes', s),
        copyOnRead: attr('copy_on_read', s),
        eventIdx: attr('event_idx', s),
        ioeventfd: attr('ioeventfd', s),
      }),
    ),
    auth: child(
      'auth',
      obj({
        username: attr('username', s),
        secret: child('secret', obj({ type: attr('type', s), usage: attr('usage', s), uuid: attr('uuid', s) })),
      }),
    ),
    source: child('source', diskSource),
    backingStore: child('backingStore', backingStore),
    target: child(
      'target',
      obj({
        dev: attr('dev', s),
        bus: attr('bus', s),
        tray: attr('tray', s),
        removable: attr('removable', s),
        rotationRate: attr('rotation_rate', uint),
      }),
    ),
    iotune: child('iotune', iotune),
    bootOrder: childAttr('boot', 'order', positive),
    readonly: flag('readonly'),
    shareable: flag('shareable'),
    transient: flag('transient'),
    serial: childText('serial', s),
    wwn: childText('wwn', s),
    vendor: childText('vendor', s),
    product: childText('product', s),
    alias,
    address,
  },
  DISK_ORDER,
);

const bandwidthLimit = obj({
  average: attr('average', ulong),
  peak: attr('peak', ulong),
  burst: attr('burst', ulong),
  floor: attr('floor', ulong),
});

const iface = obj(
  {
    type: attr('type', oneOf(InterfaceModel.shape.type.options)),
    managed: attr('managed', yesno),
    mac: childAttr('mac', 'address', mac),
    source: child(
      'source',
      obj({
        network: attr('network', s),
        bridge: attr('bridge', s),
        dev: attr('dev', s),
        mode: attr('mode', s),
        portgroup: attr('portgroup', s),
        type: attr('type', s),
        path: attr('path', s),
        address: attr('address', s),
        port: attr('port', s),
      }),
    ),
    virtualport: child('virtualport', obj({ type: attr('type', s), parameters: child('parameters', attrs()) })),
    targetDev: childAttr('target', 'dev', s),
    model: childAttr('model', 'type', s),
    driver: child(
      'driver',
      obj({
        name: attr('name', s),
        queues: attr('queues', uint),
        txmode: attr('txmode', s),
        rxQueueSize: attr('rx_queue_size', uint),
        txQueueSize: attr('tx_queue_size', uint),
      }),
    ),
    backend: child('backend', attrs()),
    tune: child('tune', obj({ sndbuf: childText('sndbuf', ulong) })),
    linkState: childAttr('link', 'state', s),
    mtu: childAttr('mtu', 'size', positive),
    bandwidth: child('bandwidth', obj({ inbound: child('inbound', bandwidthLimit), outbound: child('outbound', bandwidthLimit) })),
    filterref: child(
      'filterref',
      obj({ filter: attr('filter', s), parameters: list('parameter', obj({ name: attr('name', s), value: attr('value', s) })) }),
    ),
    vlan: child(
      'vlan',
      obj({ trunk: attr('trunk', yesno), tags: list('tag', obj({ id: attr('id', int(0, 4095)), nativeMode: attr('nativeMode', s) })) }),
    ),
    bootOrder: childAttr('boot', 'order', positive),
    alias,
    address,
  },
  IFACE_ORDER,
);

const graphics = obj(
  {
    type: attr('type', oneOf(GraphicsModel.shape.type.options)),
    port: attr('port', int(), { before: 'autoport' }),
    tlsPort: attr('tlsPort', int()),
    websocket: attr('websocket', int()),
    autoport: attr('autoport', yesno),
    listen: attr('listen', s),
    socket: attr('socket', s),
    keymap: attr('keymap', s),
    passwd: attr('passwd', s),
    listens: list(
      'listen',
      obj({ type: attr('type', s), address: attr('address', s), network: attr('network', s), socket: attr('socket', s) }),
    ),
    gl: child('gl', obj({ enable: attr('enable', s), rendernode: attr('rendernode', s) })),
  },
  ['listen', 'gl', 'image', 'streaming', 'clipboard', 'mouse', 'filetransfer'],
);

const serial = obj(
  {
    type: attr('type', s),
    source: charSource,
    protocol: childAttr('protocol', 'type', s),
    targetType: childAttr('target', 'type', s),
    targetPort: childAttr('target', 'port', uint),
    targetModel: child('target', childAttr('model', 'name', s), { prune: true }),
    alias,
    address,
  },
  CHAR_ORDER,
);

const consoleDev = obj(
  {
    type: attr('type', s),
    tty: attr('tty', s),
    source: charSource,
    targetType: childAttr('target', 'type', s),
    targetPort: childAttr('target', 'port', uint),
    alias,
  },
  CHAR_ORDER,
);

const channel = obj(
  {
    type: attr('type', s),
    source: charSource,
    target: child(
      'target',
      obj({ type: attr('type', s), name: attr('name', s), address: attr('address', s), port: attr('port', s), state: attr('state', s) }),
    ),
    alias,
    address,
  },
  CHAR_ORDER,
);

const controller = obj(
  {
    type: attr('type', s),
    index: attr('index', uint),
    model: attr('model', s),
    ports: attr('ports', uint),
    vectors: attr('vectors', uint),
    driver: child('driver', attrs()),
    target: child('target', attrs()),
    alias,
    address,
  },
  ['model', 'target', 'driver', 'alias', 'address'],
);

const filesystem = obj(
  {
    type: attr('type', s),
    accessmode: attr('accessmode', s),
    multidevs: attr('multidevs', s),
    driver: child('driver', attrs()),
    source: child('source', attrs()),
    target: child('target', obj({ dir: attr('dir', s) })),
    readonly: flag('readonly'),
    alias,
    address,
  },
  ['driver', 'binary', 'source', 'target', 'readonly', 'alias', 'address'],
);

const input = obj(
  { type: attr('type', s), bus: attr('bus', s), model: attr('model', s), source: child('source', attrs()), alias, address },
  ['source', 'alias', 'address'],
);

const video = obj(
  {
    model: child(
      'model',
      obj({
        type: attr('type', s),
        ram: attr('ram', uint),
        vram: attr('vram', uint),
        vram64: attr('vram64', uint),
        vgamem: attr('vgamem', uint),
        heads: attr('heads', uint),
        primary: attr('primary', yesno),
        blob: attr('blob', s),
      }),
    ),
    driver: child('driver', attrs()),
    alias,
    address,
  },
  ['driver', 'model', 'alias', 'address'],
);

const sound = obj({ model: attr('model', s), codecs: list('codec', attr('type', s)), alias, address }, ['codec', 'audio', 'alias', 'address']);

const hostdev = obj(
  {
    mode: attr('mode', s),
    type: attr('type', s),
    managed: attr('managed', yesno),
    source: child(
      'source',
      obj({
        startupPolicy: attr('startupPolicy', s),
        vendor: childAttr('vendor', 'id', s),
        product: childAttr('product', 'id', s),
        adapter: child('adapter', attrs()),
        address: child('address', attrs()),
      }, ['vendor', 'product', 'adapter', 'address']),
    ),
    driver: child('driver', attrs()),
    rom: child('rom', attrs()),
    bootOrder: childAttr('boot', 'order', positive),
    alias,
    address,
  },
  HOSTDEV_ORDER,
);

const rng = obj(
  {
    model: attr('model', s),
    rate: child('rate', obj({ bytes: attr('bytes', positive), period: attr('period', positive) })),
    backend: child('backend', obj({ model: attr('model', s), type: attr('type', s), path: text(s, { emptyAsUndefined: true }) })),
    alias,
    address,
  },
  ['rate', 'backend', 'alias', 'address'],
);

const watchdog = obj({ model: attr('model', s), action: attr('action', s), alias, address }, ['alias', 'address']);

const memballoon = obj(
  {
    model: attr('model', s),
    autodeflate: attr('autodeflate', s),
    freePageReporting: attr('freePageReporting', s),
    statsPeriod: childAttr('stats', 'period', uint),
    alias,
    address,
  },
  ['stats', 'alias', 'address'],
);

const tpm = obj(
  {
    model: attr('model', s),
    backend: child(
      'backend',
      obj({
        type: attr('type', s),
        version: attr('version', s),
        persistentState: attr('persistent_state', s),
        devicePath: childAttr('device', 'path', s),
      }),
    ),
    alias,
  },
  ['backend', 'alias', 'address'],
);

const devices = obj(
  {
    emulator: childText('emulator', s),
    disks: list('disk', disk, { key: (d: any) => d?.target?.dev }),
    controllers: list('controller', controller, { key: (c: any) => (c?.type === undefined ? undefined : `${c.type}/${c.index ?? ''}`) }),
    filesystems: list('filesystem', filesystem, { key: (f: any) => f?.target?.dir }),
    interfaces: list('interface', iface, { key: (i: any) => i?.mac }),
    serials: list('serial', serial),
    consoles: list('console', consoleDev),
    channels: list('channel', channel),
    inputs: list('input', input),
    tpms: list('tpm', tpm),
    graphics: list('graphics', graphics),
    sounds: list('sound', sound),
    videos: list('video', video),
    hostdevs: list('hostdev', hostdev),
    watchdogs: list('watchdog', watchdog),
    memballoon: child('memballoon', memballoon),
    rngs: list('rng', rng),
  },
  DEVICES_ORDER,
);

/** `<features>`: every child element is a feature, its attributes its settings; nested content stays in the tree. */
const features: Codec<Record<string, Record<string, string>>> = custom(
  (el) => {
    const out: Record<string, Record<string, string>> = {};
    for (const f of childElements(el)) {
      if (Object.prototype.hasOwnProperty.call(out, f.name)) continue;
      const a: Record<string, string> = {};
      for (const k in f.attrs) a[k] = f.attrs[k]!;
      out[f.name] = a;
    }
    return out;
  },
  (el, value, _order, ctx) => {
    const v = value ?? {};
    const has = (name: string) => Object.prototype.hasOwnProperty.call(v, name);
    el.children = el.children.filter((c) => typeof c !== 'object' || !('name' in c) || has(c.name));
    const first = new Map<string, XElement>();
    for (const f of childElements(el)) if (!first.has(f.name)) first.set(f.name, f);
    for (const [name, a] of Object.entries(v)) {
      let f = first.get(name);
      if (!f) {
        f = element(name);
        el.children.push(f);
      }
      attrs().write(f, a, undefined, ctx);
    }
  },
);

/** `<metadata>`: application content kept as XML text. */
const metadata: Codec<string> = custom(
  (el) => serializeChildren(el),
  (el, value) => {
    const v = value ?? '';
    if (serializeChildren(el) === v) return;
    el.children = v.trim() === '' ? [] : parseDocument(`<metadata>${v}</metadata>`).children;
  },
);

const cpu = obj(
  {
    mode: attr('mode', s),
    match: attr('match', s),
    check: attr('check', s),
    migratable: attr('migratable', s),
    model: child('model', obj({ name: text(s, { emptyAsUndefined: true }), fallback: attr('fallback', s), vendorId: attr('vendor_id', s) })),
    vendor: childText('vendor', s),
    topology: child(
      'topology',
      obj({
        sockets: attr('sockets', positive),
        dies: attr('dies', positive),
        clusters: attr('clusters', positive),
        cores: attr('cores', positive),
        threads: attr('threads', positive),
      }),
    ),
    features: list('feature', obj({ policy: attr('policy', s), name: attr('name', s) })),
    numa: child(
      'numa',
      obj(
        {
          cells: list(
            'cell',
            obj({
              id: attr('id', uint),
              cpus: attr('cpus', s),
              memoryKiB: scaledAttr('memory', MEMORY),
              memAccess: attr('memAccess', s),
              discard: attr('discard', s),
            }),
          ),
        },
        ['cell', 'interconnects'],
      ),
    ),
  },
  CPU_ORDER,
);

const clock = obj({
  offset: attr('offset', s),
  timezone: attr('timezone', s),
  adjustment: attr('adjustment', s),
  basis: attr('basis', s),
  timers: list(
    'timer',
    obj({
      name: attr('name', s),
      present: attr('present', yesno),
      tickpolicy: attr('tickpolicy', s),
      track: attr('track', s),
      mode: attr('mode', s),
      frequency: attr('frequency', ulong),
    }),
  ),
});

const os = obj(
  {
    firmware: attr('firmware', s),
    type: childText('type', s),
    arch: childAttr('type', 'arch', s),
    machine: childAttr('type', 'machine', s),
    firmwareFeatures: child('firmware', list('feature', obj({ enabled: attr('enabled', yesno), name: attr('name', s) })), { prune: true }),
    loader: childText('loader', s, { emptyAsUndefined: true }),
    loaderReadonly: childAttr('loader', 'readonly', yesno),
    loaderSecure: childAttr('loader', 'secure', yesno),
    loaderType: childAttr('loader', 'type', s),
    nvram: childText('nvram', s, { emptyAsUndefined: true }),
    nvramTemplate: childAttr('nvram', 'template', s),
    kernel: childText('kernel', s),
    initrd: childText('initrd', s),
    cmdline: childText('cmdline', s),
    dtb: childText('dtb', s),
    init: childText('init', s),
    initargs: list('initarg', text(s)),
    boot: list('boot', attr('dev', s)),
    bootmenu: child('bootmenu', obj({ enable: attr('enable', yesno), timeout: attr('timeout', uint) })),
    smbiosMode: childAttr('smbios', 'mode', s),
  },
  OS_ORDER,
);

const memoryBacking = obj(
  {
    hugepages: child(
      'hugepages',
      obj({ pages: list('page', obj({ sizeKiB: scaledAttr('size', MEMORY_KEEP), nodeset: attr('nodeset', s) })) }),
    ),
    nosharepages: flag('nosharepages'),
    locked: flag('locked'),
    source: childAttr('source', 'type', s),
    access: childAttr('access', 'mode', s),
    allocation: child('allocation', obj({ mode: attr('mode', s), threads: attr('threads', positive) })),
    discard: flag('discard'),
  },
  MEMBACKING_ORDER,
);

const domainCodec = obj(
  {
    type: attr('type', oneOf(VIRT_TYPES)),
    name: childText('name', s),
    uuid: childText('uuid', uuid),
    title: childText('title', s),
    description: childText('description', s),
    metadata: child('metadata', metadata),
    maxMemoryKiB: child('maxMemory', scaledText(MEMORY)),
    maxMemorySlots: childAttr('maxMemory', 'slots', uint),
    memoryKiB: child('memory', scaledText(MEMORY)),
    currentMemoryKiB: child('currentMemory', scaledText(MEMORY)),
    memoryBacking: child('memoryBacking', memoryBacking),
    vcpus: childText('vcpu', int(0, 0x7fffffff)),
    vcpu: child(
      'vcpu',
      obj({ placement: attr('placement', oneOf(['static', 'auto'] as const)), cpuset: attr('cpuset', s), current: attr('current', uint) }),
      { prune: true },
    ),
    iothreads: childText('iothreads', uint),
    numatune: child('numatune', obj({ memory: child('memory', obj({ mode: attr('mode', s), nodeset: attr('nodeset', s), placement: attr('placement', s) })) })),
    os: child('os', os),
    features: child('features', features),
    cpu: child('cpu', cpu),
    clock: child('clock', clock),
    onPoweroff: childText('on_poweroff', oneOf(LifecycleAction.options)),
    onReboot: childText('on_reboot', oneOf(LifecycleAction.options)),
    onCrash: childText('on_crash', oneOf(CrashAction.options)),
    onLockfailure: childText('on_lockfailure', s),
    pm: child(
      'pm',
      obj({
        suspendToMem: childAttr('suspend-to-mem', 'enabled', yesno),
        suspendToDisk: childAttr('suspend-to-disk', 'enabled', yesno),
      }),
    ),
    devices: child('devices', devices),
  },
  DOMAIN_ORDER,
);

// ---------------------------------------------------------------------------------------------
// Rules libvirt applies after reading a domain (virDomainDefParseXML, post-parse and validation).

/** Attributes holding CPU or NUMA-node bitmaps, as `parent/element@attribute` (parent `*` = any). */
const BITMAP_ATTRS: ReadonlyArray<[parent: string, element: string, attribute: string]> = [
  ['domain', 'vcpu', 'cpuset'],
  ['cputune', 'vcpupin', 'cpuset'],
  ['cputune', 'emulatorpin', 'cpuset'],
  ['cputune', 'iothreadpin', 'cpuset'],
  ['cputune', 'vcpusched', 'vcpus'],
  ['cputune', 'iothreadsched', 'iothreads'],
  ['cputune', 'cachetune', 'vcpus'],
  ['cputune', 'memorytune', 'vcpus'],
  ['cachetune', 'monitor', 'vcpus'],
  ['memorytune', 'monitor', 'vcpus'],
  ['numatune', 'memory', 'nodeset'],
  ['numatune', 'memnode', 'nodeset'],
  ['hugepages', 'page', 'nodeset'],
  ['numa', 'cell', 'cpus'],
];

function checkBitmaps(el: XElement, path: string): void {
  const counts = new Map<string, number>();
  for (const c of childElements(el)) {
    const n = (counts.get(c.name) ?? 0) + 1;
    counts.set(c.name, n);
    const p = `${path}/${c.name}[${n}]`;
    for (const [parent, name, attribute] of BITMAP_ATTRS) {
      if (name !== c.name || parent !== el.name) continue;
      const raw = c.attrs[attribute];
      if (raw === undefined) continue;
      const bits = parseBitmap(raw);
      if (!bits) throw xmlError(`${p}/@${attribute}: Failed to parse bitmap ${quote(raw)}`, { path: `${p}/@${attribute}`, value: raw.slice(0, 200) });
      if (c.name === 'vcpu' && attribute === 'cpuset' && bits.size === 0) {
        throw xmlError(`${p}/@cpuset: Invalid value of 'cpuset': ${quote(raw)} selects no CPU`, { path: `${p}/@cpuset` });
      }
    }
    if (c.children.length) checkBitmaps(c, p);
  }
}

/** Host emulators can run guests of the architectures in this table (qemu-system-<name>). */
const EMULATOR_ARCHES: Record<string, readonly string[]> = {
  x86_64: ['x86_64', 'i686'],
  i386: ['i686'],
  aarch64: ['aarch64', 'armv7l', 'armv6l', 'armv7b'],
  arm: ['armv6l', 'armv7l', 'armv7b'],
  ppc64: ['ppc64', 'ppc64le', 'ppc', 'ppcle', 'ppcemb'],
  ppc: ['ppc', 'ppcle', 'ppcemb'],
  s390x: ['s390x', 's390'],
  sparc64: ['sparc64', 'sparc'],
  mips64: ['mips64', 'mips'],
  mips64el: ['mips64el', 'mipsel'],
  microblaze: ['microblaze'],
  microblazeel: ['microblazeel'],
};

function checkEmulatorArch(def: DomainDefinition): void {
  if (def.type !== 'qemu' && def.type !== 'kvm') return;
  const emulator = def.devices.emulator;
  const arch = def.os.arch;
  if (!emulator || !arch) return;
  const m = /(?:^|\/)qemu-system-([A-Za-z0-9_]+)$/.exec(emulator.trim());
  if (!m) return;
  const target = m[1]!;
  const supported = EMULATOR_ARCHES[target] ?? ((ARCHES as readonly string[]).includes(target) ? [target] : undefined);
  if (!supported) return;
  if (!supported.includes(arch)) {
    // libvirt's QEMU driver refuses this at define time from the emulator's capabilities; the
    // binary's name is enough to tell, so the check needs no host.
    throw xmlError(`unsupported configuration: Emulator '${emulator}' does not support arch '${arch}'`, {
      path: '/domain/os/type/@arch',
    });
  }
}

function sumNumaMemory(raw: Record<string, any>): number {
  let total = 0;
  for (const c of raw.cpu?.numa?.cells ?? []) total += typeof c.memoryKiB === 'number' ? c.memoryKiB : 0;
  return total;
}

function preValidate(raw: Record<string, any>, root: XElement): void {
  if (root.attrs.type === undefined) throw xmlError("missing domain type attribute: <domain type='kvm|qemu|...'> is required", { path: '/domain/@type' });
  if (raw.name === undefined) throw xmlError('missing <name> element: a domain must have a name', { path: '/domain/name' });
  if (raw.name.trim() === '') throw xmlError('empty <name> element: a domain must have a name', { path: '/domain/name' });
  if (raw.name.includes('\n')) throw xmlError(`domain name ${quote(raw.name)} contains a newline, which is not allowed`, { path: '/domain/name' });
  if (!raw.memoryKiB && sumNumaMemory(raw) === 0) {
    throw xmlError('XML error: Memory size must be specified via <memory> or in the <numa> configuration', { path: '/domain/memory' });
  }
  const os = firstChild(root, 'os');
  if (!os || !firstChild(os, 'type')) throw xmlError('an os <type> must be specified (/domain/os/type)', { path: '/domain/os/type' });
  if (raw.vcpus === 0) throw xmlError('/domain/vcpu: the number of vCPUs must be at least 1', { path: '/domain/vcpu' });
  const disks: any[] = raw.devices?.disks ?? [];
  disks.forEach((d, i) => {
    if (!d.target || d.target.dev === undefined || d.target.dev === '') {
      throw xmlError(`missing target information for disk /domain/devices/disk[${i + 1}]: <target dev=...> is required`, {
        path: `/domain/devices/disk[${i + 1}]/target`,
      });
    }
  });
  const nics: any[] = raw.devices?.interfaces ?? [];
  nics.forEach((n, i) => {
    if (n.type === undefined) throw xmlError(`missing type attribute on /domain/devices/interface[${i + 1}]`, { path: `/domain/devices/interface[${i + 1}]/@type` });
  });
}

function generate(raw: Record<string, any>, gen: Generators): void {
  raw.uuid ??= gen.uuid();
  for (const n of raw.devices?.interfaces ?? []) n.mac ??= generateMac(gen);
}

function normalize(raw: Record<string, any>, root: XElement): void {
  raw.vcpus ??= 1;
  const vcpu = (raw.vcpu ??= {});
  vcpu.placement ??= raw.numatune?.memory?.placement === 'auto' ? 'auto' : 'static';
  if (!raw.memoryKiB) raw.memoryKiB = sumNumaMemory(raw);
  // libvirt clamps the balloon target to the memory size and fills it in when absent.
  if (raw.currentMemoryKiB === undefined || raw.currentMemoryKiB === 0 || raw.currentMemoryKiB > raw.memoryKiB) {
    raw.currentMemoryKiB = raw.memoryKiB;
  }
  for (const d of raw.devices?.disks ?? []) {
    if (d.target && d.target.bus === undefined && typeof d.target.dev === 'string') {
      d.target.bus = defaultDiskBus(d.target.dev, d.device ?? 'disk');
    }
  }
  defaultBoot(raw, root);
}

/** libvirt boots from the first disk when neither <os><boot> nor any device <boot order> says otherwise. */
function defaultBoot(raw: Record<string, any>, root: XElement): void {
  const os = (raw.os ??= {});
  if ((os.type ?? 'hvm') !== 'hvm' || (os.boot?.length ?? 0) > 0) return;
  const devs = raw.devices ?? {};
  const modelled = [...(devs.disks ?? []), ...(devs.interfaces ?? []), ...(devs.hostdevs ?? [])];
  if (modelled.some((d: any) => d?.bootOrder !== undefined)) return;
  // Devices outside the model (redirdev, filesystem, ...) can carry a boot order too; the tree knows.
  const tree = firstChild(root, 'devices');
  const modelledKinds = new Set(['disk', 'interface', 'hostdev']);
  if (tree && childElements(tree).some((d) => !modelledKinds.has(d.name) && firstChild(d, 'boot')?.attrs.order !== undefined)) return;
  os.boot = ['hd'];
}

function validate(def: DomainDefinition, root: XElement): void {
  checkBitmaps(root, '/domain');
  for (const [i, f] of (def.cpu?.features ?? []).entries()) {
    if (f.policy !== undefined && !CPU_FEATURE_POLICIES.includes(f.policy)) {
      throw xmlError(`/domain/cpu/feature[${i + 1}]/@policy: Invalid CPU feature policy ${quote(f.policy)} for feature ${quote(f.name)}`, {
        path: `/domain/cpu/feature[${i + 1}]/@policy`,
      });
    }
  }
  if (def.os.arch !== undefined && !(ARCHES as readonly string[]).includes(def.os.arch)) {
    throw xmlError(`Unknown architecture ${quote(def.os.arch)} in /domain/os/type/@arch`, { path: '/domain/os/type/@arch' });
  }
  if (def.vcpu?.current !== undefined && def.vcpu.current > def.vcpus) {
    throw xmlError(`/domain/vcpu/@current: ${def.vcpu.current} is more than the maximum of ${def.vcpus} vCPUs`, { path: '/domain/vcpu/@current' });
  }
  const topo = def.cpu?.topology;
  // QEMU refuses an SMP topology that disagrees with the vCPU count, so libvirt's QEMU driver
  // rejects it at define time; other hypervisors accept it.
  if ((def.type === 'qemu' || def.type === 'kvm') && topo && Object.keys(topo).length > 0) {
    const product = (topo.sockets ?? 1) * (topo.dies ?? 1) * (topo.clusters ?? 1) * (topo.cores ?? 1) * (topo.threads ?? 1);
    if (product !== def.vcpus) {
      throw xmlError(`CPU topology doesn't match maximum vcpu count: /domain/cpu/topology gives ${product} CPUs, <vcpu> ${def.vcpus}`, {
        path: '/domain/cpu/topology',
      });
    }
  }
  for (const [i, cell] of (def.cpu?.numa?.cells ?? []).entries()) {
    if (cell.cpus === undefined) continue;
    const bits = parseBitmap(cell.cpus);
    if (bits) {
      const max = Math.max(-1, ...bits);
      if (max >= def.vcpus) {
        throw xmlError(`Number of CPUs in <numa> exceeds the <vcpu> count: /domain/cpu/numa/cell[${i + 1}] uses CPU ${max}, <vcpu> is ${def.vcpus}`, {
          path: `/domain/cpu/numa/cell[${i + 1}]/@cpus`,
        });
      }
    }
  }
  checkEmulatorArch(def);
  checkCharDevices(root);
  checkDisks(def);
  checkInterfaces(def);
  checkBootOrder(def, root);
}

function checkDisks(def: DomainDefinition): void {
  const seen = new Map<string, number>();
  def.devices.disks.forEach((d, i) => {
    const path = `/domain/devices/disk[${i + 1}]`;
    const dev = d.target.dev;
    if (d.address === undefined && diskNameToIndex(dev) === undefined) {
      throw xmlError(`XML error: Unknown disk name ${quote(dev)} and no address specified (${path}/target/@dev)`, {
        path: `${path}/target/@dev`,
      });
    }
    if (d.target.bus !== undefined && !(DISK_BUSES as readonly string[]).includes(d.target.bus)) {
      throw xmlError(`${path}/target/@bus: unknown disk bus type ${quote(d.target.bus)}`, { path: `${path}/target/@bus` });
    }
    const prev = seen.get(dev);
    if (prev !== undefined) {
      throw xmlError(`target ${quote(dev)} duplicated for disks /domain/devices/disk[${prev + 1}] and ${path}`, { path: `${path}/target/@dev` });
    }
    seen.set(dev, i);
    const src = d.source;
    if (d.type === 'network' && src && src.protocol === undefined) {
      throw xmlError(`${path}/source: missing network source protocol type`, { path: `${path}/source/@protocol` });
    }
    if (d.type === 'volume' && src && (src.pool === undefined || src.volume === undefined)) {
      throw xmlError(`${path}/source: a volume disk needs both 'pool' and 'volume' attributes`, { path: `${path}/source` });
    }
  });
}

const CPU_FEATURE_POLICIES: readonly string[] = ['force', 'require', 'optional', 'disable', 'forbid'];

/** Devices whose type and <source> describe a host character device (virDomainChrSourceDef). */
const CHARDEV_ELEMENTS = new Set(['serial', 'parallel', 'console', 'channel', 'redirdev']);

/** virDomainChrSourceDefValidate: what each character device type must name in its <source>. */
function checkCharDevices(root: XElement): void {
  const devs = firstChild(root, 'devices');
  if (!devs) return;
  const counts = new Map<string, number>();
  for (const d of childElements(devs)) {
    const n = (counts.get(d.name) ?? 0) + 1;
    counts.set(d.name, n);
    if (d.name === 'audio') {
      const id = d.attrs.id;
      if (id === undefined) throw xmlError(`XML error: Missing required attribute 'id' in element 'audio' (/domain/devices/audio[${n}])`, { path: `/domain/devices/audio[${n}]/@id` });
      positive.parse(id, `/domain/devices/audio[${n}]/@id`);
      continue;
    }
    if (!CHARDEV_ELEMENTS.has(d.name)) continue;
    const path = `/domain/devices/${d.name}[${n}]`;
    const sources = childrenNamed(d, 'source');
    const has = (a: string, pick: (src: XElement) => boolean = () => true) => sources.some((src) => pick(src) && src.attrs[a] !== undefined);
    const fail = (what: string) => xmlError(`Missing source ${what} attribute for char device ${path} (type '${d.attrs.type}')`, { path: `${path}/source` });
    switch (d.attrs.type) {
      case 'file':
      case 'dev':
      case 'pipe':
        if (!has('path')) throw fail('path');
        break;
      case 'tcp':
        if (!has('host')) throw fail('host');
        if (!has('service')) throw fail('service');
        break;
      case 'udp':
        if (!has('service', (src) => src.attrs.mode === undefined || src.attrs.mode === 'connect')) throw fail('service');
        break;
      case 'nmdm':
        if (!has('master')) throw xmlError(`Missing master path attribute for nmdm device ${path}`, { path: `${path}/source` });
        if (!has('slave')) throw xmlError(`Missing slave path attribute for nmdm device ${path}`, { path: `${path}/source` });
        break;
    }
  }
}

const NIC_SOURCE_REQUIRED: Record<string, string> = { network: 'network', bridge: 'bridge', direct: 'dev' };

function checkInterfaces(def: DomainDefinition): void {
  def.devices.interfaces.forEach((n, i) => {
    const path = `/domain/devices/interface[${i + 1}]`;
    if (n.mac && isMulticastMac(n.mac)) {
      throw xmlError(`${path}/mac/@address: expected unicast mac address, found multicast '${n.mac}'`, { path: `${path}/mac/@address` });
    }
    const need = NIC_SOURCE_REQUIRED[n.type];
    if (need && (n.source as Record<string, unknown> | undefined)?.[need] === undefined) {
      throw xmlError(`No <source> '${need}' attribute specified with <interface type='${n.type}'/> (${path})`, { path: `${path}/source/@${need}` });
    }
    if (n.type === 'vhostuser' && (n.source?.path === undefined || n.source?.type === undefined)) {
      throw xmlError(`${path}/source: a vhostuser interface needs a source with type and path`, { path: `${path}/source` });
    }
  });
}

function checkBootOrder(def: DomainDefinition, root: XElement): void {
  const devs = firstChild(root, 'devices');
  if (!devs) return;
  const used = new Map<number, string>();
  const counts = new Map<string, number>();
  for (const d of childElements(devs)) {
    const n = (counts.get(d.name) ?? 0) + 1;
    counts.set(d.name, n);
    const boot = firstChild(d, 'boot');
    const raw = boot?.attrs.order;
    if (raw === undefined) continue;
    const path = `/domain/devices/${d.name}[${n}]/boot/@order`;
    const order = positive.parse(raw, path);
    const prev = used.get(order);
    if (prev) throw xmlError(`boot order '${order}' used for more than one device (${prev} and ${path})`, { path });
    used.set(order, path);
  }
  if (used.size > 0 && def.os.boot.length > 0) {
    throw xmlError('per-device boot elements cannot be used together with os/boot elements', { path: '/domain/os/boot' });
  }
}

export const domainSpec: KindSpec<DomainDefinition> = {
  kind: 'domain',
  root: 'domain',
  codec: domainCodec,
  schema: DomainDefinition,
  preValidate,
  generate,
  normalize,
  validate,
};

/** Parses libvirt domain XML; `xml` of the result is the canonical document (what dumpxml returns). */
export const parseDomainXml = (text: string, opts?: ParseOptions): DomainDefinition => parseWith(domainSpec, text, opts);

/** Formats a domain model; the model's `xml`, when present, supplies everything the model does not hold. */
export const formatDomainXml = (def: DomainDefinition | DomainDefinitionInput): string => formatWith(domainSpec, def);
