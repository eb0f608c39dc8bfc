import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import { parseDomainXml } from '../../contracts/xml/index.ts';
import {
  buildTinyGuest,
  READY_MARKER,
  tinyGuestXml,
  waitForConsole,
  type TinyGuest,
  type TinyGuestDomainOptions,
} from '../../test/fixtures/guest/build.ts';
import type { DomainObservation } from '../hypervisor.ts';
import { QemuDriver } from './driver.ts';
import { processState, qemuAvailable } from './host.ts';
import { readImageHeader } from '../save-image.ts';

/** Real qemu processes and a real guest kernel; TCG on hosts where KVM does not run guests. */

const avail = await qemuAvailable();
const BOOT_MS = 120_000;

describe.skipIf(!avail.ok)('QemuDriver with a real guest', () => {
  let guest: TinyGuest;
  let stateDir: string;
  const drivers: QemuDriver[] = [];
  const pids = new Set<number>();

  const newDriver = () => {
    const d = new QemuDriver({ stateDir, destroyGraceMs: 3000 });
    drivers.push(d);
    return d;
  };

  const def = (o: Omit<TinyGuestDomainOptions, 'type'>): DomainDefinition =>
    parseDomainXml(tinyGuestXml(guest, { type: avail.kvm ? 'kvm' : 'qemu', ...o }));

  const track = (driver: QemuDriver, uuid: string) => {
    const pid = driver.pid(uuid);
    if (pid) pids.add(pid);
    return pid;
  };

  /** qemu processes on this host whose command line names the domain. */
  const qemuProcessesFor = (uuid: string): number[] => {
    const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
    return out
      .split('\n')
      .filter((l) => l.includes('qemu-system') && l.includes(`-uuid ${uuid}`))
      .map((l) => Number.parseInt(l.trim(), 10));
  };

  const observations = (driver: QemuDriver) => {
    const seen: DomainObservation[] = [];
    driver.onObservation((o) => seen.push(o));
    const next = async (uuid: string, pred: (o: DomainObservation) => boolean, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const o = seen.find((x) => x.uuid === uuid && pred(x));
        if (o) return o;
        if (Date.now() > deadline) throw new Error(`no matching observation for ${uuid}: ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    return { seen, next };
  };

  beforeAll(async () => {
    guest = await buildTinyGuest();
    stateDir = await mkdtemp(join(tmpdir(), 'vp-qemu-'));
  }, BOOT_MS);

  // Each test starts from a host with no guests, whatever the previous one left behind.
  afterEach(async () => {
    const sweeper = new QemuDriver({ stateDir, destroyGraceMs: 3000 });
    for (const x of await sweeper.list()) await sweeper.destroy(x.uuid);
    await sweeper.close();
  }, BOOT_MS);

  afterAll(async () => {
    for (const d of drivers) await d.close();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await rm(stateDir, { recursive: true, force: true });
  });

  it('reports what it can run', async () => {
    const caps = await newDriver().capabilities();
    expect(caps.driver).toBe('qemu');
    expect(caps.domainTypes).toContain('qemu');
    expect(caps.features.accel).toBe(avail.kvm ? 'kvm' : 'tcg');
    expect(caps.cpus).toBeGreaterThan(0);
  });

  it(
    'starts, suspends, resumes, reboots and shuts a cooperating guest down through ACPI',
    async () => {
      const driver = newDriver();
      const { seen } = observations(driver);
      const d = def({ name: 'life' });
      const progress: string[] = [];
      expect(await driver.start(d, { progress: (m) => progress.push(m) })).toEqual({ state: 'running', reason: 'booted' });
      const pid = track(driver, d.uuid)!;
      expect(progress.some((m) => m.startsWith('launching qemu'))).toBe(true);
      const dir = join(stateDir, 'qemu', d.uuid);
      for (const f of ['domain.json', 'qemu.pid', 'qmp.sock', 'console.log', 'qemu.log', 'master-key.aes']) {
        expect(existsSync(join(dir, f)), f).toBe(true);
      }
      expect(Number((await readFile(join(dir, 'qemu.pid'), 'utf8')).trim())).toBe(pid);
      expect(driver.console(d.uuid)?.pty).toMatch(/^\/dev\/pts\/\d+$/);
      await waitForConsole(join(dir, 'console.log'), READY_MARKER, { timeoutMs: BOOT_MS });

      // A redelivered start must not launch a second qemu.
      expect(await driver.start(d)).toEqual({ state: 'running', reason: 'booted' });
      expect(driver.pid(d.uuid)).toBe(pid);
      expect(qemuProcessesFor(d.uuid)).toEqual([pid]);
      expect(await driver.list()).toEqual([{ uuid: d.uuid, name: 'life', state: 'running', reason: 'booted' }]);

      expect(await driver.suspend(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
      expect(await driver.state(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
      expect(await driver.suspend(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
      expect(await driver.resume(d.uuid)).toEqual({ state: 'running', reason: 'unpaused' });
      expect(await driver.resume(d.uuid)).toEqual({ state: 'running', reason: 'unpaused' });

      expect(await driver.reboot(d)).toEqual({ state: 'running', reason: 'booted' });
      // The guest really went through a second boot.
      await waitForConsole(join(dir, 'console.log'), READY_MARKER, { count: 2, timeoutMs: BOOT_MS });
      expect(driver.pid(d.uuid)).toBe(pid);

      const signal = AbortSignal.timeout(BOOT_MS);
      expect(await driver.shutdown(d, { signal })).toEqual({ state: 'shutoff', reason: 'shutdown' });
      expect(await readFile(join(dir, 'console.log'), 'utf8')).toContain('power button pressed');
      expect(await processState(pid)).not.toBe('alive');
      expect(await driver.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'shutdown' });
      expect(await driver.list()).toEqual([]);
      // Runtime files go, logs stay for post-mortems.
      expect((await readdir(dir)).sort()).toEqual(['console.log', 'qemu.log']);
      expect(await readFile(join(dir, 'qemu.log'), 'utf8')).toContain('reason=shutdown');
      // Shutting down what is already off reports it off.
      expect(await driver.shutdown(d)).toEqual({ state: 'shutoff', reason: 'shutdown' });
      await expect(driver.suspend(d.uuid)).rejects.toMatchObject({ code: 'operation-invalid' });
      await expect(driver.reboot(d)).rejects.toMatchObject({ code: 'operation-invalid' });
      // The driver's own operations are results, not observations.
      expect(seen.filter((o) => o.uuid === d.uuid)).toEqual([]);
    },
    4 * BOOT_MS,
  );

  it(
    'reset presses the reset button: the guest boots again in the same qemu, a paused one stays paused, and none of it is an observation',
    async () => {
      const driver = newDriver();
      const { seen } = observations(driver);
      const d = def({ name: 'reset' });
      expect(await driver.start(d)).toEqual({ state: 'running', reason: 'booted' });
      const pid = track(driver, d.uuid)!;
      const log = join(stateDir, 'qemu', d.uuid, 'console.log');
      await waitForConsole(log, READY_MARKER, { timeoutMs: BOOT_MS });
      expect(await driver.reset(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
      // No shutdown ran: the kernel simply booted a second time.
      await waitForConsole(log, READY_MARKER, { count: 2, timeoutMs: BOOT_MS });
      expect(await readFile(log, 'utf8')).not.toContain('power button pressed');
      expect(driver.pid(d.uuid)).toBe(pid);
      expect(await driver.suspend(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
      expect(await driver.reset(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
      await driver.destroy(d.uuid);
      await expect(driver.reset(d.uuid)).rejects.toMatchObject({ code: 'operation-invalid' });
      expect(seen.filter((o) => o.uuid === d.uuid)).toEqual([]);
    },
    3 * BOOT_MS,
  );

  it(
    "save writes libvirt's image (header with the definition, then the state) to the file given and quits qemu; a start from it resumes the guest, and the image stays",
    async () => {
      const driver = newDriver();
      const d = def({ name: 'imaged' });
      const log = join(stateDir, 'qemu', d.uuid, 'console.log');
      const image = join(stateDir, 'imaged.sav');
      await driver.start(d);
      const pid = track(driver, d.uuid)!;
      await waitForConsole(log, READY_MARKER, { timeoutMs: BOOT_MS });
      expect(await driver.saveTo(d, image, { signal: AbortSignal.timeout(BOOT_MS) })).toEqual({ state: 'shutoff', reason: 'saved' });
      expect(await processState(pid)).not.toBe('alive');
      const header = await readImageHeader(image);
      expect(header).toMatchObject({ format: 'qemu', running: true });
      expect(parseDomainXml(header.xml).uuid).toBe(d.uuid);
      // A redelivered task finds it saved.
      expect(await driver.saveTo(d, image)).toEqual({ state: 'shutoff', reason: 'saved' });

      expect(await driver.start(d, { restoreFile: image, signal: AbortSignal.timeout(BOOT_MS) })).toEqual({ state: 'running', reason: 'restored' });
      track(driver, d.uuid);
      expect(existsSync(image)).toBe(true);
      expect(await driver.shutdown(d, { signal: AbortSignal.timeout(BOOT_MS) })).toEqual({ state: 'shutoff', reason: 'shutdown' });
      const resumed = await readFile(log, 'utf8');
      expect(resumed).toContain('power button pressed');
      expect(resumed).not.toContain(READY_MARKER);
    },
    4 * BOOT_MS,
  );

  it(
    'managedsave puts the guest state in a file and quits qemu; a start with restore resumes that guest, one without boots afresh',
    async () => {
      const driver = newDriver();
      const d = def({ name: 'saved' });
      const dir = join(stateDir, 'qemu', d.uuid);
      const log = join(dir, 'console.log');
      expect(await driver.start(d)).toEqual({ state: 'running', reason: 'booted' });
      const pid = track(driver, d.uuid)!;
      await waitForConsole(log, READY_MARKER, { timeoutMs: BOOT_MS });
      expect(await driver.managedSave(d)).toEqual({ state: 'shutoff', reason: 'saved' });
      expect(await processState(pid)).not.toBe('alive');
      expect((await readdir(dir)).sort()).toEqual(['console.log', 'managed.save', 'qemu.log']);
      // A redelivered task finds it saved.
      expect(await driver.managedSave(d)).toEqual({ state: 'shutoff', reason: 'saved' });
      expect(await driver.list()).toEqual([]);

      expect(await driver.start(d, { restore: true })).toEqual({ state: 'running', reason: 'restored' });
      track(driver, d.uuid);
      expect(existsSync(join(dir, 'managed.save'))).toBe(false);
      // The same init carries on, still waiting for the power button it opened before the save: it
      // powers off at a press without ever booting again.
      expect(await driver.shutdown(d, { signal: AbortSignal.timeout(BOOT_MS) })).toEqual({ state: 'shutoff', reason: 'shutdown' });
      const resumed = await readFile(log, 'utf8');
      expect(resumed).toContain('power button pressed');
      expect(resumed).not.toContain(READY_MARKER);

      // Saved again, then started without restore (the image was removed in the log): a fresh boot.
      await driver.start(d);
      track(driver, d.uuid);
      await waitForConsole(log, READY_MARKER, { timeoutMs: BOOT_MS });
      expect(await driver.managedSave(d)).toEqual({ state: 'shutoff', reason: 'saved' });
      expect(await driver.start(d)).toEqual({ state: 'running', reason: 'booted' });
      track(driver, d.uuid);
      expect(existsSync(join(dir, 'managed.save'))).toBe(false);
      await waitForConsole(log, READY_MARKER, { timeoutMs: BOOT_MS });
      await driver.destroy(d.uuid);
      await expect(driver.managedSave(d)).rejects.toMatchObject({ code: 'operation-invalid' });
    },
    4 * BOOT_MS,
  );

  it(
    'destroys, starts paused, and applies on_reboot=destroy',
    async () => {
      const driver = newDriver();
      const d = def({ name: 'paused', onReboot: 'destroy' });
      expect(await driver.start(d, { paused: true })).toEqual({ state: 'paused', reason: 'user' });
      track(driver, d.uuid);
      expect(await driver.resume(d.uuid)).toEqual({ state: 'running', reason: 'unpaused' });
      expect(await driver.reboot(d)).toEqual({ state: 'shutoff', reason: 'shutdown' });
      expect(qemuProcessesFor(d.uuid)).toEqual([]);

      expect(await driver.start(d)).toEqual({ state: 'running', reason: 'booted' });
      const pid = track(driver, d.uuid)!;
      expect(await driver.destroy(d.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      expect(await processState(pid)).not.toBe('alive');
      expect(await driver.destroy(d.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      expect(await driver.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    },
    2 * BOOT_MS,
  );

  it(
    'a shutdown whose first ACPI press the guest misses presses again until the guest powers off',
    async () => {
      const driver = new QemuDriver({ stateDir, destroyGraceMs: 3000, acpiResendMs: 500 });
      drivers.push(driver);
      const d = def({ name: 'deaf', extraCmdline: 'vp.deaf=3' });
      await driver.start(d);
      track(driver, d.uuid);
      const log = join(stateDir, 'qemu', d.uuid, 'console.log');
      await waitForConsole(log, READY_MARKER, { timeoutMs: BOOT_MS });
      const progress: string[] = [];
      // Pressed while the guest does not listen: only a press after it does powers it off.
      expect(await driver.shutdown(d, { signal: AbortSignal.timeout(60_000), progress: (m) => progress.push(m) })).toEqual({ state: 'shutoff', reason: 'shutdown' });
      expect(progress.filter((m) => m === 'ACPI power button pressed again').length).toBeGreaterThanOrEqual(3);
      const text = await readFile(log, 'utf8');
      expect(text.indexOf('listening to the power button')).toBeLessThan(text.indexOf('power button pressed, powering off'));
      expect(qemuProcessesFor(d.uuid)).toEqual([]);
    },
    2 * BOOT_MS,
  );

  it(
    'reports a guest that powers itself off, and one whose qemu is killed',
    async () => {
      const driver = newDriver();
      const { next } = observations(driver);
      const self = def({ name: 'self-off', extraCmdline: 'vp.poweroff=1' });
      const victim = def({ name: 'victim' });
      await driver.start(self);
      track(driver, self.uuid);
      await driver.start(victim);
      const victimPid = track(driver, victim.uuid)!;

      const off = await next(self.uuid, (o) => o.state === 'shutoff', 2 * BOOT_MS);
      expect(off).toMatchObject({ state: 'shutoff', reason: 'shutdown' });
      expect(off.cause).toContain('guest-shutdown');
      expect(qemuProcessesFor(self.uuid)).toEqual([]);
      expect(await driver.state(self.uuid)).toEqual({ state: 'shutoff', reason: 'shutdown' });

      process.kill(victimPid, 'SIGKILL');
      const crash = await next(victim.uuid, (o) => o.state === 'shutoff');
      expect(crash).toMatchObject({ state: 'shutoff', reason: 'crashed' });
      expect(crash.cause).toContain('SIGKILL');
      expect(await driver.state(victim.uuid)).toEqual({ state: 'shutoff', reason: 'crashed' });
    },
    3 * BOOT_MS,
  );

  it(
    'restarts a guest that powers off when on_poweroff is restart',
    async () => {
      const driver = newDriver();
      const { next } = observations(driver);
      const d = def({ name: 'phoenix', onPoweroff: 'restart' });
      await driver.start(d);
      const pid = track(driver, d.uuid);
      const log = join(stateDir, 'qemu', d.uuid, 'console.log');
      await waitForConsole(log, READY_MARKER, { timeoutMs: BOOT_MS });
      expect(await driver.shutdown(d, { signal: AbortSignal.timeout(BOOT_MS) })).toEqual({ state: 'running', reason: 'booted' });
      await waitForConsole(log, READY_MARKER, { count: 2, timeoutMs: BOOT_MS });
      expect(driver.pid(d.uuid)).toBe(pid);
      await driver.destroy(d.uuid);
      await expect(next(d.uuid, () => true, 500)).rejects.toThrow();
    },
    3 * BOOT_MS,
  );

  it(
    'reattaches to a running guest from a new driver instead of starting it again',
    async () => {
      const first = newDriver();
      const d = def({ name: 'survivor' });
      await first.start(d);
      const pid = track(first, d.uuid)!;
      await first.close();
      expect(await processState(pid)).toBe('alive');

      const second = newDriver();
      const { next } = observations(second);
      expect(await second.list()).toEqual([{ uuid: d.uuid, name: 'survivor', state: 'running', reason: 'booted' }]);
      expect(second.pid(d.uuid)).toBe(pid);
      expect(await second.start(d)).toEqual({ state: 'running', reason: 'booted' });
      expect(qemuProcessesFor(d.uuid)).toEqual([pid]);
      expect(await second.suspend(d.uuid)).toEqual({ state: 'paused', reason: 'user' });

      // The state survives a second handover too, and a death seen only through the monitor is a crash.
      await second.close();
      const third = newDriver();
      const watch = observations(third);
      expect(await third.state(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
      process.kill(pid, 'SIGKILL');
      expect(await watch.next(d.uuid, (o) => o.state === 'shutoff')).toMatchObject({ state: 'shutoff', reason: 'crashed' });
      expect(await third.list()).toEqual([]);
      await expect(next(d.uuid, () => true, 200)).rejects.toThrow();
    },
    2 * BOOT_MS,
  );

  it('gives a VNC display a free port and its password, and sets the balloon target', async () => {
    const driver = newDriver();
    const d = def({
      name: 'display',
      balloon: true,
      currentMemoryMiB: 96,
      devicesXml: `<graphics type='vnc' autoport='yes' passwd='s3cret'/>`,
    });
    expect(await driver.start(d)).toEqual({ state: 'running', reason: 'booted' });
    track(driver, d.uuid);
    const [port] = driver.vncPorts(d.uuid);
    expect(port).toBeGreaterThanOrEqual(5900);
    // RFB handshake: with a password set the server offers VNC authentication (2), never None (1).
    const types = await new Promise<number[]>((resolve, reject) => {
      const sock = connect(port!, '127.0.0.1');
      let buf = Buffer.alloc(0);
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length === 12) sock.write('RFB 003.008\n');
        if (buf.length > 13 && buf.length >= 13 + buf[12]!) {
          resolve([...buf.subarray(13, 13 + buf[12]!)]);
          sock.destroy();
        }
      });
      sock.on('error', reject);
    });
    expect(types).toContain(2);
    expect(types).not.toContain(1);
    expect(await driver.destroy(d.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
  }, BOOT_MS);

  it('cleans up after a qemu that died while no driver was watching', async () => {
    const first = newDriver();
    const d = def({ name: 'ghost' });
    await first.start(d);
    const pid = track(first, d.uuid)!;
    await first.close();
    process.kill(pid, 'SIGKILL');
    while ((await processState(pid)) === 'alive') await new Promise((r) => setTimeout(r, 20));

    const second = newDriver();
    expect(await second.list()).toEqual([]);
    expect(await second.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'crashed' });
    expect(existsSync(join(stateDir, 'qemu', d.uuid, 'domain.json'))).toBe(false);
  }, BOOT_MS);

  it('fails a start cleanly when qemu cannot run the definition', async () => {
    const driver = newDriver();
    const d = def({ name: 'broken' });
    d.os.kernel = '/nonexistent/vmlinuz';
    await expect(driver.start(d)).rejects.toMatchObject({ code: 'operation-failed', message: expect.stringContaining('/nonexistent/vmlinuz') });
    expect(qemuProcessesFor(d.uuid)).toEqual([]);
    expect(await driver.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'failed' });
    expect(await driver.list()).toEqual([]);
  }, BOOT_MS);
});
