import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole, type TinyGuest } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();
const MAC = '52:54:00:4d:51:01';

/**
 * The monitoring verbs and setmem on a real guest: numbers read from QMP and /proc by the host
 * agent, and a balloon the guest's own driver inflates (it reports its MemTotal on the console).
 */
describe.skipIf(!availability.ok)('monitoring and setmem on a running qemu guest', () => {
  let stack: Stack;
  let guest: TinyGuest;
  let dir: string;
  let disk: string;
  let uuid: string;
  const virtplane = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url }, timeout: 180_000 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };
  const consoleLog = () => join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'console.log');
  /** The guest's MemTotal in kB, as it last reported it. */
  /** The guest's CPUs present and online (kernel cpu lists such as `0-1`), as it last reported them. */
  const cpus = async () => {
    const m = [...(await readFile(consoleLog(), 'utf8')).matchAll(/virtplane-guest: cpus present=(\S+) online=(\S+)/g)].at(-1);
    return m ? { present: m[1], online: m[2] } : null;
  };
  const untilCpus = async (want: { present: string; online: string }) => {
    const end = Date.now() + 60_000;
    while (Date.now() < end && JSON.stringify(await cpus()) !== JSON.stringify(want)) await new Promise((r) => setTimeout(r, 500));
    return cpus();
  };
  const memTotal = async () => Number([...(await readFile(consoleLog(), 'utf8')).matchAll(/virtplane-guest: MemTotal: (\d+) kB/g)].at(-1)?.[1] ?? NaN);

  beforeAll(async () => {
    guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-monitor-qemu-'));
    disk = join(dir, 'disk.raw');
    await writeFile(disk, '');
    await truncate(disk, 16 * 1024 * 1024);
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
    const xml = join(dir, 'mon.xml');
    await writeFile(
      xml,
      tinyGuestXml(guest, {
        name: 'mon-q',
        type: availability.kvm ? 'kvm' : 'qemu',
        memoryMiB: 128,
        balloon: true,
        vcpus: { max: 3, current: 1 },
        // vp.dhcp=1: the guest asks for an address on its NIC, so its tap counts what it sent;
        // vp.cpus=1: it onlines hot-plugged CPUs and reports the CPUs it has.
        extraCmdline: 'vp.balloon=1 vp.dhcp=1 vp.cpus=1',
        devicesXml: `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <interface type='ethernet'><mac address='${MAC}'/><model type='virtio'/></interface>`,
      }),
    );
    expect((await virtplane('define', xml)).code).toBe(0);
    uuid = (await virtplane('domuuid', 'mon-q')).stdout.trim();
    expect((await virtplane('start', 'mon-q', '--timeout', '120')).code).toBe(0);
    await waitForConsole(consoleLog(), READY_MARKER, { timeoutMs: 120_000 });
    await waitForConsole(consoleLog(), 'virtplane-guest: MemTotal', { timeoutMs: 30_000 });
  }, 240_000);
  afterAll(async () => {
    await stack?.client.destroy('mon-q').then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("reads the guest's disks, memory and CPU from QMP and /proc", { timeout: 120_000 }, async () => {
    expect((await virtplane('domblklist', 'mon-q')).stdout).toBe(` Target   Source\n${'-'.repeat(6 + 3 + disk.length + 3)}\n vda      ${disk}\n`);
    // A sparse 16 MiB image: its full size, the blocks it really holds, its file size.
    expect((await virtplane('domblkinfo', 'mon-q', 'vda')).stdout).toMatch(/^Capacity: {7}16777216\nAllocation: {5}\d+\nPhysical: {7}16777216\n$/);
    const stat = (await virtplane('domblkstat', 'mon-q', 'vda')).stdout.trim().split('\n');
    expect(stat.map((l) => l.split(' ')[1])).toEqual(['rd_req', 'rd_bytes', 'wr_req', 'wr_bytes', 'flush_operations', 'rd_total_times', 'wr_total_times', 'flush_total_times']);
    for (const l of stat) expect(l).toMatch(/^vda \S+ \d+$/);
    const mem = (await virtplane('dommemstat', 'mon-q')).stdout.trim().split('\n');
    expect(mem[0]).toBe('actual 131072');
    expect(mem.at(-1)).toMatch(/^rss \d+$/);
    const cpu = (await virtplane('cpu-stats', 'mon-q')).stdout.split('\n');
    expect(cpu[0]).toBe('Total:');
    expect(cpu[1]).toMatch(/^\tcpu_time {4}\s*\d+\.\d{9} seconds$/);
    expect(Number(cpu[1]!.split(/\s+/)[2])).toBeGreaterThan(0);
    const stats = Object.fromEntries(
      (await virtplane('domstats', 'mon-q')).stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split('=')),
    );
    expect(stats).toMatchObject({ 'state.state': '1', 'state.reason': '1', 'balloon.current': '131072', 'balloon.maximum': '131072', 'vcpu.current': '1', 'vcpu.maximum': '3', 'net.count': '1', 'block.count': '1', 'block.0.name': 'vda', 'block.0.path': disk, 'block.0.capacity': '16777216' });
    expect(Number(stats['cpu.time'])).toBeGreaterThan(0);
    expect(Number(stats['vcpu.0.time'])).toBeGreaterThan(0);
    // The host's qemu, probed when asked.
    const caps = await virtplane('domcapabilities');
    expect(caps.code).toBe(0);
    expect(caps.stdout).toMatch(new RegExp(`<domain>${availability.kvm ? 'kvm' : 'qemu'}</domain>\n  <machine>pc-i440fx-`));
  });

  it("counts the guest's traffic on its tap, seen from the guest", { timeout: 120_000 }, async () => {
    const tap = (await virtplane('domiflist', 'mon-q')).stdout.trim().split('\n')[2]!.trim().split(/\s+/)[0]!;
    expect(tap).toMatch(/^vnet\d+$/);
    // What the guest sent (its DHCP requests) is what the host's tap received: tx from the guest's side.
    const end = Date.now() + 60_000;
    let lines: string[] = [];
    while (Date.now() < end) {
      lines = (await virtplane('domifstat', 'mon-q', tap)).stdout.trim().split('\n');
      if (Number(lines[5]?.split(' ')[2]) > 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(lines.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['rx_bytes', 'rx_packets', 'rx_errs', 'rx_drop', 'tx_bytes', 'tx_packets', 'tx_errs', 'tx_drop'].map((k) => `${tap} ${k}`));
    const sent = Number(lines[5]!.split(' ')[2]);
    expect(sent).toBeGreaterThan(0);
    const hostRx = Number((await readFile(`/sys/class/net/${tap}/statistics/rx_packets`, 'utf8')).trim());
    expect(hostRx).toBeGreaterThanOrEqual(sent);
    expect((await virtplane('domifstat', 'mon-q', MAC)).stdout).toMatch(new RegExp(`^${MAC} rx_bytes \\d+\n`));
  });

  it('setmem --live inflates the balloon, and the guest sees less memory', { timeout: 120_000 }, async () => {
    const before = await memTotal();
    expect(before).toBeGreaterThan(90_000);
    expect(await virtplane('setmem', 'mon-q', '96M', '--live')).toMatchObject({ code: 0, stdout: '\n' });
    // The guest's driver gives the pages back over the next moments.
    const end = Date.now() + 60_000;
    let actual = '';
    while (Date.now() < end) {
      actual = (await virtplane('dommemstat', 'mon-q')).stdout.split('\n')[0]!;
      if (actual === 'actual 98304' && (await memTotal()) <= before - 30_000) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(actual).toBe('actual 98304');
    expect(await memTotal()).toBeLessThanOrEqual(before - 30_000);
    expect((await virtplane('dominfo', 'mon-q')).stdout).toMatch(/^Used memory: {4}98304 KiB$/m);
    // Live only: the next boot keeps its memory.
    expect((await virtplane('dumpxml', 'mon-q', '--inactive')).stdout).not.toMatch(/<currentMemory unit='KiB'>98304</);

    const over = await virtplane('setmem', 'mon-q', '256M', '--live');
    expect([over.code, over.stderr.trim()]).toEqual([1, 'error: invalid argument: cannot set memory higher than max memory [invalid-arg]']);
  });

  it('an agent killed with SIGKILL in the middle of setvcpus --live: the guest runs on with the vCPUs it got, plugged once', { timeout: 180_000 }, async () => {
    const pid = Number((await readFile(join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'qemu.pid'), 'utf8')).trim());
    expect(await untilCpus({ present: '0', online: '0' })).toEqual({ present: '0', online: '0' });
    const asked = virtplane('setvcpus', 'mon-q', '3', '--live');
    // The agent dies as soon as the guest sees a plugged CPU: before, or just after, it reports.
    const end = Date.now() + 60_000;
    while (Date.now() < end && (await cpus())?.present === '0') await new Promise((r) => setTimeout(r, 20));
    await stack.kill('host-agent', 'SIGKILL');
    process.kill(pid, 0); // the guest outlives its agent
    await stack.start('host-agent');
    expect((await asked).code).toBe(0);
    expect(await untilCpus({ present: '0-2', online: '0-2' })).toEqual({ present: '0-2', online: '0-2' });
    process.kill(pid, 0);
    const counts = (await virtplane('vcpucount', 'mon-q')).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    expect(counts).toEqual(['maximum config 3', 'maximum live 3', 'current config 1', 'current live 3']);
    expect((await virtplane('dominfo', 'mon-q')).stdout).toMatch(/^CPU\(s\): {9}3$/m);
  });

  it('setvcpus --live unplugs the vCPUs added while it ran; under TCG none is plugged after that until a restart (qemu 7.2 would crash)', { timeout: 180_000 }, async () => {
    const pid = Number((await readFile(join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'qemu.pid'), 'utf8')).trim());
    // Down: the guest lets go of the CPUs added while it ran.
    expect(await virtplane('setvcpus', 'mon-q', '2', '--live')).toMatchObject({ code: 0 });
    expect(await untilCpus({ present: '0-1', online: '0-1' })).toEqual({ present: '0-1', online: '0-1' });
    expect((await virtplane('vcpucount', 'mon-q', '--live', '--active')).stdout.trim()).toBe('2');
    const over = await virtplane('setvcpus', 'mon-q', '4', '--live');
    expect([over.code, over.stderr.trim()]).toEqual([1, 'error: invalid argument: requested cpu amount exceeds maximum (4 > 3) [invalid-arg]']);
    expect((await virtplane('setvcpus', 'mon-q', '3', '--maximum', '--live')).stderr).toMatch(/Option --config is required by option --maximum/);
    expect((await virtplane('vcpucount', 'mon-q', '--live', '--active')).stdout.trim()).toBe('2');
    expect(await virtplane('setvcpus', 'mon-q', '1', '--live')).toMatchObject({ code: 0 });
    expect(await untilCpus({ present: '0', online: '0' })).toEqual({ present: '0', online: '0' });
    if (!availability.kvm) {
      const again = await virtplane('setvcpus', 'mon-q', '2', '--live');
      expect([again.code, again.stderr.trim()]).toEqual([
        1,
        'error: unsupported configuration: qemu with TCG cannot plug a vCPU into a guest that had one unplugged while it runs: at most 1 vCPUs until the guest restarts [config-unsupported]',
      ]);
      expect((await virtplane('domstate', 'mon-q')).stdout.trim()).toBe('running');
    }
    process.kill(pid, 0);
    // Live only: the next boot keeps one vCPU online of three.
    expect((await virtplane('dumpxml', 'mon-q', '--inactive')).stdout).toMatch(/<vcpu (current='1' placement='static'|placement='static' current='1')>3<\/vcpu>/);
  });
});
