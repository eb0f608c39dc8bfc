import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetworkLiveChange } from '../contracts/network/lifecycle.ts';
import { subjects } from '../contracts/subjects.ts';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { encodeJson } from '../platform/nats.ts';
import { virtplane as runCli } from './fixtures/cli.ts';
import { buildTinyGuest, tinyGuestXml, type TinyGuest } from './fixtures/guest/build.ts';
import { createNetns, type TestNetns } from './fixtures/netns.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();
const hasUdhcpc = await run('busybox', ['udhcpc', '--help']).then(() => true, (e: { stderr?: string }) => /udhcpc/.test(e.stderr ?? ''));

/**
 * net-update --live on a network a host runs: the host's dnsmasq serves the changed fixed hosts
 * without a restart (same pid, leases kept), a DHCP client on the bridge gets its fixed address, and
 * a host agent that was away when the change was recorded converges when it returns. Needs root,
 * qemu (a guest realises the network on the host) and the host-net lock.
 */
describe.skipIf(!availability.ok)('net-update --live on a running network', () => {
  let stack: Stack;
  let guest: TinyGuest;
  let client: TestNetns | undefined;
  const tag = randomBytes(3).toString('hex');
  const bridge = `vptest${tag}`;
  const net = `live-${tag}`;
  const uuid = `5e1f0c2a-7b3d-4e8f-9a6b-${randomBytes(6).toString('hex')}`;
  const hostEnd = `vpl${tag}`;
  const clientMac = '52:54:00:5e:00:77';
  const type = availability.kvm ? 'kvm' : 'qemu';
  const cli = (...args: string[]) => runCli({ VIRTPLANE_NATS_URL: stack.nats.url, VIRTPLANE_DATA_DIR: stack.dataDir }, ...args);
  const dnsmasqDir = () => join(stack.dataDir, 'hosts', stack.hostId, 'network', 'dnsmasq');
  const hostsfile = () => readFile(join(dnsmasqDir(), `${uuid}.hostsfile`), 'utf8');
  const dnsmasqPid = async () => Number(await readFile(join(dnsmasqDir(), `${uuid}.pid`), 'utf8'));
  const until = async (what: string, check: () => Promise<boolean>, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  /** One DHCP exchange from the client's namespace; → the address offered, without configuring it. */
  const dhcp = async (): Promise<string | undefined> => {
    const r = await run('ip', ['netns', 'exec', client!.name, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '6', '-T', '1', '-s', '/bin/true'], { timeout: 20_000 }).catch(
      (e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );
    return /lease of (\S+) obtained/.exec(`${r.stdout}${r.stderr}`)?.[1];
  };

  beforeAll(async () => {
    guest = await buildTinyGuest();
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000', VIRTPLANE_RESYNC_MS: '1000' } });
    await stack.client.netDefine({
      xml: `<network><name>${net}</name><uuid>${uuid}</uuid><bridge name='${bridge}' stp='off' delay='0'/><ip address='192.168.247.1' netmask='255.255.255.0'><dhcp><range start='192.168.247.100' end='192.168.247.199'/><host mac='52:54:00:5e:00:01' ip='192.168.247.11'/></dhcp></ip></network>`,
    });
    await stack.client.netStart(net);
    // A guest on the network realises it on the host, dnsmasq included.
    const nic = `<interface type='network'><source network='${net}'/><model type='virtio'/></interface>`;
    await stack.client.define({ xml: tinyGuestXml(guest, { name: `g-${tag}`, type, devicesXml: nic }) });
    await stack.client.outcome(await stack.client.start(`g-${tag}`), 180_000);
    // A DHCP client with a MAC of its own, in a namespace whose veth's other end is a bridge port.
    client = await createNetns('vplive');
    await run('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.name]);
    await client.ip('link', 'set', 'eth0', 'address', clientMac);
    await client.ip('link', 'set', 'eth0', 'up');
    await run('ip', ['link', 'set', hostEnd, 'master', bridge]);
    await run('ip', ['link', 'set', hostEnd, 'up']);
  }, 240_000);
  afterAll(async () => {
    await run('ip', ['link', 'del', hostEnd]).catch(() => undefined);
    await client?.remove().catch(() => undefined);
    await stack?.client.destroy(`g-${tag}`).then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    await stack?.client.netDestroy(net).catch(() => undefined);
    await stack?.stop();
    await run('ip', ['link', 'del', bridge]).catch(() => undefined);
  }, 120_000);

  it('starts dnsmasq with the fixed hosts in a hosts file, not in its configuration', async () => {
    expect(await hostsfile()).toBe('52:54:00:5e:00:01,192.168.247.11\n');
    const conf = await readFile(join(dnsmasqDir(), `${uuid}.conf`), 'utf8');
    expect(conf).toContain(`dhcp-hostsfile=${join(dnsmasqDir(), `${uuid}.hostsfile`)}\n`);
    expect(conf).not.toContain('dhcp-host=');
    expect((await stat(join(dnsmasqDir(), `${uuid}.hostsfile`))).mode & 0o777).toBe(0o644);
  });

  it.skipIf(!hasUdhcpc)('add --live: the same dnsmasq serves the fixed address; delete --live takes it back', async () => {
    const pid = await dnsmasqPid();
    const add = await cli('net-update', net, 'add', 'ip-dhcp-host', `<host mac='${clientMac}' ip='192.168.247.77'/>`, '--live');
    expect(add).toMatchObject({ code: 0, stdout: `Updated network ${net} live state\n` });
    await until('the hosts file to hold the new entry', async () => (await hostsfile()).includes(`${clientMac},192.168.247.77\n`));
    expect(await hostsfile()).toBe(`52:54:00:5e:00:01,192.168.247.11\n${clientMac},192.168.247.77\n`);
    expect(await dnsmasqPid()).toBe(pid);
    expect(await dhcp()).toBe('192.168.247.77');
    // net-dumpxml shows the running network with the entry; --inactive the persistent one without.
    expect((await cli('net-dumpxml', net)).stdout).toContain(`<host mac='${clientMac}' ip='192.168.247.77'/>`);
    expect((await cli('net-dumpxml', net, '--inactive')).stdout).not.toContain(clientMac);

    const del = await cli('net-update', net, 'delete', 'ip-dhcp-host', `<host mac='${clientMac}'/>`, '--live');
    expect(del).toMatchObject({ code: 0, stdout: `Updated network ${net} live state\n` });
    await until('the hosts file to lose the entry', async () => !(await hostsfile()).includes(clientMac));
    const again = await dhcp();
    expect(again).toMatch(/^192\.168\.247\.1\d\d$/);
    expect(await dnsmasqPid()).toBe(pid);
    // The lease file kept what dnsmasq handed out: nothing was restarted.
    expect(await readFile(join(dnsmasqDir(), `${uuid}.leases`), 'utf8')).toContain(clientMac);
  }, 120_000);

  it('--live --config changes both; dns-host --live only the live definition', async () => {
    const pid = await dnsmasqPid();
    const both = await cli('net-update', net, 'add', 'ip-dhcp-host', "<host mac='52:54:00:5e:00:02' name='b' ip='192.168.247.12'/>", '--live', '--config');
    expect(both).toMatchObject({ code: 0, stdout: `Updated network ${net} persistent config and live state\n` });
    await until('the hosts file', async () => (await hostsfile()).includes('52:54:00:5e:00:02,192.168.247.12,b\n'));
    expect((await cli('net-dumpxml', net, '--inactive')).stdout).toContain("<host mac='52:54:00:5e:00:02' name='b' ip='192.168.247.12'/>");
    const dns = await cli('net-update', net, 'add', 'dns-host', "<host ip='192.168.247.12'><hostname>b</hostname></host>", '--live');
    expect(dns.code).toBe(0);
    expect((await stack.client.netGet(net)).definition.dns?.hosts).toEqual([{ ip: '192.168.247.12', hostnames: ['b'] }]);
    expect(await dnsmasqPid()).toBe(pid);
  }, 60_000);

  it('a duplicate command and a repeated notice change nothing', async () => {
    const xml = "<host mac='52:54:00:5e:00:03' ip='192.168.247.13'/>";
    const first = await stack.client.netUpdate(net, { command: 'add', section: 'ip-dhcp-host', xml, live: true }, { commandId: `dup-${tag}` });
    await until('the hosts file', async () => (await hostsfile()).includes('52:54:00:5e:00:03'));
    const before = { text: await hostsfile(), ino: (await stat(join(dnsmasqDir(), `${uuid}.hostsfile`))).ino };
    const again = await stack.client.netUpdate(net, { command: 'add', section: 'ip-dhcp-host', xml, live: true }, { commandId: `dup-${tag}` });
    expect(again).toMatchObject({ duplicate: true, version: first.version });
    const notice: NetworkLiveChange = { kind: 'live-definition', eventId: `replay-${tag}`, networkId: uuid, name: net, version: first.version };
    await stack.nats.nats.js.publish(subjects.networkLiveChange(uuid), encodeJson(notice));
    await sleep(1_000);
    // Not rewritten: the same file, the same content.
    expect(await hostsfile()).toBe(before.text);
    expect((await stat(join(dnsmasqDir(), `${uuid}.hostsfile`))).ino).toBe(before.ino);
    expect((await stack.client.netGet(net)).version).toBe(first.version);
  }, 60_000);

  it('a host agent killed before it applied a change converges when it starts again', async () => {
    const pid = await dnsmasqPid();
    await stack.kill('host-agent', 'SIGKILL');
    const r = await cli('net-update', net, 'add', 'ip-dhcp-host', "<host mac='52:54:00:5e:00:04' ip='192.168.247.14'/>", '--live');
    expect(r.code).toBe(0);
    await sleep(500);
    expect(await hostsfile()).not.toContain('52:54:00:5e:00:04');
    await stack.start('host-agent');
    await until('the returning agent to converge', async () => (await hostsfile()).includes('52:54:00:5e:00:04,192.168.247.14\n'));
    expect(await dnsmasqPid()).toBe(pid);
  }, 120_000);

  it('the periodic resync converges a hosts file that lost a change (no notice needed)', async () => {
    const pid = await dnsmasqPid();
    const want = await hostsfile();
    await writeFile(join(dnsmasqDir(), `${uuid}.hostsfile`), '52:54:00:5e:00:01,192.168.247.11\n');
    await until('the resync to restore the live hosts', async () => (await hostsfile()) === want, 10_000);
    expect(await dnsmasqPid()).toBe(pid);
  }, 30_000);

  it('--live on a network that is not running is refused', async () => {
    const other = `idle-${tag}`;
    await stack.client.netDefine({ xml: `<network><name>${other}</name><ip address='192.168.246.1' prefix='24'/></network>` });
    const r = await cli('net-update', other, 'add', 'ip-dhcp-host', "<host mac='52:54:00:5e:00:05' ip='192.168.246.5'/>", '--live');
    expect(r.stderr).toBe(`error: Failed to update network ${other}\nerror: Requested operation is not valid: network is not running [operation-invalid]\n`);
  });
});
