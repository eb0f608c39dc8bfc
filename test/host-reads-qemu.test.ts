import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import { buildTinyGuest, tinyGuestXml, type TinyGuest } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();

/** The CPUs of a sysfs or /proc list such as `0-3,5`. */
const cpuList = (s: string) =>
  s
    .trim()
    .split(',')
    .filter(Boolean)
    .flatMap((r) => {
      const [a, b] = r.split('-').map(Number);
      return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i);
    });

/** The `cpu ` (or `cpuN `) line of /proc/stat as virsh nodecpustats prints it, in ns. */
const procStat = async (cpu = '') => {
  const f = (await readFile('/proc/stat', 'utf8')).split('\n').find((l) => l.startsWith(`cpu${cpu} `))!.trim().split(/\s+/).slice(1).map(Number);
  return { user: (f[0]! + f[1]!) * 1e7, system: (f[2]! + f[5]! + f[6]!) * 1e7, idle: f[3]! * 1e7, iowait: f[4]! * 1e7 };
};

/**
 * The host reading verbs on a qemu host with a running guest: its vCPU threads found through QMP and
 * read in /proc, the host's /proc/stat and sysfs, qemu's vCPU limit, and libvirt's words where the
 * guest or the host has nothing to give.
 */
describe.skipIf(!availability.ok)('host reading verbs on a qemu host', () => {
  let stack: Stack;
  let guest: TinyGuest;
  let dir: string;
  let uuid: string;
  const virtplane = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url }, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };
  /** The guest's vCPU threads by index, named `CPU <n>/KVM` or `CPU <n>/TCG` (debug-threads=on). */
  const vcpuThreads = async (): Promise<Map<number, number>> => {
    const pid = Number((await readFile(join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'qemu.pid'), 'utf8')).trim());
    const out = new Map<number, number>();
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const m = /^CPU (\d+)\//.exec(await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8'));
      if (m) out.set(Number(m[1]), Number(tid));
    }
    return out;
  };

  beforeAll(async () => {
    guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-hostreads-qemu-'));
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
    const xml = join(dir, 'hr.xml');
    await writeFile(xml, tinyGuestXml(guest, { name: 'hr-q', type: availability.kvm ? 'kvm' : 'qemu', memoryMiB: 64, vcpus: { max: 3, current: 2 } }));
    expect((await virtplane('define', xml)).code).toBe(0);
    uuid = (await virtplane('domuuid', 'hr-q')).stdout.trim();
    expect((await virtplane('start', 'hr-q', '--timeout', '120')).code).toBe(0);
  }, 240_000);
  afterAll(async () => {
    await stack?.client.destroy('hr-q').then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("vcpuinfo reads each online vCPU's thread: the CPU it ran on, its time, its affinity as the kernel has it", { timeout: 60_000 }, async () => {
    const present = cpuList(await readFile('/sys/devices/system/cpu/present', 'utf8')).at(-1)! + 1;
    const threads = await vcpuThreads();
    expect([...threads.keys()].sort()).toEqual([0, 1]);
    // One vCPU held to CPU 0 from outside, as taskset or a pinning would: vcpuinfo shows what the kernel enforces.
    await run('taskset', ['-p', '-c', '0', String(threads.get(1))]);
    const out = (await virtplane('vcpuinfo', 'hr-q')).stdout.trimEnd().split('\n\n');
    expect(out).toHaveLength(2);
    const all = 'y'.repeat(present);
    for (const [i, block] of out.entries()) {
      const lines = block.split('\n');
      expect(lines[0]).toBe(`VCPU:           ${i}`);
      expect(Number(/^CPU: {12}(\d+)$/.exec(lines[1]!)![1])).toBeLessThan(present);
      expect(lines[2]).toBe('State:          running');
      // A vCPU whose thread has not yet run a tick has no time, and virsh leaves the line out.
      if (i === 0 || lines.length === 5) expect(lines[3]).toMatch(/^CPU time: {7}\d+\.\ds$/);
      expect(lines.at(-1)).toBe(`CPU Affinity:   ${i === 1 ? `y${'-'.repeat(present - 1)}` : all}`);
    }
    const pretty = (await virtplane('vcpuinfo', 'hr-q', '--pretty')).stdout;
    expect(pretty).toContain(`CPU Affinity:   0 (out of ${present})`);
    expect(pretty).toContain(`CPU Affinity:   ${present === 1 ? '0' : `0-${present - 1}`} (out of ${present})`);
  });

  it('domtime: no guest agent, in libvirt words; maxvcpus: the vCPU limit of the domain capabilities', { timeout: 60_000 }, async () => {
    const t = await virtplane('domtime', 'hr-q');
    expect([t.code, t.stderr.trim()]).toEqual([1, 'error: argument unsupported: QEMU guest agent is not configured [argument-unsupported]']);
    const caps = (await virtplane('domcapabilities')).stdout;
    const max = /<vcpu max='(\d+)'\/>/.exec(caps)![1];
    expect(await virtplane('maxvcpus')).toMatchObject({ code: 0, stdout: `${max}\n` });
    expect((await virtplane('maxvcpus', '--type', 'qemu')).stdout).toMatch(/^\d+\n$/);
    const xen = await virtplane('maxvcpus', '--type', 'xen');
    expect([xen.code, xen.stderr.trim()]).toEqual([1, "error: invalid argument: unknown type 'xen' [invalid-arg]"]);
  });

  it("nodecpustats and nodecpumap read the host's /proc/stat and sysfs; a CPU it lacks is libvirt's error", { timeout: 60_000 }, async () => {
    const before = await procStat();
    const lines = (await virtplane('nodecpustats')).stdout.trimEnd().split('\n');
    const after = await procStat();
    expect(lines.map((l) => l.slice(0, 16))).toEqual(['user:           ', 'system:         ', 'idle:           ', 'iowait:         ']);
    for (const [i, k] of (['user', 'system', 'idle', 'iowait'] as const).entries()) {
      expect(lines[i]).toHaveLength(36);
      const v = Number(lines[i]!.slice(16));
      expect(v).toBeGreaterThanOrEqual(before[k]);
      expect(v).toBeLessThanOrEqual(after[k]);
    }
    expect(Number((await virtplane('nodecpustats', '--cpu', '0')).stdout.split('\n')[2]!.slice(16))).toBeGreaterThanOrEqual((await procStat('0')).idle - 1e10);
    const none = await virtplane('nodecpustats', '--cpu', '99999');
    expect([none.code, none.stderr.trim()]).toEqual([1, 'error: Unable to get node cpu stats\nerror: Invalid cpuNum in virHostCPUGetStatsLinux [invalid-arg]']);
    const pct = (await virtplane('nodecpustats', '--percent')).stdout.trimEnd().split('\n');
    expect(pct.map((l) => l.slice(0, 16))).toEqual(['usage:          ', 'user:           ', 'system:         ', 'idle:           ', 'iowait:         ']);
    const shares = pct.map((l) => Number(/^\S+ +([\d.]+)%$/.exec(l)![1]));
    expect(Math.abs(shares.slice(1).reduce((a, b) => a + b, 0) - 100)).toBeLessThan(0.5);
    expect(Math.abs(shares[0]! - shares[1]! - shares[2]!)).toBeLessThan(0.2);

    const present = cpuList(await readFile('/sys/devices/system/cpu/present', 'utf8')).at(-1)! + 1;
    const online = cpuList(await readFile('/sys/devices/system/cpu/online', 'utf8'));
    const map = Array.from({ length: present }, (_, i) => (online.includes(i) ? 'y' : '-')).join('');
    expect((await virtplane('nodecpumap')).stdout).toBe(`CPUs present:   ${present}\nCPUs online:    ${online.length}\nCPU map:        ${map}\n`);
    expect((await virtplane('nodecpumap', '--pretty')).stdout).toMatch(new RegExp(`^CPU map: {8}${online.length > 1 ? `0-${online.length - 1}` : '0'}$`, 'm'));
  });

  it("sysinfo gives the host's SMBIOS, or libvirt's words on a machine without one", { timeout: 60_000 }, async () => {
    const r = await virtplane('sysinfo');
    const vendor = existsSync('/sys/class/dmi/id/bios_vendor') ? (await readFile('/sys/class/dmi/id/bios_vendor', 'utf8')).trim() : '';
    if (vendor) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^<sysinfo type='smbios'>\n {2}<bios>\n {4}<entry name='vendor'>/);
      expect(r.stdout.trimEnd().endsWith('</sysinfo>')).toBe(true);
    } else {
      expect([r.code, r.stderr.trim()]).toEqual([1, 'error: failed to get sysinfo\nerror: internal error: Host SMBIOS information is not available [internal-error]']);
    }
  });

  it('a host that is not there, a wildcard for a host, a host whose agent is down: clear errors', { timeout: 90_000 }, async () => {
    for (const host of ['nosuch', '*', '>', 'a.b']) {
      const r = await virtplane('nodecpumap', '--host', host);
      expect([r.code, r.stderr.trim()]).toEqual([1, `error: no host with id '${host}' has registered [no-host]`]);
    }
    expect((await virtplane('vcpuinfo', '*')).stderr.trim()).toBe("error: failed to get domain '*' [no-domain]");
    const bad = await virtplane('nodecpustats', '--cpu', '-2');
    expect([bad.code, bad.stderr.trim()]).toEqual([1, 'error: Unable to get number of cpu stats\nerror: cpuNum in virNodeGetCPUStats only accepts -1 as a negative value [invalid-arg]']);
    await stack.kill('host-agent');
    const down = "error: operation failed: host 'host-a' does not answer: its agent is not running [operation-failed]";
    expect((await virtplane('maxvcpus')).stderr.trim()).toBe(down);
    expect((await virtplane('vcpuinfo', 'hr-q')).stderr.trim()).toBe(down);
    // Named: a host that stopped renewing its lease is soon no longer the default one.
    expect((await virtplane('nodecpumap', '--host', 'host-a')).stderr.trim()).toBe(`error: Unable to get cpu map\n${down}`);
    await stack.start('host-agent');
    expect((await virtplane('vcpuinfo', 'hr-q')).code).toBe(0);
  });
});
