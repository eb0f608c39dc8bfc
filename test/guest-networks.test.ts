import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../platform/config.ts';
import type { DomainView } from '../contracts/views.ts';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { buildTinyGuest, tinyGuestXml, type TinyGuest } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();
const links = async (): Promise<string[]> => (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '').filter(Boolean);
const ports = async (bridge: string): Promise<string[]> =>
  (await run('ip', ['-o', 'link', 'show', 'master', bridge]).catch(() => ({ stdout: '' }))).stdout.split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '').filter(Boolean);

/**
 * Guests on a virtual network, end to end: the network is defined and started fleet-wide, realised on
 * the host when the first guest needs it, and taken down when the last guest leaves. Tap names come
 * from the host's own counter and are never handed out again soon after release. An isolated network
 * (no forwarding, no NAT) keeps the machine's own routing untouched.
 */
describe.skipIf(!availability.ok)('guests on a virtual network', () => {
  let stack: Stack;
  let guest: TinyGuest;
  const bridge = `vptest${randomBytes(3).toString('hex')}`;
  const net = `iso-${randomBytes(3).toString('hex')}`;
  const type = availability.kvm ? 'kvm' : 'qemu';
  const nic = `<interface type='network'><source network='${net}'/><model type='virtio'/></interface>`;
  const view = (name: string): Promise<DomainView> => stack.client.get(name);
  const settle = async (p: ReturnType<Stack['client']['start']>) => stack.client.outcome(await p, 180_000);

  beforeAll(async () => {
    guest = await buildTinyGuest();
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
    await stack.client.netDefine({
      xml: `<network><name>${net}</name><bridge name='${bridge}'/><ip address='192.168.251.1' netmask='255.255.255.0'><dhcp><range start='192.168.251.100' end='192.168.251.199'/></dhcp></ip></network>`,
    });
    await stack.client.netStart(net);
  }, 180_000);
  afterAll(async () => {
    for (const v of (await stack?.client.list({ all: false }).catch(() => [])) ?? []) {
      await stack.client.destroy(v.id).then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    }
    await stack?.client.netDestroy(net).catch(() => undefined);
    await stack?.stop();
    await run('ip', ['link', 'del', bridge]).catch(() => undefined);
  });

  it('realises the network with the first guest, names taps monotonically, and removes everything with the last', async () => {
    expect(await links()).not.toContain(bridge);
    for (const name of ['net-a', 'net-b']) {
      await stack.client.define({ xml: tinyGuestXml(guest, { name, type, devicesXml: nic }) });
    }
    const used: string[] = [];
    await settle(stack.client.start('net-a'));
    expect(await links()).toContain(bridge);
    const a1 = (await view('net-a')).interfaces[0]!.ifname;
    used.push(a1);
    expect(a1).toMatch(/^vnet\d+$/);
    expect(await ports(bridge)).toEqual([a1]);
    // dumpxml of the running guest names its tap as libvirt does; the inactive definition does not.
    const dumpxml = async (...args: string[]) =>
      (await run(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), 'dumpxml', 'net-a', ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url } })).stdout;
    expect(await dumpxml()).toMatch(new RegExp(`<target dev=["']${a1}["']\\s*/>`));
    expect(await dumpxml('--inactive')).not.toContain(a1);

    await settle(stack.client.start('net-b'));
    const b1 = (await view('net-b')).interfaces[0]!.ifname;
    used.push(b1);
    expect(new Set(await ports(bridge))).toEqual(new Set([a1, b1]));

    // Interleave stop and start: the kernel's lowest-free naming would give net-a's old name back.
    let lastA = a1;
    for (let round = 0; round < 3; round++) {
      await settle(stack.client.destroy('net-a'));
      expect(await links()).not.toContain(lastA);
      await settle(stack.client.start('net-a'));
      const again = (await view('net-a')).interfaces[0]!.ifname;
      expect(used).not.toContain(again);
      used.push(again);
      lastA = again;
    }
    const numbers = used.map((n) => Number(n.slice(4)));
    expect([...numbers].sort((x, y) => x - y)).toEqual(numbers);

    await settle(stack.client.destroy('net-a'));
    expect(await links()).toContain(bridge);
    await settle(stack.client.destroy('net-b'));
    // The last guest left: bridge gone, and none of the taps is left behind.
    const after = await links();
    expect(after).not.toContain(bridge);
    for (const n of used) expect(after).not.toContain(n);
  }, 900_000);

  it('hot-plugs and unplugs an interface on a running guest', async () => {
    await stack.client.define({ xml: tinyGuestXml(guest, { name: 'net-d', type, devicesXml: nic }) });
    await settle(stack.client.start('net-d'));
    const mac = '52:54:00:be:ef:01';
    const attached = await stack.client.outcome(await stack.client.attachInterface('net-d', { type: 'network', source: { network: net }, model: 'virtio', mac }), 120_000);
    const added = attached.interfaces.find((i) => i.mac === mac);
    expect(added?.ifname).toMatch(/^vnet\d+$/);
    expect(await ports(bridge)).toContain(added!.ifname);
    expect(attached.definition.devices.interfaces.map((i) => i.mac)).toContain(mac);
    // Live only: the next boot is as it was.
    expect(attached.nextDefinition?.devices.interfaces.map((i) => i.mac)).not.toContain(mac);

    const detached = await stack.client.outcome(await stack.client.detachInterface('net-d', mac), 180_000);
    expect(detached.interfaces.map((i) => i.mac)).not.toContain(mac);
    expect(await links()).not.toContain(added!.ifname);
    await settle(stack.client.destroy('net-d'));
  }, 600_000);

  it('domifaddr shows the address the guest took from the network\'s DHCP', async () => {
    await stack.client.define({ xml: tinyGuestXml(guest, { name: 'net-dhcp', type, devicesXml: nic, extraCmdline: 'vp.dhcp=1' }) });
    await settle(stack.client.start('net-dhcp'));
    const { execFile: ef } = await import('node:child_process');
    const cli = (...args: string[]) =>
      promisify(ef)(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url } }).then((r) => r.stdout);
    const end = Date.now() + 120_000;
    let out = '';
    while (Date.now() < end) {
      out = await cli('domifaddr', 'net-dhcp');
      if (/192\.168\.251\.\d+\/24/.test(out)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const v = await view('net-dhcp');
    const nicView = v.interfaces[0]!;
    expect(out).toMatch(new RegExp(`^ Name\\s+MAC address\\s+Protocol\\s+Address\\n-+\\n ${nicView.ifname}\\s+${nicView.mac}\\s+ipv4\\s+192\\.168\\.251\\.(1[0-9][0-9])/24\\n$`));
    expect(nicView.addresses).toEqual([expect.objectContaining({ family: 'ipv4', prefix: 24, source: 'lease' })]);
    // net-dhcp-leases reads the same lease file, live, from the host's agent; --mac as libvirt compares it.
    const header = ' Expiry Time\\s+MAC address\\s+Protocol\\s+IP address\\s+Hostname\\s+Client ID or DUID\\n-+\\n';
    const row = ` \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+${nicView.mac}\\s+ipv4\\s+192\\.168\\.251\\.1[0-9][0-9]/24\\s+\\S+\\s+\\S+\\n`;
    expect(await cli('net-dhcp-leases', net)).toMatch(new RegExp(`^${header}${row}$`));
    expect(await cli('net-dhcp-leases', net, '--mac', nicView.mac.toUpperCase())).toMatch(new RegExp(`^${header}${row}$`));
    expect(await cli('net-dhcp-leases', net, '--mac', '52:54:00:00:00:99')).toMatch(new RegExp(`^${header}$`));
    await settle(stack.client.destroy('net-dhcp'));
  }, 300_000);

  it('net-destroy takes the network down on the host, leaving guests detached', async () => {
    await stack.client.define({ xml: tinyGuestXml(guest, { name: 'net-c', type, devicesXml: nic }) });
    await settle(stack.client.start('net-c'));
    expect(await links()).toContain(bridge);
    await stack.client.netDestroy(net);
    const end = Date.now() + 30_000;
    while ((await links()).includes(bridge) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(await links()).not.toContain(bridge);
    expect((await view('net-c')).observed.state).toBe('running');
    await settle(stack.client.destroy('net-c'));
  }, 300_000);
});
