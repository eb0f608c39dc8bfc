import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import type { ObservedState } from '../../contracts/domain/state.ts';
import { VirtError, isVirtError } from '../../contracts/errors.ts';
import { buildQemuCommand, defaultMac, formatCommand, type NetdevBackend, type QemuCommand } from './argv.ts';
import { domainDir, withLock, type QemuContext } from './context.ts';
import { graphicsListenOf } from './extras.ts';
import {
  Domain,
  FIRMWARE_RESET_WINDOW_MS,
  RUNNING_BOOTED,
  SHUTOFF_FAILED,
  abortReason,
  mapRunState,
  within,
  type DomainRecord,
} from './guest.ts';
import { onExit } from './guest-events.ts';
import { allocatePort, findQemuBinary, qemuAvailable } from './host.ts';
import { managedSavePath, restoreGuestImage, restoreGuestState } from './managed-save.ts';
import { queryStatus, save } from './monitor.ts';
import type { PreparedInterface, QemuStartOptions } from './options.ts';
import { connectWhenReady, type QmpClient } from './qmp.ts';
import { VCPU_UNPLUGGED } from './vcpus.ts';

/** The command line the driver would run for `def` (no side effects), for `domxml-to-native`. */
export async function commandFor(ctx: QemuContext, def: DomainDefinition, taps: Record<string, string> = {}): Promise<QemuCommand> {
  const dir = domainDir(ctx, def.uuid);
  return buildQemuCommand(def, {
    domainDir: dir,
    monitor: { path: socketPath(dir, def.uuid) },
    pidfile: join(dir, 'qemu.pid'),
    consoleLog: join(dir, 'console.log'),
    accel: await accelFor(ctx, def),
    emulator: binaryFor(ctx, def),
    netdevs: def.devices.interfaces.map((nic, i) => {
      const t = (nic.mac && taps[nic.mac]) ?? taps[String(i)];
      return t ? { tap: t } : undefined;
    }),
    vncPorts: def.devices.graphics.map((g) => g.port ?? 5900),
  });
}

/** sun_path holds 108 bytes; a deep state directory gets its socket under the temp dir instead. */
function socketPath(dir: string, uuid: string): string {
  const p = join(dir, 'qmp.sock');
  return Buffer.byteLength(p) < 100 ? p : join(tmpdir(), `virtplane-qmp-${uuid}.sock`);
}

function binaryFor(ctx: QemuContext, def: DomainDefinition): string {
  const b = ctx.opts.binary ?? def.devices.emulator;
  if (b && existsSync(b)) return b;
  const found = findQemuBinary();
  if (!found) throw new VirtError('operation-failed', 'qemu-system-x86_64 not found on this host');
  return found;
}

export async function accelFor(ctx: QemuContext, def: DomainDefinition): Promise<'kvm' | 'tcg'> {
  const mode = ctx.opts.accel ?? 'auto';
  if (def.type === 'qemu' || mode === 'tcg') return 'tcg';
  if (def.type !== 'kvm') {
    throw new VirtError('operation-unsupported', `unsupported configuration: domain type '${def.type}' is not handled by the QEMU driver`);
  }
  const avail = await qemuAvailable();
  if (avail.kvm) return 'kvm';
  if (mode === 'kvm') {
    throw new VirtError(
      'operation-unsupported',
      `unsupported configuration: domain type 'kvm' cannot run here: ${avail.reason ?? 'KVM is not available'}`,
    );
  }
  return 'tcg';
}

async function resolveTaps(
  ctx: QemuContext,
  def: DomainDefinition,
  opts: QemuStartOptions,
): Promise<Array<(NetdevBackend & { bridge?: string; network?: string }) | undefined>> {
  const nics = def.devices.interfaces;
  const given = opts.taps ?? {};
  const fromOpts = nics.map((nic, i) => (nic.mac ? given[nic.mac.toLowerCase()] : undefined) ?? given[String(i)]);
  const needsTap = (i: number) => nics[i]!.type !== 'user' && !fromOpts[i];
  let prepared: Array<PreparedInterface | undefined> = [];
  if (nics.some((_, i) => needsTap(i)) && ctx.opts.prepareInterfaces) {
    opts.progress?.('preparing network interfaces');
    prepared = await ctx.opts.prepareInterfaces(def);
  }
  return nics.map((nic, i) => {
    if (nic.type === 'user') return undefined;
    const name = fromOpts[i];
    if (name) return { tap: name };
    const p = prepared[i];
    if (p) {
      return {
        tap: p.ifname,
        ...(p.vhost ? { vhost: true } : {}),
        ...(p.bridge ? { bridge: p.bridge } : {}),
        ...(p.network ? { network: p.network } : {}),
      };
    }
    // <interface type='ethernet'><target dev='tapX'/> names a tap the administrator made.
    if (nic.type === 'ethernet' && nic.targetDev && !nic.targetDev.includes('%')) return { tap: nic.targetDev };
    return undefined;
  });
}

