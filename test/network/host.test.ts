import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { NetworkDefinition } from '../../contracts/network/definition.ts';
import { InterfaceModel } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import { NetworkHost, tableName, type NetworkHostOptions, type NetworkLookup } from '../../drivers/network/index.ts';
import { createNetns, type TestNetns } from '../fixtures/netns.ts';

/** Live dnsmasq processes started from configuration files under `dir` (zombies have exited). */
async function dnsmasqUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      if (cmd.includes(`--conf-file=${dir}`) && !/^\d+ \(.*\) Z/.test(stat)) pids.push(Number(entry));
    } catch {
      /* exited while we looked */
    }
  }
  return pids;
}

interface LinkInfo {
  ifname: string;
  address: string;
  mtu: number;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
}

async function link(ns: TestNetns, name: string): Promise<LinkInfo> {
  const [l] = JSON.parse(await ns.ip('-d', '-j', 'link', 'show', 'dev', name)) as LinkInfo[];
  if (!l) throw new Error(`no link ${name}`);
  return l;
}

const net = (input: Partial<NetworkDefinition> & { name: string }): NetworkDefinition =>
  NetworkDefinition.parse({ uuid: randomUUID(), ...input });

const nic = (input: Partial<InterfaceModel> & Pick<InterfaceModel, 'type'>): InterfaceModel => InterfaceModel.parse(input);

