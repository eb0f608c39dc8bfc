import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { z } from 'zod';
import type { NetworkDefinition } from '../../contracts/network/definition.ts';
import type { InterfaceModel } from '../../contracts/domain/definition.ts';
import { VirtError, isVirtError } from '../../contracts/errors.ts';
import { CommandError, HostCommands } from './exec.ts';
import {
  AllocatorState,
  NameAllocator,
  classifyRequest,
  isReservedName,
  isTemplate,
  validateIfname,
  type AllocatorOptions,
  type NameKind,
} from './names.ts';
import { CoalescedWriter, readJsonState } from './persist.ts';
import { addPort, deleteTables, networkTables, portTable, removePort, subnetOf, tableName, type RoutedMode } from './nft.ts';
import { dnsmasqConf, hasDhcp, runningPid, startDnsmasq, stopDnsmasq, type DnsmasqFiles } from './dnsmasq.ts';
import { DhcpHostsSync, dhcpHostsText, makeHostsReachable, writeDhcpHosts } from './dhcp-hosts.ts';

/** How a network is realised on this host. */
export const NetworkKind = z.enum(['isolated', 'nat', 'route', 'open', 'bridge', 'direct']);
export type NetworkKind = z.infer<typeof NetworkKind>;

export const DirectMode = z.enum(['bridge', 'vepa', 'private', 'passthrough']);
export type DirectMode = z.infer<typeof DirectMode>;

const RealisedNetworkSchema = z.object({
  name: z.string(),
  uuid: z.string(),
  kind: NetworkKind,
  /** The bridge guests attach to: ours for isolated/nat/route/open, the host's for bridge. */
  bridge: z.string().optional(),
  /** We created the bridge and remove it with the network. */
  ownsBridge: z.boolean(),
  /** Name of our nft tables and which families exist. */
  table: z.string().optional(),
  tableFamilies: z.array(z.enum(['inet', 'bridge'])),
  dhcp: z.boolean(),
  /** For direct networks: the parent device of the guests' macvtaps and its mode. */
  forwardDev: z.string().optional(),
  directMode: DirectMode.optional(),
  mtu: z.number().int().optional(),
  /** `starting` survives only a crash in the middle of realising; such leftovers are removed at open. */
  phase: z.enum(['starting', 'active']),
});
export type RealisedNetwork = Omit<z.infer<typeof RealisedNetworkSchema>, 'phase'>;

export interface DhcpLease {
  network: string;
  mac: string;
  address: string;
  family: 'ipv4' | 'ipv6';
  hostname?: string;
  /** The client id (IPv4) or DUID (IPv6) the guest gave, as dnsmasq recorded it. */
  clientId?: string;
  expiresAt: string;
}
type NetworkRecord = z.infer<typeof RealisedNetworkSchema>;

const PluggedInterfaceSchema = z.object({
  domainUuid: z.string(),
  ifname: z.string(),
  device: z.enum(['tap', 'macvtap', 'macvlan']),
  type: z.enum(['network', 'bridge', 'direct', 'ethernet']),
  /** The guest's MAC address. */
  mac: z.string(),
  /** The host side of a tap: the guest MAC with the first byte fe, as libvirt does. */
  hostMac: z.string().optional(),
  bridge: z.string().optional(),
  /** Network the interface counts towards (cleared if the network is destroyed under it). */
  network: z.string().optional(),
  /** Parent device and mode of a macvtap/macvlan. */
  sourceDev: z.string().optional(),
  mode: DirectMode.optional(),
  mtu: z.number().int().optional(),
  /** nft table holding this device's port filter. */
  portTable: z.string().optional(),
  /** Clean-up failed; the name stays held until an unplug succeeds. */
  cleanupFailed: z.boolean().optional(),
});
export type PluggedInterface = z.infer<typeof PluggedInterfaceSchema>;

const HostState = z.object({
  version: z.literal(1),
  networks: z.array(RealisedNetworkSchema),
  interfaces: z.array(PluggedInterfaceSchema),
});

