import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, readlink, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LifecycleEvent } from '../contracts/lifecycle.ts';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { processState as processStateOf } from '../drivers/qemu/host.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole, type TinyGuest } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();

/**
 * Real guests through the CLI: a nats-server and services of the test's own, qemu processes, and a
 * tiny kernel+initramfs guest that answers the ACPI power button by powering off.
 */
describe.skipIf(!availability.ok)('real qemu guests through the CLI', () => {
  let stack: Stack;
  let guest: TinyGuest;
  let dir: string;
  const feed: LifecycleEvent[] = [];
  const ac = new AbortController();
  const virtplane = async (...args: string[]) => {
    const { stdout } = await run(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), ...args], {
      env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url },
      timeout: 180_000,
    }).catch((e: { message: string; stderr?: string }) => {
      throw new Error(`${e.message}${e.stderr ?? ''}`);
    });
    return stdout.trim();
  };
  const domainType = availability.kvm ? 'kvm' : 'qemu';
  const qemuDir = (uuid: string) => join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid);
  const qemuPid = async (uuid: string) => Number((await readFile(join(qemuDir(uuid), 'qemu.pid'), 'utf8')).trim());
  const consoleLog = (uuid: string) => join(qemuDir(uuid), 'console.log');
  const state = async (name: string) => {
    const { state: st, reason } = JSON.parse(await virtplane('domstate', name, '--reason', '--json')) as { state: string; reason: string };
    return { state: st, reason };
  };
  const until = async <T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (ok(v) || Date.now() > end) return v;
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  beforeAll(async () => {
    guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-qemu-e2e-'));
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
    void (async () => {
      for await (const e of stack.client.lifecycle({ from: 'all', signal: ac.signal })) feed.push(e);
    })().catch(() => undefined);
  }, 180_000);
  afterAll(async () => {
    ac.abort();
    // Leave no guest behind, whatever happened above.
    for (const v of (await stack?.client.list({ all: false }).catch(() => [])) ?? []) {
      await stack.client.destroy(v.id).then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    }
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('defines from XML, starts, suspends, resumes, reboots, shuts down a cooperating guest, destroys and undefines', async () => {
    const file = join(dir, 'guest.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'e2e-guest', type: domainType }));
    expect(await virtplane('define', file)).toBe(`Domain 'e2e-guest' defined from ${file}`);
    const uuid = JSON.parse(await virtplane('dominfo', 'e2e-guest', '--json')).id as string;

    expect(await virtplane('start', 'e2e-guest', '--timeout', '120')).toBe("Domain 'e2e-guest' started");
    expect(await state('e2e-guest')).toEqual({ state: 'running', reason: 'booted' });
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });

    expect(await virtplane('suspend', 'e2e-guest')).toBe("Domain 'e2e-guest' suspended");
    expect(await state('e2e-guest')).toEqual({ state: 'paused', reason: 'user' });
    expect(await virtplane('resume', 'e2e-guest')).toBe("Domain 'e2e-guest' resumed");
    expect(await state('e2e-guest')).toEqual({ state: 'running', reason: 'unpaused' });

    const pid = await qemuPid(uuid);
    expect(await virtplane('reboot', 'e2e-guest', '--wait')).toBe("Domain 'e2e-guest' is being rebooted");
    await waitForConsole(consoleLog(uuid), READY_MARKER, { count: 2, timeoutMs: 120_000 });
    expect(await qemuPid(uuid)).toBe(pid);
    expect((await state('e2e-guest')).state).toBe('running');

    // The guest itself answers the ACPI power button: this is a real shutdown, not a kill.
    expect(await virtplane('shutdown', 'e2e-guest', '--wait', '--timeout', '120')).toBe("Domain 'e2e-guest' is being shutdown");
    expect(await state('e2e-guest')).toEqual({ state: 'shutoff', reason: 'shutdown' });
    expect(await readFile(consoleLog(uuid), 'utf8')).toMatch(/power/i);

    expect(await virtplane('start', 'e2e-guest', '--timeout', '120')).toBe("Domain 'e2e-guest' started");
    expect(await virtplane('destroy', 'e2e-guest')).toBe("Domain 'e2e-guest' destroyed");
    expect(await state('e2e-guest')).toEqual({ state: 'shutoff', reason: 'destroyed' });
    expect(await virtplane('undefine', 'e2e-guest')).toBe("Domain 'e2e-guest' has been undefined");

    const mine = (await until(async () => feed.filter((e) => e.domainId === uuid), (l) => l.length >= 10)).map((e) => `${e.event}/${e.detail}`);
    expect(mine).toEqual([
      'DEFINED/ADDED',
      'STARTED/BOOTED',
      'SUSPENDED/PAUSED',
      'RESUMED/UNPAUSED',
      'STOPPED/SHUTDOWN',
      'STARTED/BOOTED',
      'STOPPED/DESTROYED',
      'UNDEFINED/REMOVED',
    ]);
  }, 600_000);

  it('resets a guest, saves it and resumes it through the CLI; after managedsave-remove the next start boots afresh', async () => {
    const file = join(dir, 'saver.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'saver', type: domainType }));
    await virtplane('define', file);
    const uuid = JSON.parse(await virtplane('dominfo', 'saver', '--json')).id as string;
    await virtplane('start', 'saver', '--timeout', '120');
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    expect(await virtplane('reset', 'saver')).toBe("Domain 'saver' was reset");
    await waitForConsole(consoleLog(uuid), READY_MARKER, { count: 2, timeoutMs: 120_000 });

    expect(await virtplane('managedsave', 'saver')).toBe("Domain 'saver' state saved by libvirt");
    expect(await state('saver')).toEqual({ state: 'shutoff', reason: 'saved' });
    expect(await virtplane('dominfo', 'saver')).toMatch(/^Managed save: {3}yes$/m);
    expect(await virtplane('start', 'saver', '--timeout', '120')).toBe("Domain 'saver' started");
    expect(await state('saver')).toEqual({ state: 'running', reason: 'restored' });
    expect(await virtplane('dominfo', 'saver')).toMatch(/^Managed save: {3}no$/m);
    // The resumed guest answers the power button it was waiting on, without having booted again.
    expect(await virtplane('shutdown', 'saver', '--wait', '--timeout', '120')).toBe("Domain 'saver' is being shutdown");
    const resumed = await readFile(consoleLog(uuid), 'utf8');
    expect(resumed).toContain('power button pressed');
    expect(resumed).not.toContain(READY_MARKER);

    await virtplane('start', 'saver', '--timeout', '120');
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    await virtplane('managedsave', 'saver');
    expect(await virtplane('managedsave-remove', 'saver')).toBe("Removed managedsave image for domain 'saver'");
    await virtplane('start', 'saver', '--timeout', '120');
    expect(await state('saver')).toEqual({ state: 'running', reason: 'booted' });
    expect(existsSync(join(qemuDir(uuid), 'managed.save'))).toBe(false);
    await virtplane('destroy', 'saver');
    await virtplane('undefine', 'saver');
    const mine = (await until(async () => feed.filter((e) => e.domainId === uuid), (l) => l.length >= 10)).map((e) => `${e.event}/${e.detail}`);
    expect(mine).toEqual([
      'DEFINED/ADDED',
      'STARTED/BOOTED',
      'STOPPED/SAVED',
      'STARTED/RESTORED',
      'STOPPED/SHUTDOWN',
      'STARTED/BOOTED',
      'STOPPED/SAVED',
      'STARTED/BOOTED',
      'STOPPED/DESTROYED',
      'UNDEFINED/REMOVED',
    ]);
  }, 600_000);

  it('hot-plugs a disk the guest sees, refuses its target twice, unplugs it; an agent killed mid-attach attaches it once', async () => {
    const file = join(dir, 'disks.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'disks', type: domainType, extraCmdline: 'vp.blk=1' }));
    await virtplane('define', file);
    const uuid = JSON.parse(await virtplane('dominfo', 'disks', '--json')).id as string;
    const img = join(dir, 'data.img');
    const img2 = join(dir, 'more.img');
    await writeFile(img, Buffer.alloc(8 << 20));
    await writeFile(img2, Buffer.alloc(4 << 20));
    await virtplane('start', 'disks', '--timeout', '120');
    await waitForConsole(consoleLog(uuid), 'virtplane-guest: disks []', { timeoutMs: 120_000 });

    expect(await virtplane('attach-disk', 'disks', img, 'vdb')).toBe('Disk attached successfully');
    // The guest's kernel found it: its first virtio disk.
    await waitForConsole(consoleLog(uuid), 'virtplane-guest: disks [vda ]', { timeoutMs: 60_000 });
    const live = await virtplane('dumpxml', 'disks');
    expect(live).toContain(`<source file='${img}'/>`);
    expect(live).toContain("<target dev='vdb' bus='virtio'/>");
    expect(await virtplane('dumpxml', 'disks', '--inactive')).not.toContain(img);
    const twice = await run(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), 'attach-disk', 'disks', img2, 'vdb'], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url } }).catch((e: { stderr: string }) => e);
    expect((twice as { stderr: string }).stderr.trim().split('\n')).toEqual(['error: Failed to attach disk', 'error: operation failed: target vdb already exists [operation-failed]']);

    expect(await virtplane('detach-disk', 'disks', 'vdb')).toBe('Disk detached successfully');
    await waitForConsole(consoleLog(uuid), 'virtplane-guest: disks []', { count: 2, timeoutMs: 60_000 });
    expect(await virtplane('dumpxml', 'disks')).not.toContain(img);

    // The agent dies right after the attach is asked for: the redelivered task finds what qemu has.
    const accepted = await stack.client.attachDisk('disks', { type: 'file', source: { file: img2 }, target: { dev: 'vdc', bus: 'virtio' } });
    await stack.kill('host-agent', 'SIGKILL');
    await stack.start('host-agent');
    const after = await stack.client.outcome(accepted, 120_000);
    expect(after.definition.devices.disks.map((d) => d.target.dev)).toEqual(['vdc']);
    expect(after.lastError).toBeNull();
    await waitForConsole(consoleLog(uuid), 'virtplane-guest: disks [vda ]', { count: 2, timeoutMs: 60_000 });
    const text = await readFile(consoleLog(uuid), 'utf8');
    expect(text).not.toContain('virtplane-guest: disks [vda vdb ]');
    expect(await virtplane('detach-disk', 'disks', img2)).toBe('Disk detached successfully');
    await waitForConsole(consoleLog(uuid), 'virtplane-guest: disks []', { count: 3, timeoutMs: 60_000 });
    await virtplane('destroy', 'disks');
    await virtplane('undefine', 'disks');
  }, 600_000);

  it("changes a running guest's cdrom media: insert, update, eject", async () => {
    const file = join(dir, 'media.xml');
    const cdrom = "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>";
    await writeFile(file, tinyGuestXml(guest, { name: 'media', type: domainType, devicesXml: cdrom }));
    await virtplane('define', file);
    const uuid = JSON.parse(await virtplane('dominfo', 'media', '--json')).id as string;
    const iso1 = join(dir, 'one.iso');
    const iso2 = join(dir, 'two.iso');
    await writeFile(iso1, Buffer.alloc(1 << 20));
    await writeFile(iso2, Buffer.alloc(1 << 20));
    await virtplane('start', 'media', '--timeout', '120');
    // What qemu holds open is what the drive has in it.
    const open = async () => {
      const pid = await qemuPid(uuid);
      const fds = await readdir(`/proc/${pid}/fd`);
      const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
      return targets.filter((t) => t === iso1 || t === iso2);
    };
    expect(await open()).toEqual([]);
    expect(await virtplane('change-media', 'media', 'hdc', iso1, '--insert')).toBe('Successfully inserted media.');
    expect(await open()).toEqual([iso1]);
    expect(await virtplane('dumpxml', 'media')).toContain(`<source file='${iso1}'/>`);
    expect(await virtplane('change-media', 'media', iso1, iso2, '--update')).toBe('Successfully updated media.');
    expect(await open()).toEqual([iso2]);
    expect(await virtplane('change-media', 'media', 'hdc', '--eject')).toBe('Successfully ejected media.');
    expect(await open()).toEqual([]);
    expect(await virtplane('dumpxml', 'media')).not.toContain('.iso');
    await virtplane('destroy', 'media');
    await virtplane('undefine', 'media');
  }, 300_000);
  /** The guest's /proc/uptime, read through its serial console's shell. */
  const guestUptime = async (name: string): Promise<number> => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), 'console', name], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      const end = Date.now() + 60_000;
      let m: RegExpMatchArray | null = null;
      while (!(m = /UP=(\d+\.\d+)/.exec(out)) && Date.now() < end) {
        child.stdin.write('echo UP=$(cut -d" " -f1 /proc/uptime)\r');
        await new Promise((r) => setTimeout(r, 1000));
      }
      if (!m) throw new Error(`no uptime on the console of ${name}: ${out}`);
      return Number(m[1]);
    } finally {
      child.stdin.write('\x1d');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill();
    }
  };

  it('save writes the guest to a file on its host and restore carries it on from there: its uptime goes on, it does not boot again', async () => {
    const file = join(dir, 'keeper.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'keeper', type: domainType }));
    await virtplane('define', file);
    const uuid = JSON.parse(await virtplane('dominfo', 'keeper', '--json')).id as string;
    await virtplane('start', 'keeper', '--timeout', '120');
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    const image = join(stack.dataDir, 'hosts', stack.hostId, 'save', 'keeper.sav');
    const before = await guestUptime('keeper');

    expect(await virtplane('save', 'keeper', image)).toBe(`Domain 'keeper' saved to ${image}`);
    expect(await state('keeper')).toEqual({ state: 'shutoff', reason: 'saved' });
    expect(await virtplane('dominfo', 'keeper')).toMatch(/^Managed save: {3}no$/m);
    expect(await virtplane('save-image-dumpxml', image)).toMatch(/<name>keeper<\/name>/);
    // Time passes while it is saved; a guest booted afresh would count from zero.
    await new Promise((r) => setTimeout(r, 3000));
    const bootedBefore = (await readFile(consoleLog(uuid), 'utf8')).split(READY_MARKER).length - 1;
    expect(await virtplane('restore', image, '--timeout', '120')).toBe(`Domain restored from ${image}`);
    expect(await state('keeper')).toEqual({ state: 'running', reason: 'restored' });
    const after = await guestUptime('keeper');
    expect(after).toBeGreaterThan(before);
    expect(existsSync(image)).toBe(true);
    expect(await readFile(consoleLog(uuid), 'utf8')).not.toContain(READY_MARKER);
    expect(bootedBefore).toBeGreaterThanOrEqual(1);

    // Saved again and undefined: restore brings it back transient, paused when asked.
    await virtplane('save', 'keeper', image);
    await virtplane('undefine', 'keeper');
    expect(await virtplane('restore', image, '--paused', '--timeout', '120')).toBe(`Domain restored from ${image}`);
    expect(await state('keeper')).toEqual({ state: 'paused', reason: 'user' });
    expect(await virtplane('list', '--transient', '--name')).toMatch(/^keeper$/m);
    await virtplane('resume', 'keeper');
    expect(await guestUptime('keeper')).toBeGreaterThan(after);
    const refused = await run(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), 'restore', image], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url } }).catch((e: { stderr: string }) => e);
    expect((refused as { stderr: string }).stderr).toContain("error: Requested operation is not valid: domain 'keeper' is already active");
    await virtplane('destroy', 'keeper');
    const mine = (await until(async () => feed.filter((e) => e.domainId === uuid), (l) => l.length >= 9)).map((e) => `${e.event}/${e.detail}`);
    expect(mine).toEqual([
      'DEFINED/ADDED',
      'STARTED/BOOTED',
      'STOPPED/SAVED',
      'STARTED/RESTORED',
      'STOPPED/SAVED',
      'UNDEFINED/REMOVED',
      // Transient again: only its start is told, as for create.
      'STARTED/RESTORED',
      'SUSPENDED/PAUSED',
      'RESUMED/UNPAUSED',
      'STOPPED/DESTROYED',
    ]);
  }, 600_000);

  it('an agent killed with SIGKILL in the middle of a save saves the guest once it is back: one image, whole, and the guest carries on from it', async () => {
    const file = join(dir, 'halfway.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'halfway', type: domainType }));
    await virtplane('define', file);
    const uuid = JSON.parse(await virtplane('dominfo', 'halfway', '--json')).id as string;
    await virtplane('start', 'halfway', '--timeout', '120');
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    const before = await guestUptime('halfway');
    const saveDir = join(stack.dataDir, 'hosts', stack.hostId, 'save');
    const image = join(saveDir, 'halfway.sav');
    const part = join(saveDir, '.halfway.sav.part');
    const pid = await qemuPid(uuid);
    const accepted = await stack.client.save('halfway', image, { timeoutSeconds: 240 });
    // The state is on its way into the partial file when the agent dies.
    await until(async () => existsSync(part), (v) => v, 60_000);
    await stack.kill('host-agent', 'SIGKILL');
    expect(existsSync(image)).toBe(false);
    await stack.start('host-agent');
    const v = await stack.client.outcome(accepted, 240_000);
    expect(v.observed).toEqual({ state: 'shutoff', reason: 'saved' });
    expect(existsSync(part)).toBe(false);
    expect(existsSync(image)).toBe(true);
    // The guest was stopped by the first attempt; the image still says it ran, so restore runs it.
    expect(await until(() => processStateOf(pid), (s) => s !== 'alive', 10_000)).not.toBe('alive');
    expect(await virtplane('restore', image, '--timeout', '120')).toBe(`Domain restored from ${image}`);
    expect(await state('halfway')).toEqual({ state: 'running', reason: 'restored' });
    expect(await guestUptime('halfway')).toBeGreaterThan(before);
    expect(await readFile(consoleLog(uuid), 'utf8')).not.toContain(READY_MARKER);
    await virtplane('destroy', 'halfway');
    await virtplane('undefine', 'halfway');
  }, 600_000);

  it('reattaches after the agent is killed with SIGKILL, starting nothing twice', async () => {
    const file = join(dir, 'survivor.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'survivor', type: domainType }));
    await virtplane('define', file);
    const uuid = JSON.parse(await virtplane('dominfo', 'survivor', '--json')).id as string;
    await virtplane('start', 'survivor', '--timeout', '120');
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    const pid = await qemuPid(uuid);

    await stack.kill('host-agent', 'SIGKILL');
    process.kill(pid, 0); // the guest outlives its agent
    // A start sent while the agent is dead must not launch a second qemu when the agent returns.
    const late = await stack.client.start('survivor').catch((e: { code: string }) => e);
    expect((late as { code?: string }).code).toBe('operation-invalid');
    await stack.start('host-agent');

    expect(await qemuPid(uuid)).toBe(pid);
    expect(await state('survivor')).toEqual({ state: 'running', reason: 'booted' });
    const console1 = await readFile(consoleLog(uuid), 'utf8');
    expect(console1.split(READY_MARKER).length - 1).toBe(1);
    // The reattached guest is fully controllable.
    expect(await virtplane('suspend', 'survivor')).toBe("Domain 'survivor' suspended");
    expect(await virtplane('resume', 'survivor')).toBe("Domain 'survivor' resumed");
  }, 600_000);

  it('reports a qemu killed from outside as crashed', async () => {
    const uuid = JSON.parse(await virtplane('dominfo', 'survivor', '--json')).id as string;
    const pid = await qemuPid(uuid);
    process.kill(pid, 'SIGKILL');
    const s = await until(() => state('survivor'), (v) => v.state === 'shutoff', 60_000);
    expect(s).toEqual({ state: 'shutoff', reason: 'crashed' });
    const last = await until(async () => feed.filter((e) => e.domainId === uuid).at(-1), (e) => e?.event === 'STOPPED', 10_000);
    expect(`${last?.event}/${last?.detail}`).toBe('STOPPED/CRASHED');
    await virtplane('undefine', 'survivor');
  }, 300_000);
});
