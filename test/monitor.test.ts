import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { virtplane } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

/** The same domain libvirt's test driver is given in the side-by-side runs with virsh. */
const XML = `<domain type='test'><name>mon1</name><memory unit='KiB'>1000000</memory><currentMemory unit='KiB'>600000</currentMemory>
<vcpu current='2'>3</vcpu><os><type>hvm</type></os><devices>
<disk type='block' device='cdrom'><source dev='/dev/sr0'/><target dev='hdc' bus='ide'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/x/y.qcow2'/><target dev='vdb' bus='virtio'/></disk>
<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:00:00:01'/></interface>
<memballoon model='virtio'/></devices></domain>`;

describe('monitoring verbs, read live from the host agent', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const file = join(stack.dataDir, 'mon1.xml');
    await writeFile(file, XML);
    expect((await virtplane(env, 'define', file)).code).toBe(0);
  }, 60_000);
  afterAll(async () => stack?.stop());

  it('domblklist reads the definition, running or not', async () => {
    expect((await virtplane(env, 'domblklist', 'mon1')).stdout).toBe(' Target   Source\n----------------------\n hdc      /dev/sr0\n vdb      /x/y.qcow2\n');
    expect((await virtplane(env, 'domblklist', 'mon1', '--details')).stdout).toBe(
      ' Type    Device   Target   Source\n---------------------------------------\n block   cdrom    hdc      /dev/sr0\n file    disk     vdb      /x/y.qcow2\n',
    );
    const unknown = await virtplane(env, 'domblklist', 'nosuch');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe("error: failed to get domain 'nosuch' [no-domain]");
  });

  it('a shut off domain has no live numbers: libvirt headline and reason', async () => {
    const r = await virtplane(env, 'dommemstat', 'mon1');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['error: Failed to get memory statistics for domain mon1', 'error: Requested operation is not valid: domain is not running [operation-invalid]']);
    const b = await virtplane(env, 'domblkstat', 'mon1', 'vdb');
    expect(b.stderr.trim().split('\n')[0]).toBe('error: Failed to get block stats mon1 vdb');
    expect((await virtplane(env, 'domstats', 'mon1')).stdout).toBe("Domain: 'mon1'\n  state.state=5\n  state.reason=0\n");
  });

  it("a running test domain reports libvirt's test driver numbers", { timeout: 60_000 }, async () => {
    expect((await virtplane(env, 'start', 'mon1')).code).toBe(0);
    expect((await virtplane(env, 'dommemstat', 'mon1')).stdout).toBe(
      'actual 600000\nswap_in 0\nswap_out 0\nmajor_fault 0\nminor_fault 0\nunused 300000\navailable 600000\nusable 300000\nlast_update 627319920\ndisk_caches 75000\nhugetlb_pgalloc 0\nhugetlb_pgfail 0\nrss 300000\n',
    );
    expect((await virtplane(env, 'domblkinfo', 'mon1', 'vdb')).stdout).toBe('Capacity:       1099506450432\nAllocation:     1099511627776\nPhysical:       1099511627776\n');
    expect((await virtplane(env, 'domblkinfo', 'mon1', '--all', '--human')).stdout).toBe(
      ' Target   Capacity       Allocation   Physical\n-------------------------------------------------\n hdc      1023.995 GiB   1.000 TiB    1.000 TiB\n vdb      1023.995 GiB   1.000 TiB    1.000 TiB\n',
    );
    // Counters derived from the time of asking, as the test driver's: they grow between two reads.
    const before = Date.now();
    const stat = (await virtplane(env, 'domblkstat', 'mon1', '/x/y.qcow2')).stdout.trim().split('\n');
    expect(stat.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['/x/y.qcow2 rd_req', '/x/y.qcow2 rd_bytes', '/x/y.qcow2 wr_req', '/x/y.qcow2 wr_bytes', '/x/y.qcow2 errs']);
    const rdReq = Number(stat[0]!.split(' ')[2]);
    // rd_req is the time in microseconds over 10.
    expect(Math.floor(rdReq / 100)).toBeGreaterThanOrEqual(before);
    expect(Math.floor(rdReq / 100)).toBeLessThanOrEqual(Date.now());
    const human = (await virtplane(env, 'domblkstat', 'mon1', 'vdb', '--human')).stdout.split('\n');
    expect(human[0]).toBe('Device: vdb');
    expect(human[1]).toMatch(/^ number of read operations: {6}\d+$/);
    expect(human[5]).toMatch(/^ error count: {20}\d+$/);
    const ifs = (await virtplane(env, 'domifstat', 'mon1', 'testnet0')).stdout.trim().split('\n');
    expect(ifs.map((l) => l.split(' ')[1])).toEqual(['rx_bytes', 'rx_packets', 'rx_errs', 'rx_drop', 'tx_bytes', 'tx_packets', 'tx_errs', 'tx_drop']);
    expect((await virtplane(env, 'domifstat', 'mon1', '52:54:00:00:00:01')).stdout).toMatch(/^52:54:00:00:00:01 rx_bytes \d+\n/);
    expect((await virtplane(env, 'cpu-stats', 'mon1')).stdout).toBe(
      'CPU0:\n\tcpu_time            24.386308517 seconds\n\tvcpu_time           23.151740627 seconds\nCPU1:\n\tcpu_time            24.386308518 seconds\n\tvcpu_time           23.151740628 seconds\nTotal:\n\tcpu_time            48.772617035 seconds\n\tuser_time            5.540000000 seconds\n\tsystem_time          6.460000000 seconds\n',
    );
    expect((await virtplane(env, 'cpu-stats', 'mon1', '--start', '1', '--count', '1')).stdout).toBe('CPU1:\n\tcpu_time            24.386308518 seconds\n\tvcpu_time           23.151740628 seconds\n');
    expect((await virtplane(env, 'domstats', 'mon1', '--state', '--block')).stdout).toBe("Domain: 'mon1'\n  state.state=1\n  state.reason=1\n");
  });

  it('bad devices, interfaces and options: libvirt wording, nothing changed', { timeout: 60_000 }, async () => {
    const info = await virtplane(env, 'domblkinfo', 'mon1', 'vdz');
    expect([info.code, info.stderr.trim()]).toEqual([1, 'error: invalid argument: invalid path vdz not assigned to domain [invalid-arg]']);
    const noDev = await virtplane(env, 'domblkinfo', 'mon1');
    expect([noDev.code, noDev.stderr.trim()]).toEqual([2, "error: command 'domblkinfo' requires <device> option"]);
    const stat = await virtplane(env, 'domblkstat', 'mon1', 'vdz');
    expect(stat.stderr.trim().split('\n')).toEqual(['error: Failed to get block stats mon1 vdz', 'error: invalid argument: invalid path: vdz [invalid-arg]']);
    const summary = await virtplane(env, 'domblkstat', 'mon1');
    expect(summary.stderr.trim().split('\n')).toEqual(['error: Failed to get block stats mon1 ', 'error: Operation not supported: summary statistics are not supported yet [operation-unsupported]']);
    const ifs = await virtplane(env, 'domifstat', 'mon1', 'vnet0');
    expect(ifs.stderr.trim().split('\n')).toEqual(['error: Failed to get interface stats mon1 vnet0', "error: invalid argument: 'vnet0' is not a known interface [invalid-arg]"]);
    const start = await virtplane(env, 'cpu-stats', 'mon1', '--start', '5');
    expect([start.code, start.stderr.trim()]).toEqual([2, 'error: Start CPU 5 is out of range (min: 0, max: 1)']);
    for (const verb of ['dommemstat', 'cpu-stats', 'domstats']) {
      const r = await virtplane(env, verb, 'nosuch');
      expect([verb, r.code, r.stderr.trim()]).toEqual([verb, 1, "error: failed to get domain 'nosuch' [no-domain]"]);
    }
    expect((await virtplane(env, 'domstate', 'mon1')).stdout.trim()).toBe('running');
  });

  it('a host whose agent is down says so, and answers again once it is back', { timeout: 90_000 }, async () => {
    await stack.kill('host-agent');
    const mem = await virtplane(env, 'dommemstat', 'mon1');
    expect([mem.code, ...mem.stderr.trim().split('\n')]).toEqual([
      1,
      'error: Failed to get memory statistics for domain mon1',
      "error: operation failed: host 'host-a' does not answer: its agent is not running [operation-failed]",
    ]);
    expect((await virtplane(env, 'nodememstats')).stderr.trim()).toBe("error: operation failed: host 'host-a' does not answer: its agent is not running [operation-failed]");
    await stack.start('host-agent');
    expect((await virtplane(env, 'nodememstats')).code).toBe(0);
  });

  it("host verbs read the host's memory now", async () => {
    const mem = (await virtplane(env, 'nodememstats')).stdout.split('\n');
    expect(mem.slice(0, 4).map((l) => l.slice(0, 9))).toEqual(['total  : ', 'free   : ', 'buffers: ', 'cached : ']);
    expect(mem[0]).toMatch(/^total  : [ \d]{20} KiB$/);
    const total = (await virtplane(env, 'freecell')).stdout;
    expect(total).toMatch(/^Total: \d+ KiB\n$/);
    const all = (await virtplane(env, 'freecell', '--all')).stdout.split('\n');
    expect(all[0]).toMatch(/^ {4}0: [ \d]{10} KiB$/);
    expect(all.at(-3)).toBe('-'.repeat(20));
    expect(all.at(-2)).toMatch(/^Total: [ \d]{10} KiB$/);
    const bad = await virtplane(env, 'freecell', '--cellno', '999');
    expect(bad.stderr.trim()).toBe('error: invalid argument: Range exceeds available cells [invalid-arg]');
    // capabilities agrees with nodeinfo, and names the test driver's guests.
    const caps = (await virtplane(env, 'capabilities')).stdout;
    const cpus = /^CPU\(s\):\s+(\d+)$/m.exec((await virtplane(env, 'nodeinfo')).stdout)![1];
    expect(caps).toMatch(/^<capabilities>\n\n {2}<host>\n {4}<cpu>\n {6}<arch>x86_64<\/arch>\n/);
    expect(caps).toContain(`<cpus num='${cpus}'>`);
    expect(caps).toContain("      <emulator>/usr/bin/test-hv</emulator>\n      <domain type='test'/>");
    expect(caps.trimEnd().endsWith('</capabilities>')).toBe(true);
    const noHost = await virtplane(env, 'nodememstats', '--host', 'nosuch');
    expect([noHost.code, noHost.stderr.trim()]).toEqual([1, "error: no host with id 'nosuch' has registered [no-host]"]);
    expect((await virtplane(env, 'capabilities', '--host', 'nosuch')).stderr.trim()).toBe("error: no host with id 'nosuch' has registered [no-host]");
    // libvirt's test driver has no domain capabilities to give, and virsh says so in these words.
    const domcaps = await virtplane(env, 'domcapabilities');
    expect([domcaps.code, domcaps.stderr.trim()]).toEqual([
      1,
      'error: failed to get emulator capabilities\nerror: this function is not supported by the connection driver: virConnectGetDomainCapabilities [operation-unsupported]',
    ]);
    expect((await virtplane(env, 'domcapabilities', '--virttype', 'test')).code).toBe(1);
    // Bad input is refused by the host's schema before anything runs.
    expect((await virtplane(env, 'domcapabilities', '--machine', 'pc;reboot')).stderr).toMatch(/\[invalid-arg\]/);
  });
});