/** Serialised across domains: two starts probing at once would both find the same port free. */
function allocateVnc(ctx: QemuContext, def: DomainDefinition): Promise<number[]> {
  return withLock(ctx, ' vnc-ports', () => allocateVncNow(ctx, def));
}

async function allocateVncNow(ctx: QemuContext, def: DomainDefinition): Promise<number[]> {
  const inUse = new Set([...ctx.reservedPorts, ...[...ctx.domains.values()].flatMap((d) => d.rec.vncPorts)]);
  const ports: number[] = [];
  for (const g of def.devices.graphics) {
    if (g.type !== 'vnc') continue;
    const fixed = g.autoport !== true && g.port !== undefined && g.port >= 5900 ? g.port : undefined;
    const port = fixed ?? (await allocatePort(graphicsListenOf(g) ?? ctx.opts.vncListen ?? '127.0.0.1', inUse));
    inUse.add(port);
    ctx.reservedPorts.add(port);
    ports.push(port);
  }
  return ports;
}

export async function launch(ctx: QemuContext, def: DomainDefinition, opts: QemuStartOptions): Promise<ObservedState> {
  const uuid = def.uuid;
  const dir = domainDir(ctx, uuid);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    pidfile: join(dir, 'qemu.pid'),
    qmpSocket: socketPath(dir, uuid),
    consoleLog: join(dir, 'console.log'),
    qemuLog: join(dir, 'qemu.log'),
    masterKey: join(dir, 'master-key.aes'),
  };
  // Keep the previous boot's console for post-mortems; this boot starts a fresh log.
  await rename(files.consoleLog, `${files.consoleLog}.1`).catch(() => undefined);
  await writeFile(files.masterKey, randomBytes(32), { mode: 0o600 });
  for (const f of [files.qmpSocket, files.pidfile, join(dir, VCPU_UNPLUGGED)]) await unlink(f).catch(() => undefined);

  // The log said whether the saved state is still wanted (managedsave-remove takes it away there).
  const managed = opts.restoreFile === undefined && opts.restore === true && existsSync(managedSavePath(dir));
  if (!managed) await unlink(managedSavePath(dir)).catch(() => undefined);
  const restore = managed || opts.restoreFile !== undefined;
  const accel = await accelFor(ctx, def);
  const binary = binaryFor(ctx, def);
  // Until qemu runs, what this start took is its own to give back if a step fails; from then on the
  // guest's exit gives it back (guest-events.ts onExit).
  const revert = new Revert();
  let netdevs: Awaited<ReturnType<typeof resolveTaps>>;
  let vncPorts: number[];
  let cmd: QemuCommand;
  let child: ChildProcess;
  let pid: number | undefined;
  try {
    netdevs = await resolveTaps(ctx, def, opts);
    const ifnames = netdevs.flatMap((n) => (n && 'tap' in n ? [n.tap] : []));
    const release = ctx.opts.releaseInterfaces;
    if (ifnames.length && release) revert.add(() => release(uuid, ifnames));
    vncPorts = await allocateVnc(ctx, def);
    const ports = vncPorts;
    revert.add(() => ports.forEach((p) => ctx.reservedPorts.delete(p)));
    cmd = buildQemuCommand(def, {
      domainDir: dir,
      monitor: { path: files.qmpSocket },
      masterKeyPath: files.masterKey,
      pidfile: files.pidfile,
      consoleLog: files.consoleLog,
      accel,
      emulator: binary,
      netdevs,
      vncPorts,
      ...(ctx.opts.vncListen ? { vncListen: ctx.opts.vncListen } : {}),
    });
    if (restore) cmd = { ...cmd, args: [...cmd.args, '-incoming', 'defer'] };
    await appendFile(files.qemuLog, `${new Date().toISOString()}: starting up\n${formatCommand(cmd)}\n`);
    const log = await open(files.qemuLog, 'a');
    try {
      opts.progress?.(`launching qemu (${accel})`);
      child = spawn(cmd.binary, cmd.args, {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...cmd.env },
        cwd: dir,
        // Its own process group: the guest outlives the driver and ignores signals sent to the driver's group.
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
      });
    } finally {
      await log.close();
    }
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.unref();
    pid = child.pid;
    if (pid === undefined) throw new VirtError('operation-failed', `failed to launch ${cmd.binary}: ${(await spawnError).message}`);
    revert.success();
  } catch (e) {
    await revert.fail();
    throw e;
  }

  const rec: DomainRecord = {
    version: 1,
    uuid,
    name: def.name,
    binary: cmd.binary,
    args: cmd.args,
    pid,
    ...files,
    def,
    state: { state: 'paused', reason: 'starting-up' },
    ifnames: netdevs.flatMap((n) => (n && 'tap' in n ? [n.tap] : [])),
    nics: def.devices.interfaces.map((nic, i) => {
      const n = netdevs[i];
      const bridge = n?.bridge ?? (nic.type === 'bridge' ? nic.source?.bridge : undefined);
      const network = n?.network ?? (nic.type === 'network' ? nic.source?.network : undefined);
      return {
        mac: (nic.mac ?? defaultMac(uuid, i)).toLowerCase(),
        index: i,
        ...(n && 'tap' in n ? { ifname: n.tap } : {}),
        ...(bridge ? { bridge } : {}),
        ...(network ? { network } : {}),
      };
    }),
    vncPorts,
    accel,
    startedAt: new Date().toISOString(),
  };
  const d = new Domain(dir, rec, pid);
  d.child = child;
  d.op = 'start';
  ctx.domains.set(uuid, d);
  ctx.stopped.delete(uuid);
  child.once('exit', (code, signal) => void onExit(ctx, d, { code, signal }));
  await save(ctx, d);

  try {
    opts.progress?.('waiting for the QEMU monitor');
    const qmp = await connectWhenReady(files.qmpSocket, {
      timeoutMs: ctx.opts.startTimeoutMs ?? 30_000,
      ...(opts.signal ? { signal: opts.signal } : {}),
      alive: () => d.alive,
    });
    ctx.attach(d, qmp);
    // libvirt asks qemu to report a guest reboot as a shutdown when on_reboot is destroy.
    if (def.onReboot === 'destroy') await qmp.execute('set-action', { reboot: 'shutdown' });
    rec.consolePty = await findPty(qmp);
    for (const g of def.devices.graphics) {
      if (g.type === 'vnc' && g.passwd) await qmp.execute('set_password', { protocol: 'vnc', password: g.passwd });
    }
    // <currentMemory> below <memory>: the balloon takes the difference back before the guest runs.
    const target = def.currentMemoryKiB;
    if (restore) {
      // The guest comes back as it was saved, its balloon included.
      opts.progress?.('restoring the saved guest state');
      if (opts.restoreFile !== undefined) await restoreGuestImage(qmp, opts.restoreFile, opts.signal);
      else await restoreGuestState(qmp, dir, opts.signal);
    } else if (target && target < def.memoryKiB && (def.devices.memballoon?.model ?? 'virtio') !== 'none') {
      await qmp.execute('balloon', { value: target * 1024 });
    }
    if (opts.signal?.aborted) throw abortReason(opts.signal, `start of domain '${def.name}'`);
    d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
    if (!opts.paused) await qmp.execute('cont');
    const status = await queryStatus(ctx, d);
    const state: ObservedState =
      status === 'running' ? (restore ? { state: 'running', reason: 'restored' } : RUNNING_BOOTED) : opts.paused ? { state: 'paused', reason: 'user' } : mapRunState(status);
    rec.state = state;
    await save(ctx, d);
    return state;
  } catch (e) {
    d.expectExit = SHUTOFF_FAILED;
    if (d.alive) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }
    await within(d.exited, 10_000, undefined, 'cleanup after a failed start').catch(() => undefined);
    const tail = (await readFile(files.qemuLog, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
    if (isVirtError(e)) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw new VirtError('operation-failed', `internal error: qemu failed to start domain '${def.name}': ${msg}\n${tail}`);
  } finally {
    d.op = undefined;
  }
}

async function findPty(qmp: QmpClient): Promise<string | undefined> {
  const devs = await qmp.execute<Array<{ label: string; filename: string }>>('query-chardev');
  const c = devs.find((x) => x.label === 'charserial0') ?? devs.find((x) => x.label.startsWith('charconsole'));
  return c?.filename.startsWith('pty:') ? c.filename.slice(4) : undefined;
}


/** Steps to undo if what follows fails, undone last first (Incus's `revert`); nothing once it succeeded. */
class Revert {
  private steps: Array<() => unknown> = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  success(): void {
    this.steps = [];
  }

  async fail(): Promise<void> {
    for (const step of this.steps.reverse()) await Promise.resolve().then(step).catch(() => undefined);
    this.steps = [];
  }
}