export interface NetworkHostOptions {
  /** Directory for the name counters, realised networks and dnsmasq files. Created if missing. */
  stateDir: string;
  /** Run everything inside this network namespace instead of the host's. */
  netns?: string;
  /**
   * User dnsmasq drops to once it has opened its files: default `dnsmasq` where that account
   * exists (Debian's package creates it), otherwise dnsmasq's own compiled-in default.
   */
  dnsmasqUser?: string;
  /** Release quarantine and wrap points of the name counters (smaller wraps are for tests). */
  allocator?: Pick<AllocatorOptions, 'quarantineMs' | 'maxIds'>;
  /**
   * Runs after everything keyed by a device name is gone and before the name goes back to the
   * allocator. Lets a caller observe (or delay) the hand-back.
   */
  beforeRelease?: (ifname: string) => Promise<void> | void;
  /** Non-fatal problems, such as a damaged state file moved aside. */
  onWarning?: (message: string) => void;
}

/** Resolves a network name to its definition; `undefined` means no such network. */
export type NetworkLookup = (name: string) => NetworkDefinition | undefined | Promise<NetworkDefinition | undefined>;

export interface PlugOptions {
  /** Device for `direct` interfaces: macvtap (a character device, for qemu) or macvlan (for containers). */
  direct?: 'macvtap' | 'macvlan';
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

const copy = <T>(v: T): T => structuredClone(v);

function asVirtError(e: unknown, what: string): VirtError {
  if (isVirtError(e)) return e;
  if (e instanceof CommandError) return new VirtError('operation-failed', `${what}: ${e.stderr.trim() || e.message}`);
  return new VirtError('internal-error', `${what}: ${(e as Error)?.message ?? String(e)}`);
}

/** libvirt's default OUI for guests it gives a MAC (QEMU's 52:54:00). */
function randomMac(): string {
  const b = randomBytes(3);
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

/** A bridge MAC that stays the same every time the network is started, so guests' ARP caches stay valid. */
function stableMac(uuid: string): string {
  const h = createHash('sha256').update(uuid).digest();
  return `52:54:00:${[h[0], h[1], h[2]].map((x) => (x ?? 0).toString(16).padStart(2, '0')).join(':')}`;
}

async function defaultDnsmasqUser(): Promise<string | undefined> {
  try {
    const passwd = await readFile('/etc/passwd', 'utf8');
    return passwd.split('\n').some((l) => l.startsWith('dnsmasq:')) ? 'dnsmasq' : undefined;
  } catch {
    return undefined;
  }
}

const ignoreMissing = (e: unknown) => {
  if (e instanceof CommandError && e.missing) return;
  throw e;
};

export class NetworkHost {
  readonly stateDir: string;
  readonly netns: string | undefined;
  private readonly cmds: HostCommands;
  private readonly names: NameAllocator;
  private readonly networks = new Map<string, NetworkRecord>();
  private readonly interfaces = new Map<string, PluggedInterface>();
  /** Plugs that have taken a reference on a network but not yet recorded their interface. */
  private readonly pendingPlugs = new Map<string, number>();
  private readonly unplugs = new Map<string, Promise<void>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly stateWriter: CoalescedWriter;
  private readonly namesWriter: CoalescedWriter;
  private closed = false;
  private dnsmasqUser: string | undefined;
  private readonly dhcpHosts = new DhcpHostsSync();

  private constructor(
    private readonly opts: NetworkHostOptions,
    namesState: AllocatorState | undefined,
  ) {
    this.stateDir = opts.stateDir;
    this.netns = opts.netns;
    this.cmds = new HostCommands(opts.netns);
    this.names = new NameAllocator({ ...opts.allocator, ...(namesState ? { state: namesState } : {}) });
    this.stateWriter = new CoalescedWriter(join(this.stateDir, 'host.json'), () => ({
      version: 1,
      networks: [...this.networks.values()],
      interfaces: [...this.interfaces.values()],
    }));
    this.namesWriter = new CoalescedWriter(join(this.stateDir, 'ifnames.json'), () => this.names.snapshot());
  }

  /**
   * Loads the state dir: counters continue where they were (and past recently released names),
   * every recorded interface keeps its name, and a network left half-started by a crash is removed.
   */
  static async open(opts: NetworkHostOptions): Promise<NetworkHost> {
    // Searchable but not listable (0711), ancestors made here included: dnsmasq, once it has dropped
    // to its own user, must reach its hosts file (dhcp-hosts.ts); every file here has its own mode.
    await mkdir(join(opts.stateDir, 'dnsmasq'), { recursive: true, mode: 0o711 });
    const warn = opts.onWarning ?? (() => undefined);
    const unreachable = await makeHostsReachable(opts.stateDir, join(opts.stateDir, 'dnsmasq'));
    if (unreachable) warn(unreachable);
    const namesState = await readJsonState(join(opts.stateDir, 'ifnames.json'), AllocatorState, warn);
    const host = new NetworkHost(opts, namesState);
    host.dnsmasqUser = opts.dnsmasqUser ?? (await defaultDnsmasqUser());
    const state = await readJsonState(join(opts.stateDir, 'host.json'), HostState, warn);
    for (const n of state?.networks ?? []) host.networks.set(n.name, n);
    for (const i of state?.interfaces ?? []) {
      host.interfaces.set(i.ifname, i);
      host.names.reserve(i.ifname);
    }
    // A bridge that vanished (host reboot with a persistent state dir) means the rest of that
    // network is stale too: remove what is left so the next ensureNetwork builds it afresh.
    const links = host.networks.size > 0 ? await host.linkNames() : new Set<string>();
    const stale = [...host.networks.values()].filter(
      (x) => x.phase === 'starting' || (x.ownsBridge && x.bridge !== undefined && !links.has(x.bridge)),
    );
    for (const n of stale) {
      await host.teardown(n).catch((e) => warn(`removing stale network '${n.name}': ${(e as Error).message}`));
    }
    await Promise.all([host.namesWriter.save(), host.stateWriter.save()]);
    return host;
  }

  // ---- networks -------------------------------------------------------------------------------

  /** Realises a network on this host if it is not already; idempotent. */
  async ensureNetwork(def: NetworkDefinition): Promise<RealisedNetwork> {
    this.checkOpen();
    return this.withLock(`net:${def.name}`, async () => publicNetwork(await this.realise(def)));
  }

  /** Removes a network from this host if no interface uses it. Returns whether it is gone. */
  async releaseNetwork(name: string): Promise<boolean> {
    this.checkOpen();
    return this.withLock(`net:${name}`, async () => {
      const rec = this.networks.get(name);
      if (!rec) return true;
      if (this.refcount(name) > 0) return false;
      await this.teardown(rec);
      return true;
    });
  }

  /**
   * Removes a network even while guests use it (libvirt's net-destroy): its bridge, firewall tables
   * and DHCP go; the guests' devices stay but are detached and no longer count towards it.
   */
  async destroyNetwork(name: string): Promise<void> {
    this.checkOpen();
    await this.withLock(`net:${name}`, async () => {
      const rec = this.networks.get(name);
      if (!rec) throw new VirtError('operation-invalid', `network '${name}' is not active on this host`);
      for (const i of this.interfaces.values()) {
        if (i.network === name) {
          delete i.network;
          delete i.portTable;
        }
      }
      await this.teardown(rec);
    });
  }

  /**
   * virsh net-update --live on this host: the running dnsmasq of a network realised here serves
   * `def`'s fixed hosts from now on, without a restart (same pid, leases kept). Idempotent, so the
   * agent calls it on every notice and resync; a network not realised here, or run without DHCP
   * (no ranges, so no dnsmasq), has nothing to change. → whether dnsmasq was signalled.
   */
  async updateDhcpHosts(def: NetworkDefinition): Promise<boolean> {
    this.checkOpen();
    return this.withLock(`net:${def.name}`, async () => {
      const rec = this.networks.get(def.name);
      if (!rec || rec.uuid !== def.uuid || !rec.dhcp || rec.phase !== 'active') return false;
      try {
        return await this.dhcpHosts.update(rec.uuid, this.dnsmasqFiles(rec.uuid), def);
      } catch (e) {
        throw asVirtError(e, `cannot update the DHCP hosts of network '${def.name}'`);
      }
    });
  }

  listNetworks(): RealisedNetwork[] {
    return [...this.networks.values()].map(publicNetwork);
  }

  private refcount(name: string): number {
    let n = this.pendingPlugs.get(name) ?? 0;
    for (const i of this.interfaces.values()) if (i.network === name) n++;
    return n;
  }

  private async realise(def: NetworkDefinition): Promise<NetworkRecord> {
    const existing = this.networks.get(def.name);
    if (existing) {
      if (existing.uuid !== def.uuid) {
        throw new VirtError('operation-invalid', `network '${def.name}' is active on this host with uuid ${existing.uuid}`);
      }
      return existing;
    }
    const rec = this.plan(def);
    try {
      if (rec.kind === 'bridge') {
        await this.requireLink(rec.bridge ?? '', 'bridge', `host bridge '${rec.bridge}'`);
        rec.phase = 'active';
        this.networks.set(def.name, rec);
      } else if (rec.kind === 'direct') {
        await this.requireLink(rec.forwardDev ?? '', undefined, `forward device '${rec.forwardDev}'`);
        rec.phase = 'active';
        this.networks.set(def.name, rec);
      } else {
        await this.startBridgeNetwork(def, rec);
      }
    } catch (e) {
      throw asVirtError(e, `cannot start network '${def.name}'`);
    }
    await this.stateWriter.save();
    return rec;
  }

  /** Decides how a definition is realised, validating every name and address first. */
  private plan(def: NetworkDefinition): NetworkRecord {
    const mode = def.forward?.mode ?? 'isolated';
    const base = { name: def.name, uuid: def.uuid, ownsBridge: false, tableFamilies: [], dhcp: false, phase: 'starting' as const };
    const mtu = def.mtu !== undefined ? { mtu: def.mtu } : {};
    if (mode === 'bridge' && def.bridge?.name) {
      validateIfname(def.bridge.name, 'bridge name');
      return { ...base, ...mtu, kind: 'bridge', bridge: def.bridge.name };
    }
    if (mode === 'bridge' || mode === 'private' || mode === 'vepa' || mode === 'passthrough') {
      const dev = def.forward?.dev;
      if (!dev) {
        throw new VirtError('xml-error', `network '${def.name}' with forward mode '${mode}' needs a forward device or bridge`);
      }
      validateIfname(dev, 'forward device');
      return { ...base, ...mtu, kind: 'direct', forwardDev: dev, directMode: mode };
    }
    if (mode === 'hostdev') {
      throw new VirtError('operation-unsupported', `forward mode 'hostdev' is not supported by the host network driver`);
    }
    let bridge = def.bridge?.name;
    if (!bridge || isTemplate(bridge)) {
      // Derived from the uuid so that every start of the network on any host gets the same bridge.
      bridge = `vpbr${def.uuid.replace(/-/g, '').slice(0, 11)}`;
    }
    validateIfname(bridge, 'bridge name');
    if (isReservedName(bridge)) {
      throw new VirtError('invalid-arg', `bridge name '${bridge}' is reserved for generated devices`);
    }
    for (const ip of def.ips) subnetOf(ip.family, ip.address, ip.prefix);
    const kind = mode as RoutedMode | 'open';
    return {
      ...base,
      ...mtu,
      kind,
      bridge,
      ownsBridge: true,
      table: tableName(def.uuid),
      tableFamilies: kind === 'open' ? ['bridge'] : ['inet', 'bridge'],
      dhcp: hasDhcp(def),
    };
  }

  private async startBridgeNetwork(def: NetworkDefinition, rec: NetworkRecord): Promise<void> {
    const bridge = rec.bridge ?? '';
    const files = this.dnsmasqFiles(def.uuid);
    // Render everything that can fail on bad input before anything exists on the host.
    const conf = rec.dhcp ? dnsmasqConf(def, bridge, files, this.dnsmasqUser) : undefined;
    const hosts = rec.dhcp ? dhcpHostsText(def) : undefined;
    const subnets = def.ips.map((ip) => subnetOf(ip.family, ip.address, ip.prefix));
    const tables =
      rec.kind === 'open'
        ? `${portTable(rec.table ?? '', def.name).join('\n')}\n`
        : networkTables({ table: rec.table ?? '', networkName: def.name, bridge, mode: rec.kind as RoutedMode, subnets });

    const args = ['link', 'add', 'name', bridge, 'address', def.mac ?? stableMac(def.uuid)];
    if (rec.mtu !== undefined) args.push('mtu', String(rec.mtu));
    args.push('type', 'bridge', 'stp_state', def.bridge?.stp === false ? '0' : '1');
    // The kernel takes the delay in hundredths of a second; libvirt's attribute is in seconds.
    if (def.bridge?.delay !== undefined) args.push('forward_delay', String(def.bridge.delay * 100));
    try {
      await this.cmds.ip(args);
    } catch (e) {
      if (e instanceof CommandError && e.exists) {
        throw new VirtError('operation-invalid', `bridge name '${bridge}' is already in use`);
      }
      throw e;
    }
    // From here on the network owns host objects: record it so a crash leaves something to clean.
    this.networks.set(def.name, rec);
    await this.stateWriter.save();
    try {
      const batch = def.ips.map(
        (ip) => `addr add ${ip.address}/${ip.prefix} dev ${bridge}${ip.family === 'ipv6' ? ' nodad' : ''}`,
      );
      batch.push(`link set dev ${bridge} up`);
      await this.cmds.ip(['-batch', '-'], { stdin: `${batch.join('\n')}\n` });
      await this.cmds.nft(tables);
      if (rec.kind === 'nat' || rec.kind === 'route') {
        const sysctls = ['net.ipv4.ip_forward=1'];
        if (def.ips.some((ip) => ip.family === 'ipv6')) sysctls.push('net.ipv6.conf.all.forwarding=1');
        await this.cmds.inNs('sysctl', ['-q', '-w', ...sysctls]);
      }
      if (conf !== undefined) {
        await writeFile(files.conf, conf, { mode: 0o600 });
        await writeDhcpHosts(files.hosts, hosts ?? '');
        this.dhcpHosts.started(def.uuid, await startDnsmasq(this.cmds, files), def);
      }
      rec.phase = 'active';
    } catch (e) {
      await this.teardown(rec).catch(() => undefined);
      throw e;
    }
  }

  private dnsmasqFiles(uuid: string): DnsmasqFiles {
    const dir = join(this.stateDir, 'dnsmasq');
    return { conf: join(dir, `${uuid}.conf`), pid: join(dir, `${uuid}.pid`), leases: join(dir, `${uuid}.leases`), hosts: join(dir, `${uuid}.hostsfile`) };
  }

  /** Removes what the network owns: DHCP first (it binds the bridge), then firewall, then the bridge. */
  private async teardown(rec: NetworkRecord): Promise<void> {
    if (rec.ownsBridge) {
      // Every step is tried even if an earlier one fails, so one stuck piece does not leave the
      // others behind; the record stays until all of them are gone.
      const errors: unknown[] = [];
      const step = (p: Promise<unknown>) => p.catch(ignoreMissing).catch((e) => errors.push(e));
      await step(stopDnsmasq(this.dnsmasqFiles(rec.uuid)));
      this.dhcpHosts.forget(rec.uuid);
      for (const family of rec.table ? rec.tableFamilies : []) {
        await step(this.cmds.nft(deleteTables(rec.table ?? '', [family])));
      }
      if (rec.bridge) await step(this.cmds.ip(['link', 'del', 'dev', rec.bridge]));
      if (errors.length > 0) throw errors[0];
    }
    for (const i of this.interfaces.values()) {
      if (i.network === rec.name) delete i.portTable;
    }
    this.networks.delete(rec.name);
    await this.stateWriter.save();
  }

  /** Checks a device exists (and is of `kind`, if given); returns its MTU. */
  private async requireLink(name: string, kind: string | undefined, what: string): Promise<number | undefined> {
    let out: string;
    try {
      out = await this.cmds.ip(['-d', '-j', 'link', 'show', 'dev', name]);
    } catch (e) {
      if (e instanceof CommandError && e.missing) throw new VirtError('operation-failed', `${what} does not exist`);
      throw e;
    }
    const [link] = JSON.parse(out) as { mtu?: number; linkinfo?: { info_kind?: string } }[];
    if (kind && link?.linkinfo?.info_kind !== kind) throw new VirtError('operation-failed', `${what} is not a ${kind}`);
    return link?.mtu;
  }

  // ---- interfaces -----------------------------------------------------------------------------

  /**
   * Creates the host device for one guest interface and attaches it: a tap (network, bridge,
   * ethernet) or a macvtap/macvlan (direct, or a network in a direct forward mode). A network is
   * realised on first use. Idempotent per (domain, MAC): a redelivered plug returns the device
   * already made. `user` and `vhostuser` interfaces have no host device here.
   */
  async plugInterface(
    domainUuid: string,
    iface: InterfaceModel,
    lookup: NetworkLookup,
    opts: PlugOptions = {},
  ): Promise<PluggedInterface> {
    this.checkOpen();
    if (!UUID_RE.test(domainUuid)) throw new VirtError('invalid-arg', `invalid domain uuid '${domainUuid}'`);
    if (iface.type === 'user' || iface.type === 'vhostuser') {
      throw new VirtError('argument-unsupported', `interface type '${iface.type}' has no host network device`);
    }
    const mac = iface.mac?.toLowerCase() ?? randomMac();
    if (!MAC_RE.test(mac)) throw new VirtError('invalid-arg', `invalid MAC address '${iface.mac}'`);
    if (iface.mac) {
      const again = [...this.interfaces.values()].find((i) => i.domainUuid === domainUuid && i.mac === mac);
      if (again && !again.cleanupFailed) return copy(again);
    }
    const src = iface.source ?? {};

    if (iface.type === 'network') {
      const name = src.network;
      if (!name) throw new VirtError('xml-error', `interface of type 'network' needs a source network`);
      let realisedHere = false;
      const net = await this.withLock(`net:${name}`, async () => {
        const def = await lookup(name);
        if (!def) throw new VirtError('no-network', `no network with matching name '${name}'`);
        realisedHere = !this.networks.has(name);
        const rec = await this.realise(def);
        // Held until the interface is recorded, so a concurrent last unplug cannot remove the network.
        this.pendingPlugs.set(name, (this.pendingPlugs.get(name) ?? 0) + 1);
        return { rec, def };
      });
      try {
        const { rec } = net;
        if (rec.kind === 'direct') {
          return await this.plugDirect(domainUuid, iface, mac, rec.forwardDev ?? '', rec.directMode ?? 'vepa', opts, {
            network: name,
            mtu: iface.mtu ?? rec.mtu,
          });
        }
        const mtu = iface.mtu ?? (rec.kind === 'bridge' ? await this.requireLink(rec.bridge ?? '', 'bridge', `host bridge '${rec.bridge}'`) : rec.mtu);
        return await this.plugTap(domainUuid, iface, mac, {
          bridge: rec.bridge,
          network: name,
          mtu,
          portTable: rec.tableFamilies.includes('bridge') ? rec.table : undefined,
        });
      } finally {
        const left = (this.pendingPlugs.get(name) ?? 1) - 1;
        if (left > 0) this.pendingPlugs.set(name, left);
        else this.pendingPlugs.delete(name);
        // A failed plug leaves no network behind that only it had asked for.
        if (realisedHere && this.refcount(name) === 0) await this.releaseNetwork(name).catch(() => undefined);
      }
    }
    if (iface.type === 'bridge') {
      const bridge = src.bridge;
      if (!bridge) throw new VirtError('xml-error', `interface of type 'bridge' needs a source bridge`);
      validateIfname(bridge, 'source bridge');
      const mtu = iface.mtu ?? (await this.requireLink(bridge, 'bridge', `bridge '${bridge}'`).catch((e) => {
        throw asVirtError(e, `cannot use bridge '${bridge}'`);
      }));
      return this.plugTap(domainUuid, iface, mac, { bridge, mtu });
    }
    if (iface.type === 'ethernet') {
      return this.plugTap(domainUuid, iface, mac, { mtu: iface.mtu });
    }
    // direct
    const dev = src.dev;
    if (!dev) throw new VirtError('xml-error', `interface of type 'direct' needs a source dev`);
    const parsed = DirectMode.safeParse(src.mode ?? 'vepa');
    if (!parsed.success) throw new VirtError('invalid-arg', `unknown direct mode '${src.mode}'`);
    return this.plugDirect(domainUuid, iface, mac, dev, parsed.data, opts, { mtu: iface.mtu });
  }

  private async plugTap(
    domainUuid: string,
    iface: InterfaceModel,
    mac: string,
    at: { bridge?: string | undefined; network?: string; mtu?: number | undefined; portTable?: string | undefined },
  ): Promise<PluggedInterface> {
    const hostMac = `fe${mac.slice(2)}`;
    const ifname = await this.createDevice('vnet', iface.targetDev, (name) =>
      // `ip tuntap add` sets IFF_TUN_EXCL, so an existing device of that name is EBUSY, never shared.
      this.cmds.ip(['tuntap', 'add', 'dev', name, 'mode', 'tap']),
    );
    const rec: PluggedInterface = { domainUuid, ifname, device: 'tap', type: iface.type as PluggedInterface['type'], mac, hostMac };
    if (at.bridge) rec.bridge = at.bridge;
    if (at.network) rec.network = at.network;
    if (at.mtu !== undefined) rec.mtu = at.mtu;
    try {
      const args = ['link', 'set', 'dev', ifname, 'address', hostMac];
      if (at.mtu !== undefined) args.push('mtu', String(at.mtu));
      if (at.bridge) args.push('master', at.bridge);
      args.push('up');
      // Nothing sends on a persistent tap before the guest opens it, so the port filter and the
      // link settings need no particular order.
      const table = at.portTable;
      const results = await Promise.allSettled([
        this.cmds.ip(args),
        table ? this.cmds.nft(addPort(table, ifname, mac)).then(() => (rec.portTable = table)) : undefined,
      ]);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    } catch (e) {
      await this.undoCreate(rec);
      throw asVirtError(e, `cannot set up tap device '${ifname}'`);
    }
    return this.record(rec);
  }

  private async plugDirect(
    domainUuid: string,
    iface: InterfaceModel,
    mac: string,
    parent: string,
    mode: DirectMode,
    opts: PlugOptions,
    at: { network?: string; mtu?: number | undefined },
  ): Promise<PluggedInterface> {
    validateIfname(parent, 'source dev');
    const device = opts.direct ?? 'macvtap';
    const ifname = await this.createDevice(device, iface.targetDev, (name) => {
      const args = ['link', 'add', 'link', parent, 'name', name, 'address', mac];
      if (at.mtu !== undefined) args.push('mtu', String(at.mtu));
      args.push('up', 'type', device, 'mode', mode === 'passthrough' ? 'passthru' : mode);
      return this.cmds.ip(args);
    });
    const rec: PluggedInterface = { domainUuid, ifname, device, type: iface.type as PluggedInterface['type'], mac, sourceDev: parent, mode };
    if (at.network) rec.network = at.network;
    if (at.mtu !== undefined) rec.mtu = at.mtu;
    return this.record(rec);
  }

  private async record(rec: PluggedInterface): Promise<PluggedInterface> {
    this.interfaces.set(rec.ifname, rec);
    await Promise.all([this.stateWriter.save(), this.namesWriter.save()]);
    return copy(rec);
  }

  /**
   * Allocates a name and creates the device in one step that fails if the name exists. A
   * generated or template name that turns out to exist is skipped (the host's devices are listed
   * once and consulted for further candidates); a fixed name that exists is an error.
   */
  private async createDevice(kind: NameKind, requested: string | undefined, create: (name: string) => Promise<unknown>): Promise<string> {
    let onHost: Set<string> | undefined;
    for (let attempt = 0; ; attempt++) {
      const name = this.names.allocate(kind, requested, (n) => onHost?.has(n) ?? false);
      try {
        await create(name);
        return name;
      } catch (e) {
        this.names.release(name);
        const exists = e instanceof CommandError && e.exists;
        if (!exists) throw asVirtError(e, `cannot create network device '${name}'`);
        if (classifyRequest(kind, requested).type === 'fixed') {
          throw new VirtError('operation-failed', `network device '${name}' already exists`);
        }
        if (attempt >= 3) throw new VirtError('operation-failed', `network device names keep appearing on the host; last tried '${name}'`);
        onHost = await this.linkNames();
      }
    }
  }

  private async linkNames(): Promise<Set<string>> {
    const links = JSON.parse(await this.cmds.ip(['-j', 'link', 'show'])) as { ifname: string }[];
    return new Set(links.map((l) => l.ifname));
  }

  /** Rolls back a device whose set-up failed after we created it. */
  private async undoCreate(rec: PluggedInterface): Promise<void> {
    if (rec.portTable) await this.cmds.nft(removePort(rec.portTable, rec.ifname)).catch(() => undefined);
    await this.cmds.ip(['link', 'del', 'dev', rec.ifname]).catch(() => undefined);
    this.names.release(rec.ifname);
    await this.namesWriter.save();
  }

  /**
   * Removes a guest's device. Everything keyed by its name (port filter, bridge port, the device
   * itself) is removed first; only then is the name recorded as released, so it cannot be handed
   * out while clean-up is pending. The last interface leaving a network removes the network.
   * Unplugging a device this host does not know is a no-op.
   */
  async unplugInterface(domainUuid: string, ifname: string): Promise<void> {
    this.checkOpen();
    const rec = this.interfaces.get(ifname);
    if (!rec) return;
    if (rec.domainUuid !== domainUuid) {
      throw new VirtError('operation-invalid', `network device '${ifname}' belongs to domain ${rec.domainUuid}`);
    }
    const running = this.unplugs.get(ifname);
    if (running) return running;
    const p = this.doUnplug(rec).finally(() => this.unplugs.delete(ifname));
    this.unplugs.set(ifname, p);
    return p;
  }

  private async doUnplug(rec: PluggedInterface): Promise<void> {
    try {
      // Independent of each other (the filter is keyed by the name, not the device); both must be
      // done before the name is released.
      const table = rec.portTable;
      const results = await Promise.allSettled([
        table ? this.cmds.nft(removePort(table, rec.ifname)).catch(ignoreMissing).then(() => delete rec.portTable) : undefined,
        this.cmds.ip(['link', 'del', 'dev', rec.ifname]).catch(ignoreMissing),
      ]);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    } catch (e) {
      rec.cleanupFailed = true;
      await this.stateWriter.save();
      throw asVirtError(e, `cannot remove network device '${rec.ifname}'`);
    }
    const network = rec.network;
    let networkError: unknown;
    const drop = async () => {
      this.interfaces.delete(rec.ifname);
      await this.stateWriter.save();
      if (network && this.refcount(network) === 0) {
        const net = this.networks.get(network);
        // The device's own clean-up is complete, so a network that fails to go away must not keep
        // its name held; the network stays recorded and releaseNetwork can retry.
        if (net) await this.teardown(net).catch((e) => (networkError = e));
      }
    };
    if (network) await this.withLock(`net:${network}`, drop);
    else await drop();
    await this.opts.beforeRelease?.(rec.ifname);
    this.names.release(rec.ifname);
    await this.namesWriter.save();
    if (networkError) throw asVirtError(networkError, `cannot remove network '${network}'`);
  }

  listInterfaces(): PluggedInterface[] {
    return [...this.interfaces.values()].map(copy);
  }

  /**
   * Marks names in use by running guests (found by the hypervisor driver at start-up), so new
   * names continue above them, as libvirt's virNetDevReserveName does on reconnect.
   */
  async reseed(namesInUse: Iterable<string>): Promise<void> {
    this.checkOpen();
    for (const n of namesInUse) if (typeof n === 'string' && n.length > 0) this.names.reserve(n);
    await this.namesWriter.save();
  }

  /**
   * The DHCP leases dnsmasq handed out on this host's networks (virsh net-dhcp-leases): where a
   * guest's addresses come from. A lease file that is missing or half-written yields what it holds.
   */
  async leases(): Promise<DhcpLease[]> {
    const out: DhcpLease[] = [];
    for (const rec of this.networks.values()) {
      if (!rec.dhcp) continue;
      const text = await readFile(this.dnsmasqFiles(rec.uuid).leases, 'utf8').catch(() => '');
      for (const line of text.split('\n')) {
        // dnsmasq writes: <expiry epoch> <mac> <address> <hostname or *> <client id or *>
        const [expiry, mac, address, hostname, clientId] = line.trim().split(/\s+/);
        if (!expiry || !mac || !address || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) continue;
        out.push({
          network: rec.name,
          mac: mac.toLowerCase(),
          address,
          family: address.includes(':') ? 'ipv6' : 'ipv4',
          ...(hostname && hostname !== '*' ? { hostname } : {}),
          ...(clientId && clientId !== '*' ? { clientId } : {}),
          expiresAt: new Date(Number(expiry) * 1000).toISOString(),
        });
      }
    }
    return out;
  }

  /** Whether dnsmasq for a network is running (for status and tests). */
  async dhcpPid(name: string): Promise<number | undefined> {
    const rec = this.networks.get(name);
    return rec?.dhcp ? runningPid(this.dnsmasqFiles(rec.uuid)) : undefined;
  }

  /**
   * Refuses new operations, waits (up to `timeoutMs`) for running ones and flushes state;
   * networks and devices stay as they are. An operation still running after the deadline finishes
   * on its own; what it had recorded by then is what the next start sees.
   */
  async close(timeoutMs = 30_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.locks.values(), ...this.unplugs.values()]),
      new Promise((r) => (timer = setTimeout(r, timeoutMs))),
    ]);
    clearTimeout(timer);
    await Promise.all([this.stateWriter.save(), this.namesWriter.save()]);
  }

  private checkOpen(): void {
    if (this.closed) throw new VirtError('operation-invalid', 'the network host is closed');
  }

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }
}

function publicNetwork(rec: NetworkRecord): RealisedNetwork {
  const { phase: _phase, ...rest } = rec;
  return copy(rest);
}
