/**
 * Time from "start this domain" to "qemu reports it running", through the QEMU driver's start()
 * (state directory, command line, spawn, QMP, cont, query-status), next to the same qemu command
 * line launched by hand (spawn, wait for the QMP socket, qmp_capabilities, cont, query-status) in
 * the same run, iterations interleaved so both see the same machine load.
 *
 *   node --import tsx bench/qemu-start.ts [--iterations 7]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DomainDefinition } from '../contracts/domain/definition.ts';
import { parseDomainXml } from '../contracts/xml/index.ts';
import { buildQemuCommand } from '../drivers/qemu/argv.ts';
import { QemuDriver } from '../drivers/qemu/driver.ts';
import { qemuAvailable } from '../drivers/qemu/host.ts';
import { connectWhenReady } from '../drivers/qemu/qmp.ts';
import { buildTinyGuest, tinyGuestXml } from '../test/fixtures/guest/build.ts';

export interface StartSamples {
  samplesMs: number[];
  medianMs: number;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const samples = (xs: number[]): StartSamples => ({ samplesMs: xs, medianMs: median(xs) });

/** One launch of `def`'s command line without the driver; resolves with the ms until running, after tearing down. */
export async function rawQemuStartOnce(def: DomainDefinition, workDir: string): Promise<number> {
  const avail = await qemuAvailable();
  const dir = await mkdtemp(join(workDir, 'raw-'));
  const sock = join(dir, 'qmp.sock');
  await writeFile(join(dir, 'master-key.aes'), randomBytes(32), { mode: 0o600 });
  const cmd = buildQemuCommand(def, {
    domainDir: dir,
    monitor: { path: sock },
    pidfile: join(dir, 'qemu.pid'),
    consoleLog: join(dir, 'console.log'),
    accel: def.type === 'kvm' && avail.kvm ? 'kvm' : 'tcg',
    ...(avail.binary ? { emulator: avail.binary } : {}),
  });
  const log = await open(join(dir, 'qemu.log'), 'a');
  const t0 = performance.now();
  const child = spawn(cmd.binary, cmd.args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...cmd.env },
    cwd: dir,
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const qmp = await connectWhenReady(sock, { timeoutMs: 60_000, alive: () => child.exitCode === null && child.signalCode === null });
    await qmp.execute('cont');
    for (;;) {
      const s = await qmp.execute<{ status: string }>('query-status');
      if (s.status === 'running') break;
    }
    const ms = performance.now() - t0;
    await qmp.execute('quit').catch(() => undefined);
    return ms;
  } finally {
    await log.close();
    if (child.exitCode === null && child.signalCode === null) {
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** The raw baseline: `def`'s qemu command line launched directly, `iterations` times. */
export async function measureRawQemuStart(def: DomainDefinition, iterations: number): Promise<StartSamples> {
  const work = await mkdtemp(join(tmpdir(), 'vp-bench-raw-'));
  try {
    const xs: number[] = [];
    for (let i = 0; i < iterations; i++) xs.push(await rawQemuStartOnce(def, work));
    return samples(xs);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** One QemuDriver.start() until it reports running; destroys the domain afterwards (not timed). */
export async function driverStartOnce(driver: QemuDriver, def: DomainDefinition): Promise<number> {
  const t0 = performance.now();
  const s = await driver.start(def);
  const ms = performance.now() - t0;
  if (s.state !== 'running') throw new Error(`driver reported ${s.state}/${s.reason}`);
  await driver.destroy(def.uuid);
  return ms;
}

export async function measureDriverStart(def: DomainDefinition, iterations: number): Promise<StartSamples> {
  const stateDir = await mkdtemp(join(tmpdir(), 'vp-bench-drv-'));
  const driver = new QemuDriver({ stateDir });
  try {
    const xs: number[] = [];
    for (let i = 0; i < iterations; i++) xs.push(await driverStartOnce(driver, def));
    return samples(xs);
  } finally {
    await driver.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** The tiny test guest as the benchmark's domain: realistic (kernel and initrd loaded), small. */
export async function benchDomain(name = 'bench'): Promise<DomainDefinition> {
  const avail = await qemuAvailable();
  const guest = await buildTinyGuest();
  return parseDomainXml(tinyGuestXml(guest, { name, type: avail.kvm ? 'kvm' : 'qemu' }));
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--iterations');
  const iterations = i > 0 ? Number(process.argv[i + 1]) : 7;
  const avail = await qemuAvailable();
  if (!avail.ok) {
    console.error(`qemu is not available: ${avail.reason}`);
    process.exit(1);
  }
  const def = await benchDomain();
  const stateDir = await mkdtemp(join(tmpdir(), 'vp-bench-drv-'));
  const work = await mkdtemp(join(tmpdir(), 'vp-bench-raw-'));
  const driver = new QemuDriver({ stateDir });
  const raw: number[] = [];
  const drv: number[] = [];
  try {
    // One unmeasured round of each warms the page cache (qemu, firmware, kernel, initrd).
    await rawQemuStartOnce(def, work);
    await driverStartOnce(driver, def);
    for (let n = 0; n < iterations; n++) {
      if (n % 2 === 0) {
        raw.push(await rawQemuStartOnce(def, work));
        drv.push(await driverStartOnce(driver, def));
      } else {
        drv.push(await driverStartOnce(driver, def));
        raw.push(await rawQemuStartOnce(def, work));
      }
    }
  } finally {
    await driver.close();
    await rm(stateDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
  const r = median(raw);
  const d = median(drv);
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(' ');
  console.log(`qemu ${avail.version} (${def.type === 'kvm' && avail.kvm ? 'kvm' : 'tcg'}), ${def.memoryKiB / 1024} MiB guest, ${iterations} iterations`);
  console.log(`raw qemu    spawn -> running  median ${r.toFixed(1)} ms   [${fmt(raw)}]`);
  console.log(`QemuDriver  start -> running  median ${d.toFixed(1)} ms   [${fmt(drv)}]`);
  console.log(`driver overhead ${(d - r).toFixed(1)} ms, ratio driver/raw ${(d / r).toFixed(2)}x`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
