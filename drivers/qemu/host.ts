import { execFile, spawn } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Host facts the QEMU driver needs: the binary, whether KVM really runs guests, process checks. */

export const QEMU_BINARY_NAMES = ['qemu-system-x86_64', 'qemu-kvm'];

export function findQemuBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/libexec', '/usr/local/bin'];
  for (const name of QEMU_BINARY_NAMES) {
    for (const d of dirs) {
      if (!d) continue;
      const p = join(d, name);
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

export async function qemuVersion(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(binary, ['-version'], { timeout: 10_000 });
    return /version\s+(\S+)/.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

const bootId = async (): Promise<string> =>
  (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();

const hostKernel = async (): Promise<string | undefined> => {
  const files = (await readdir('/boot').catch(() => [] as string[])).filter((f) => f.startsWith('vmlinuz-')).sort();
  return files.length ? join('/boot', files[files.length - 1]!) : undefined;
};

/**
 * Runs qemu briefly under `accel` and reports whether the guest got far enough to print.
 *
 * An openable /dev/kvm is not proof: under some nested hypervisors KVM runs real-mode firmware but
 * a Linux kernel hangs as soon as it enters long mode. So when a kernel is available the probe boots
 * it with early printk and waits for its banner; otherwise it settles for SeaBIOS's debug output.
 */
export async function probeAccel(binary: string, accel: 'kvm' | 'tcg', timeoutMs: number): Promise<{ ok: boolean; reason?: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'virtplane-accel-'));
  const out = join(dir, 'out.log');
  const kernel = await hostKernel();
  // 128 MiB: with less, a distribution kernel cannot even decompress itself and reboots in a loop.
  const args = ['-accel', accel, '-machine', 'pc', '-m', '128', '-nodefaults', '-display', 'none', '-no-user-config'];
  const marker = kernel ? 'Linux version' : 'SeaBIOS';
  if (kernel) {
    args.push('-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=serial,ttyS0', '-serial', `file:${out}`);
  } else {
    args.push('-debugcon', `file:${out}`, '-global', 'isa-debugcon.iobase=0x402');
  }
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + timeoutMs;
  let ok = false;
  let gone = false;
  void exited.then(() => (gone = true));
  while (Date.now() < deadline && !gone) {
    const text = await readFile(out, 'utf8').catch(() => '');
    if (text.includes(marker)) {
      ok = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await exited;
  await rm(dir, { recursive: true, force: true });
  if (ok) return { ok };
  const why = stderr.split('\n').find((l) => /error|fail/i.test(l));
  return { ok: false, reason: why ?? `no guest output under ${accel} within ${timeoutMs} ms` };
}

export interface QemuAvailability {
  ok: boolean;
  binary?: string;
  version?: string;
  kvm: boolean;
  reason?: string;
}

let cached: Promise<QemuAvailability> | undefined;

/**
 * Whether this host can run QEMU guests, and whether KVM acceleration actually works. The KVM probe
 * boots a guest, so its verdict is cached per boot of the host (and per process).
 * `VIRTPLANE_KVM=0` turns KVM off without probing.
 */
export function qemuAvailable(): Promise<QemuAvailability> {
  cached ??= detect();
  return cached;
}

async function detect(): Promise<QemuAvailability> {
  const binary = findQemuBinary();
  if (!binary) return { ok: false, kvm: false, reason: 'qemu-system-x86_64 not found' };
  const version = await qemuVersion(binary);
  if (!version) return { ok: false, binary, kvm: false, reason: `${binary} -version failed` };
  const base = { ok: true, binary, version };
  if (process.env.VIRTPLANE_KVM === '0') return { ...base, kvm: false, reason: 'KVM disabled by VIRTPLANE_KVM=0' };
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { ...base, kvm: false, reason: '/dev/kvm is not accessible' };
  }
  const cacheFile = join(tmpdir(), 'virtplane-kvm-probe.json');
  const key = JSON.stringify([await bootId(), binary, version, await hostKernel()]);
  try {
    const c = JSON.parse(await readFile(cacheFile, 'utf8')) as { key: string; ok: boolean; reason?: string };
    if (c.key === key) return { ...base, kvm: c.ok, ...(c.reason ? { reason: c.reason } : {}) };
  } catch {
    // No usable cache: probe.
  }
  const res = await probeAccel(binary, 'kvm', 6000);
  const reason = res.ok ? undefined : `KVM does not run guests here (${res.reason})`;
  await writeFile(cacheFile, JSON.stringify({ key, ok: res.ok, reason })).catch(() => undefined);
  return { ...base, kvm: res.ok, ...(reason ? { reason } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Processes

export type ProcState = 'alive' | 'zombie' | 'gone';

export async function processState(pid: number): Promise<ProcState> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const st = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return st === 'Z' || st === 'X' ? 'zombie' : 'alive';
  } catch {
    return 'gone';
  }
}

export async function processCmdline(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const parts = raw.split('\0');
    if (parts[parts.length - 1] === '') parts.pop();
    return parts;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// VNC ports

const canBind = (port: number, host: string): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });

/** libvirt's VNC autoport range is 5900-65535; the first port free on the listen address wins. */
export async function allocatePort(host: string, skip: Set<number>, from = 5900, to = 65535): Promise<number> {
  for (let p = from; p <= to; p++) {
    if (skip.has(p)) continue;
    if (await canBind(p, host)) return p;
  }
  throw new Error(`no free port in ${from}-${to} on ${host}`);
}