describe('NetworkHost in a network namespace', () => {
  let ns: TestNetns;
  let stateDir: string;
  let host: NetworkHost;
  const hosts: NetworkHost[] = [];
  const defs = new Map<string, NetworkDefinition>();
  const lookup: NetworkLookup = (name) => defs.get(name);
  const define = (d: NetworkDefinition) => (defs.set(d.name, d), d);

  const open = async (extra: Partial<NetworkHostOptions> = {}) => {
    const h = await NetworkHost.open({ stateDir, netns: ns.name, ...extra });
    hosts.push(h);
    return h;
  };

  beforeAll(async () => {
    ns = await createNetns();
    stateDir = await mkdtemp(join(tmpdir(), 'vp-nethost-'));
    await ns.addVeth('uplink0', 'uplink1');
    host = await open();
  });

  afterAll(async () => {
    for (const h of hosts) {
      for (const n of h.listNetworks()) await h.destroyNetwork(n.name).catch(() => undefined);
      await h.close().catch(() => undefined);
    }
    await ns?.remove();
    if (stateDir) {
      // A failed test must not leave a DHCP server running.
      for (const pid of await dnsmasqUnder(stateDir)) process.kill(pid, 'SIGKILL');
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('realises a NAT network on demand and removes all of it when the last guest leaves', async () => {
    const def = define(
      net({
        name: 'default',
        forward: { mode: 'nat' },
        bridge: { name: 'vpbr0' },
        mtu: 1400,
        ips: [
          {
            family: 'ipv4',
            address: '192.168.150.1',
            prefix: 24,
            dhcp: { ranges: [{ start: '192.168.150.10', end: '192.168.150.99' }], hosts: [] },
          },
        ],
      }),
    );
    const dom = randomUUID();
    const a = await host.plugInterface(dom, nic({ type: 'network', source: { network: 'default' }, mac: '52:54:00:aa:00:01' }), lookup);
    expect(a).toMatchObject({ ifname: 'vnet0', device: 'tap', bridge: 'vpbr0', network: 'default', mac: '52:54:00:aa:00:01' });
    expect(a.hostMac).toBe('fe:54:00:aa:00:01');

    const br = await link(ns, 'vpbr0');
    expect(br.linkinfo?.info_kind).toBe('bridge');
    expect(br.flags).toContain('UP');
    expect(await ns.ip('-4', '-o', 'addr', 'show', 'dev', 'vpbr0')).toContain('192.168.150.1/24');
    const tap = await link(ns, 'vnet0');
    expect(tap).toMatchObject({ master: 'vpbr0', address: 'fe:54:00:aa:00:01', mtu: 1400 });
    expect(tap.linkinfo?.info_kind).toBe('tun');

    const table = tableName(def.uuid);
    expect(await ns.nftTables()).toEqual(expect.arrayContaining([`inet ${table}`, `bridge ${table}`]));
    const ruleset = await ns.exec('nft', 'list', 'table', 'inet', table);
    expect(ruleset).toContain('masquerade');
    expect(await ns.exec('nft', 'list', 'table', 'bridge', table)).toContain('"vnet0" : jump port_vnet0');
    expect((await ns.exec('sysctl', '-n', 'net.ipv4.ip_forward')).trim()).toBe('1');

    const pid = await host.dhcpPid('default');
    expect(pid).toBeGreaterThan(0);
    expect(await dnsmasqUnder(stateDir)).toEqual([pid]);
    expect(await ns.exec('ss', '-H', '-uln')).toMatch(/:67\b/);

    // Same domain and MAC again (a redelivered task): the same device, not a second one.
    const again = await host.plugInterface(dom, nic({ type: 'network', source: { network: 'default' }, mac: '52:54:00:aa:00:01' }), lookup);
    expect(again.ifname).toBe('vnet0');

    const b = await host.plugInterface(randomUUID(), nic({ type: 'network', source: { network: 'default' } }), lookup);
    expect(b.ifname).toBe('vnet1');
    expect(b.mac).toMatch(/^52:54:00:/);

    await host.unplugInterface(dom, 'vnet0');
    expect(await ns.links()).not.toContain('vnet0');
    expect(await ns.exec('nft', 'list', 'table', 'bridge', table)).not.toContain('vnet0');
    expect(host.listNetworks().map((n) => n.name)).toEqual(['default']);

    await host.unplugInterface(b.domainUuid, b.ifname);
    expect(host.listNetworks()).toEqual([]);
    expect(await ns.links()).toEqual(['lo', 'uplink1', 'uplink0']);
    expect(await ns.nftTables()).toEqual([]);
    expect(await dnsmasqUnder(stateDir)).toEqual([]);
    expect(await readdir(join(stateDir, 'dnsmasq'))).toEqual([]);
  });

  it('changes the fixed DHCP hosts of a running dnsmasq in place, only when they differ, and refuses hostile values', async () => {
    const def = define(
      net({
        name: 'fixed',
        bridge: { name: 'vpbr9' },
        ips: [{ family: 'ipv4', address: '192.168.151.1', prefix: 24, dhcp: { ranges: [{ start: '192.168.151.10', end: '192.168.151.99' }], hosts: [{ mac: '52:54:00:bb:00:01', ip: '192.168.151.5' }] } }],
      }),
    );
    await host.ensureNetwork(def);
    const file = join(stateDir, 'dnsmasq', `${def.uuid}.hostsfile`);
    expect(await readFile(file, 'utf8')).toBe('52:54:00:bb:00:01,192.168.151.5\n');
    const pid = await host.dhcpPid('fixed');
    const withHosts = (hosts: NonNullable<NetworkDefinition['ips'][number]['dhcp']>['hosts']): NetworkDefinition => ({
      ...def,
      ips: [{ ...def.ips[0]!, dhcp: { ranges: def.ips[0]!.dhcp!.ranges, hosts } }],
    });
    const next = withHosts([...def.ips[0]!.dhcp!.hosts, { mac: '52:54:00:bb:00:02', ip: '192.168.151.6', name: 'b' }]);
    expect(await host.updateDhcpHosts(next)).toBe(true);
    const both = '52:54:00:bb:00:01,192.168.151.5\n52:54:00:bb:00:02,192.168.151.6,b\n';
    expect(await readFile(file, 'utf8')).toBe(both);
    // Told once: the same list again signals nothing.
    expect(await host.updateDhcpHosts(next)).toBe(false);
    expect(await host.dhcpPid('fixed')).toBe(pid);
    // Another network that has the name elsewhere is not this one.
    expect(await host.updateDhcpHosts({ ...next, uuid: randomUUID() })).toBe(false);
    const hostile = withHosts([...next.ips[0]!.dhcp!.hosts, { mac: '52:54:00:bb:00:03', name: 'x\ndhcp-script=/bin/sh' }]);
    await expect(host.updateDhcpHosts(hostile)).rejects.toThrow(/invalid DHCP host name/);
    expect(await readFile(file, 'utf8')).toBe(both);
    // A new host object (the agent restarted) tells the running daemon once, though the file is current:
    // the one before may have died between writing it and the signal.
    const restarted = await open();
    expect(await restarted.updateDhcpHosts(next)).toBe(true);
    expect(await restarted.updateDhcpHosts(next)).toBe(false);
    await restarted.close();
    expect(await host.dhcpPid('fixed')).toBe(pid);
    // A daemon started with its hosts in the configuration (an earlier release) is not told it changed them.
    const confFile = join(stateDir, 'dnsmasq', `${def.uuid}.conf`);
    const conf = await readFile(confFile, 'utf8');
    await writeFile(confFile, conf.replace(/^dhcp-hostsfile=.*\n/m, 'dhcp-host=52:54:00:bb:00:01,192.168.151.5\n'));
    await expect(host.updateDhcpHosts(withHosts([]))).rejects.toThrow(/predates live updates/);
    expect(await readFile(file, 'utf8')).toBe(both);
    await host.destroyNetwork('fixed');
    expect(await readdir(join(stateDir, 'dnsmasq'))).toEqual([]);
  });

  it('interleaved guests never get a name the kernel would have reused', async () => {
    define(net({ name: 'churn', forward: { mode: 'route' }, ips: [{ family: 'ipv4', address: '10.77.0.1', prefix: 24 }] }));
    const dom = randomUUID();
    const plug = () => host.plugInterface(dom, nic({ type: 'network', source: { network: 'churn' } }), lookup);
    const all: string[] = [];
    // Create, create, delete the first, create: the kernel's lowest-free choice would repeat names.
    for (let round = 0; round < 15; round++) {
      const x = await plug();
      const y = await plug();
      await host.unplugInterface(dom, x.ifname);
      const z = await plug();
      await host.unplugInterface(dom, y.ifname);
      await host.unplugInterface(dom, z.ifname);
      all.push(x.ifname, y.ifname, z.ifname);
    }
    expect(new Set(all).size).toBe(all.length);
    const nums = all.map((n) => Number(n.slice('vnet'.length)));
    expect(nums).toEqual([...nums].sort((p, q) => p - q));
    expect(host.listNetworks()).toEqual([]);
    expect((await ns.links()).filter((n) => n.startsWith('vnet') || n.startsWith('vpbr'))).toEqual([]);
    expect(await ns.nftTables()).toEqual([]);
  });

  it('never hands out a name whose clean-up is pending, even when the counter wraps', async () => {
    const pending = new Set<string>();
    const gates = new Map<string, () => void>();
    const holdBack = new Set<string>();
    const violations: string[] = [];
    const h = await open({
      stateDir: await mkdtemp(join(tmpdir(), 'vp-nethost-wrap-')),
      allocator: { maxIds: { vnet: 5 }, quarantineMs: 0 },
      beforeRelease: async (ifname) => {
        if (holdBack.delete(ifname)) await new Promise<void>((r) => gates.set(ifname, r));
        pending.delete(ifname);
      },
    });
    define(net({ name: 'wrap', ips: [{ family: 'ipv4', address: '10.78.0.1', prefix: 24 }] }));
    const dom = randomUUID();
    const plug = async () => {
      const p = await h.plugInterface(dom, nic({ type: 'network', source: { network: 'wrap' } }), lookup);
      if (pending.has(p.ifname)) violations.push(p.ifname);
      return p;
    };
    const unplug = (ifname: string) => {
      pending.add(ifname);
      return h.unplugInterface(dom, ifname);
    };

    // A guest whose clean-up stalls: its device is gone but the name is not yet released.
    const keep = await plug(); // keeps the network alive throughout
    const stalled = await plug();
    holdBack.add(stalled.ifname);
    const stalledUnplug = unplug(stalled.ifname);
    while (!gates.has(stalled.ifname)) await new Promise((r) => setTimeout(r, 5));
    expect(await ns.links()).not.toContain(stalled.ifname);

    // Several parallel guests churn through the 6 names many times over.
    const churn = async () => {
      for (let i = 0; i < 12; i++) {
        const p = await plug();
        expect(p.ifname).not.toBe(stalled.ifname);
        await unplug(p.ifname);
      }
    };
    try {
      await Promise.all([churn(), churn(), churn()]);
    } finally {
      gates.get(stalled.ifname)?.();
      await stalledUnplug;
    }
    // Released now: after another wrap the name comes back.
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const p = await plug();
      seen.add(p.ifname);
      await unplug(p.ifname);
    }
    expect(seen.has(stalled.ifname)).toBe(true);
    expect(violations).toEqual([]);
    await unplug(keep.ifname);
    expect(h.listNetworks()).toEqual([]);
    expect((await ns.links()).filter((n) => /^(vnet|vpbr)/.test(n))).toEqual([]);
    await h.close();
    await rm(h.stateDir, { recursive: true, force: true });
  });

  it('creates macvtap and macvlan devices on a parent link with the requested mode', async () => {
    const dom = randomUUID();
    const mt = await host.plugInterface(
      dom,
      nic({ type: 'direct', source: { dev: 'uplink0', mode: 'bridge' }, mac: '52:54:00:bb:00:01' }),
      lookup,
    );
    const mt2 = await host.plugInterface(dom, nic({ type: 'direct', source: { dev: 'uplink0' } }), lookup);
    const mv = await host.plugInterface(dom, nic({ type: 'direct', source: { dev: 'uplink0', mode: 'private' } }), lookup, {
      direct: 'macvlan',
    });
    expect([mt.ifname, mt2.ifname, mv.ifname]).toEqual(['macvtap0', 'macvtap1', 'macvlan0']);
    const l = await link(ns, 'macvtap0');
    expect(l.linkinfo).toMatchObject({ info_kind: 'macvtap', info_data: { mode: 'bridge' } });
    expect(l.address).toBe('52:54:00:bb:00:01');
    expect((await link(ns, 'macvtap1')).linkinfo?.info_data?.mode).toBe('vepa');
    expect((await link(ns, 'macvlan0')).linkinfo).toMatchObject({ info_kind: 'macvlan', info_data: { mode: 'private' } });

    await host.unplugInterface(dom, mt.ifname);
    const mt3 = await host.plugInterface(dom, nic({ type: 'direct', source: { dev: 'uplink0' } }), lookup);
    expect(mt3.ifname).toBe('macvtap2');
    for (const i of [mt2, mv, mt3]) await host.unplugInterface(dom, i.ifname);
    expect((await ns.links()).filter((n) => n.startsWith('mac'))).toEqual([]);

    await expect(
      host.plugInterface(dom, nic({ type: 'direct', source: { dev: 'nosuch0' } }), lookup),
    ).rejects.toThrowError(VirtError);
  });

  it('networks in a direct forward mode give guests macvtaps on the forward device', async () => {
    define(net({ name: 'vepa-net', forward: { mode: 'vepa', dev: 'uplink1' } }));
    const dom = randomUUID();
    const i = await host.plugInterface(dom, nic({ type: 'network', source: { network: 'vepa-net' } }), lookup);
    expect(i).toMatchObject({ device: 'macvtap', network: 'vepa-net', sourceDev: 'uplink1', mode: 'vepa' });
    expect(i.ifname).toMatch(/^macvtap\d+$/);
    expect(host.listNetworks()).toMatchObject([{ name: 'vepa-net', kind: 'direct', ownsBridge: false }]);
    await host.unplugInterface(dom, i.ifname);
    expect(host.listNetworks()).toEqual([]);
    expect(await ns.links()).toContain('uplink1');
  });

  it('attaches to existing host bridges without creating or removing them', async () => {
    await ns.ip('link', 'add', 'hostbr0', 'mtu', '1450', 'type', 'bridge');
    define(net({ name: 'host-bridge', forward: { mode: 'bridge' }, bridge: { name: 'hostbr0' } }));
    const dom = randomUUID();
    const viaNet = await host.plugInterface(dom, nic({ type: 'network', source: { network: 'host-bridge' } }), lookup);
    const viaBridge = await host.plugInterface(dom, nic({ type: 'bridge', source: { bridge: 'hostbr0' } }), lookup);
    const eth = await host.plugInterface(dom, nic({ type: 'ethernet', mtu: 9000 }), lookup);
    expect((await link(ns, viaNet.ifname)).master).toBe('hostbr0');
    expect(await link(ns, viaBridge.ifname)).toMatchObject({ master: 'hostbr0', mtu: 1450 });
    expect(await link(ns, eth.ifname)).toMatchObject({ mtu: 9000 });
    expect((await link(ns, eth.ifname)).master).toBeUndefined();
    for (const i of [viaNet, viaBridge, eth]) await host.unplugInterface(dom, i.ifname);
    expect(host.listNetworks()).toEqual([]);
    expect(await ns.links()).toContain('hostbr0');
    expect(await ns.nftTables()).toEqual([]);
    await expect(
      host.plugInterface(dom, nic({ type: 'bridge', source: { bridge: 'uplink0' } }), lookup),
    ).rejects.toThrowError(/is not a bridge/);
    await ns.ip('link', 'del', 'hostbr0');
  });

  it('treats a device that already exists as an error, never sharing it', async () => {
    const dom = randomUUID();
    await ns.ip('tuntap', 'add', 'dev', 'taken0', 'mode', 'tap');
    await expect(host.plugInterface(dom, nic({ type: 'ethernet', targetDev: 'taken0' }), lookup)).rejects.toThrowError(
      /network device 'taken0' already exists/,
    );
    expect(await ns.links()).toContain('taken0');
    // A network realised only for a plug that then failed does not stay behind.
    define(net({ name: 'short-lived', ips: [{ family: 'ipv4', address: '10.82.0.1', prefix: 24 }] }));
    await expect(
      host.plugInterface(dom, nic({ type: 'network', targetDev: 'taken0', source: { network: 'short-lived' } }), lookup),
    ).rejects.toThrowError(/already exists/);
    expect(host.listNetworks()).toEqual([]);
    expect(await ns.nftTables()).toEqual([]);
    await expect(
      host.plugInterface(dom, nic({ type: 'direct', targetDev: 'uplink0', source: { dev: 'uplink1' } }), lookup),
    ).rejects.toThrowError(/already exists/);
    await expect(host.plugInterface(dom, nic({ type: 'ethernet', targetDev: 'vnet9' }), lookup)).rejects.toThrowError(
      /reserved for generated devices/,
    );

    // A generated name somebody else created in the meantime is skipped.
    const first = await host.plugInterface(dom, nic({ type: 'ethernet' }), lookup);
    const next = Number(first.ifname.slice(4)) + 1;
    await ns.ip('tuntap', 'add', 'dev', `vnet${next}`, 'mode', 'tap');
    await ns.ip('tuntap', 'add', 'dev', `vnet${next + 1}`, 'mode', 'tap');
    const second = await host.plugInterface(dom, nic({ type: 'ethernet' }), lookup);
    expect(second.ifname).toBe(`vnet${next + 2}`);

    // Fixed names and templates.
    const fixed = await host.plugInterface(dom, nic({ type: 'ethernet', targetDev: 'guest-a' }), lookup);
    const t1 = await host.plugInterface(dom, nic({ type: 'ethernet', targetDev: 'mytap%d' }), lookup);
    await host.unplugInterface(dom, t1.ifname);
    const t2 = await host.plugInterface(dom, nic({ type: 'ethernet', targetDev: 'mytap%d' }), lookup);
    expect([fixed.ifname, t1.ifname, t2.ifname]).toEqual(['guest-a', 'mytap0', 'mytap1']);

    for (const i of [first, second, fixed, t2]) await host.unplugInterface(dom, i.ifname);
    expect(await ns.links()).toContain(`vnet${next}`);
    for (const n of ['taken0', `vnet${next}`, `vnet${next + 1}`]) await ns.ip('link', 'del', n);
    await expect(host.plugInterface(dom, nic({ type: 'user' }), lookup)).rejects.toThrowError(/no host network device/);
    await expect(
      host.plugInterface(dom, nic({ type: 'network', source: { network: 'nope' } }), lookup),
    ).rejects.toMatchObject({ code: 'no-network' });
  });

  it('isolated networks forward nothing; an existing bridge name is refused', async () => {
    const def = define(net({ name: 'iso', bridge: { name: 'vpiso0' }, ips: [{ family: 'ipv4', address: '10.79.0.1', prefix: 24 }] }));
    const r = await host.ensureNetwork(def);
    expect(r).toMatchObject({ kind: 'isolated', bridge: 'vpiso0', dhcp: false });
    const rules = await ns.exec('nft', 'list', 'table', 'inet', tableName(def.uuid));
    expect(rules).toContain('iifname "vpiso0" drop');
    expect(rules).not.toContain('masquerade');
    expect(await host.releaseNetwork('iso')).toBe(true);

    await ns.ip('link', 'add', 'vpiso0', 'type', 'bridge');
    await expect(host.ensureNetwork(def)).rejects.toThrowError(/bridge name 'vpiso0' is already in use/);
    expect(host.listNetworks()).toEqual([]);
    expect(await ns.nftTables()).toEqual([]);
    await ns.ip('link', 'del', 'vpiso0');
  });

  it('destroying a network in use removes it and leaves the guests detached', async () => {
    const def = define(
      net({
        name: 'doomed',
        forward: { mode: 'nat' },
        ips: [{ family: 'ipv4', address: '10.80.0.1', prefix: 24, dhcp: { ranges: [{ start: '10.80.0.2', end: '10.80.0.9' }], hosts: [] } }],
      }),
    );
    const dom = randomUUID();
    const i = await host.plugInterface(dom, nic({ type: 'network', source: { network: 'doomed' } }), lookup);
    const bridge = host.listNetworks()[0]?.bridge ?? '';
    expect(await host.releaseNetwork('doomed')).toBe(false);
    await host.destroyNetwork('doomed');
    expect(await ns.links()).not.toContain(bridge);
    expect(await ns.nftTables()).toEqual([]);
    expect(await dnsmasqUnder(stateDir)).toEqual([]);
    expect((await link(ns, i.ifname)).master).toBeUndefined();
    // The network can start again; the detached guest does not hold it up.
    await host.ensureNetwork(def);
    await host.unplugInterface(dom, i.ifname);
    expect(host.listNetworks().map((n) => n.name)).toEqual(['doomed']);
    expect(await host.releaseNetwork('doomed')).toBe(true);
    expect(await dnsmasqUnder(stateDir)).toEqual([]);
  });

  it('a restarted host continues past names in use and recently used, and unplugs what it recorded', async () => {
    const dom = randomUUID();
    const before = await host.plugInterface(dom, nic({ type: 'ethernet' }), lookup);
    const released = await host.plugInterface(dom, nic({ type: 'ethernet' }), lookup);
    await host.unplugInterface(dom, released.ifname);
    await host.close();

    host = await open();
    expect(host.listInterfaces().map((i) => i.ifname)).toEqual([before.ifname]);
    const after = await host.plugInterface(dom, nic({ type: 'ethernet' }), lookup);
    expect(Number(after.ifname.slice(4))).toBeGreaterThan(Number(released.ifname.slice(4)));
    await host.unplugInterface(dom, before.ifname);
    await host.unplugInterface(dom, after.ifname);

    // A host whose state was lost learns the running guests' names from the hypervisor.
    const freshDir = await mkdtemp(join(tmpdir(), 'vp-nethost-fresh-'));
    const fresh = await open({ stateDir: freshDir });
    await fresh.reseed(['vnet500', 'macvtap41', 'guest-x']);
    const n = await fresh.plugInterface(dom, nic({ type: 'ethernet' }), lookup);
    expect(n.ifname).toBe('vnet501');
    await fresh.unplugInterface(dom, n.ifname);
    await fresh.close();
    await rm(freshDir, { recursive: true, force: true });
    expect((await ns.links()).filter((l) => l.startsWith('vnet'))).toEqual([]);
  });

  it('networks survive a restart of the host object; a vanished bridge is cleaned up at open', async () => {
    const def = define(
      net({
        name: 'lasting',
        forward: { mode: 'nat' },
        ips: [{ family: 'ipv4', address: '10.81.0.1', prefix: 24, dhcp: { ranges: [{ start: '10.81.0.2', end: '10.81.0.9' }], hosts: [] } }],
      }),
    );
    const dom = randomUUID();
    const i = await host.plugInterface(dom, nic({ type: 'network', source: { network: 'lasting' } }), lookup);
    const pid = await host.dhcpPid('lasting');
    await host.close();
    host = await open();
    expect(await host.dhcpPid('lasting')).toBe(pid);
    const j = await host.plugInterface(dom, nic({ type: 'network', source: { network: 'lasting' } }), lookup);
    expect(Number(j.ifname.slice(4))).toBeGreaterThan(Number(i.ifname.slice(4)));
    await host.unplugInterface(dom, i.ifname);
    await host.unplugInterface(dom, j.ifname);
    expect(host.listNetworks()).toEqual([]);
    expect(await dnsmasqUnder(stateDir)).toEqual([]);

    // The bridge disappears while no host object runs (a reboot with a persistent state dir).
    const r = await host.ensureNetwork(def);
    await host.close();
    await ns.ip('link', 'del', r.bridge ?? '');
    host = await open();
    expect(host.listNetworks()).toEqual([]);
    expect(await ns.nftTables()).toEqual([]);
    expect(await dnsmasqUnder(stateDir)).toEqual([]);
  });

  it('leaves nothing in the root namespace', () => {
    const root = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map(
      (l) => l.ifname,
    );
    expect(root.filter((n) => /^(vnet|macvtap|macvlan|vpbr|vpiso|mytap|guest-)/.test(n))).toEqual([]);
  });
});
