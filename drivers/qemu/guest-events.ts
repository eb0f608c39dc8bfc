import { appendFile, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import type { ObservedState } from '../../contracts/domain/state.ts';
import type { OperationOptions } from '../hypervisor.ts';
import { emit, withLock, type QemuContext } from './context.ts';
import {
  FIRMWARE_RESET_WINDOW_MS,
  RUNNING_BOOTED,
  SHUTOFF_CRASHED,
  SHUTOFF_FAILED,
  SHUTOFF_SHUTDOWN,
  mapRunState,
  within,
  type Domain,
  type ExitInfo,
} from './guest.ts';
import { MANAGED_SAVE_FILE } from './managed-save.ts';
import { during, monitor, queryStatus, record } from './monitor.ts';
import { finishUnplug } from './nic-hotplug.ts';
import type { QmpClient, QmpEvent } from './qmp.ts';

/** Files that outlive the process: what the guest printed and what qemu said. */
const KEEP_AFTER_STOP = new Set(['console.log', 'console.log.1', 'qemu.log', MANAGED_SAVE_FILE]);

export function attach(ctx: QemuContext, d: Domain, qmp: QmpClient): void {
  d.qmp = qmp;
  qmp.onEvent((e) => onEvent(ctx, d, e));
  void qmp.closed.then(() => {
    if (d.qmp === qmp) d.qmp = undefined;
    if (d.detached || !d.alive) return;
    // A child handle reports the exit itself; otherwise watch /proc until the process is gone.
    if (!d.child) d.pollExit(() => void onExit(ctx, d, { code: null, signal: null }), 50);
  });
}

function onEvent(ctx: QemuContext, d: Domain, e: QmpEvent): void {
  if (d.detached) return;
  switch (e.event) {
    case 'SHUTDOWN': {
      d.gotShutdown = true;
      const guest = e.data?.guest === true;
      const reason = typeof e.data?.reason === 'string' ? e.data.reason : 'unknown';
      // shutdown/reboot/destroy wait for this themselves.
      if (!guest || (d.op && ['shutdown', 'reboot', 'destroy', 'guest'].includes(d.op))) return;
      void withLock(ctx, d.uuid, () => onGuestShutdown(ctx, d, reason)).catch(() => undefined);
      return;
    }
    case 'STOP':
      if (d.op) return;
      void observeStatus(ctx, d, 'STOP: guest paused outside the driver');
      return;
    case 'RESUME':
      if (d.op) return;
      emit(ctx, d, record(ctx, d, { state: 'running', reason: 'unpaused' }), 'RESUME: guest resumed outside the driver');
      return;
    case 'RESET':
      // qemu reports a host-requested reset after the command has returned, so only the guest's
      // own reboots are news; the monitor is ours alone, so host resets are the driver's doing.
      // SeaBIOS resets the machine once more right after power-on; that is not a reboot either.
      if (d.op || e.data?.guest !== true || Date.now() < d.quietResetsUntil) return;
      emit(ctx, d, record(ctx, d, RUNNING_BOOTED), 'RESET: guest rebooted itself');
      return;
    case 'DEVICE_DELETED': {
      // A guest that let go of a NIC after its detach gave up waiting: finish the detach now.
      const nic = d.rec.nics.find((n) => n.unplugging && `net${n.index}` === e.data?.device);
      if (nic) void withLock(ctx, d.uuid, () => finishUnplug(ctx, d, nic)).catch(() => undefined);
      return;
    }
    case 'POWERDOWN':
      if (d.op) return;
      emit(ctx, d, d.rec.state, 'POWERDOWN: ACPI power button pressed outside the driver');
      return;
    default:
      return;
  }
}

async function observeStatus(ctx: QemuContext, d: Domain, cause: string): Promise<void> {
  try {
    const status = await queryStatus(ctx, d);
    // A guest that powered off stops too; its SHUTDOWN handling reports that.
    if (status === 'shutdown' || d.op) return;
    const prev = d.rec.state;
    const next = status === 'paused' ? { state: 'paused' as const, reason: 'unknown' as const } : mapRunState(status, prev);
    if (next.state === prev.state && next.reason === prev.reason) return;
    emit(ctx, d, record(ctx, d, next), cause);
  } catch {
    // The process went away meanwhile: its exit is reported instead.
  }
}

/** The guest powered off (or, with on_reboot=destroy, rebooted) by itself: apply the lifecycle action. */
export async function onGuestShutdown(ctx: QemuContext, d: Domain, reason: string): Promise<void> {
  if (!d.alive || d.detached) return;
  await during(d, 'guest', async () => {
    const status = await queryStatus(ctx, d).catch(() => undefined);
    if (status !== 'shutdown') return;
    const def = d.rec.def;
    const which = reason === 'guest-reset' ? 'reboot' : reason === 'guest-panic' ? 'crash' : 'poweroff';
    const action = which === 'reboot' ? def.onReboot : which === 'crash' ? def.onCrash : def.onPoweroff;
    const result = await applyLifecycle(ctx, d, action, which);
    emit(ctx, d, result, `SHUTDOWN: ${reason}`);
  }).catch(() => undefined);
}

/** The ACPI power button, pressed again until the guest powers off; then its on_poweroff action. */
export function shutdownGuest(ctx: QemuContext, d: Domain, def: DomainDefinition, opts: OperationOptions): Promise<ObservedState> {
  return during(d, 'shutdown', async () => {
    const qmp = await monitor(ctx, d);
    const status = await queryStatus(ctx, d);
    if (status !== 'shutdown') {
      const poweredOff = qmp.waitForEvent((e) => e.event === 'SHUTDOWN' && e.data?.guest === true, {
        timeoutMs: Infinity,
      });
      poweredOff.catch(() => undefined);
      opts.progress?.('sent ACPI power button; waiting for the guest to power off');
      await qmp.execute('system_powerdown');
      const deadline = opts.signal ? Infinity : (ctx.opts.shutdownTimeoutMs ?? 120_000);
      const resend = setInterval(() => {
        opts.progress?.('ACPI power button pressed again');
        qmp.execute('system_powerdown').catch(() => undefined);
      }, ctx.opts.acpiResendMs ?? 10_000);
      try {
        await within(Promise.race([poweredOff, d.exited]), deadline, opts.signal, `shutdown of domain '${d.rec.name}'`);
      } finally {
        clearInterval(resend);
      }
      if (!d.alive) return ctx.stopped.get(d.uuid) ?? SHUTOFF_SHUTDOWN;
    }
    return applyLifecycle(ctx, d, def.onPoweroff, 'poweroff');
  });
}

/**
 * Applies an on_poweroff / on_reboot / on_crash action to a guest that has stopped (or, for an
 * explicit reboot, is to be reset). destroy and preserve end the process: qemu cannot keep a
 * powered-off machine around in a useful way, so preserve behaves like destroy, as in libvirt's
 * test driver.
 */
export async function applyLifecycle(
  ctx: QemuContext,
  d: Domain,
  action: string,
  which: 'poweroff' | 'reboot' | 'crash',
  opts: OperationOptions = {},
): Promise<ObservedState> {
  const restart = action === 'restart' || action === 'rename-restart' || action === 'coredump-restart';
  if (!restart) {
    const final = which === 'crash' ? SHUTOFF_CRASHED : SHUTOFF_SHUTDOWN;
    return terminate(ctx, d, final, opts);
  }
  const qmp = await monitor(ctx, d);
  const before = await queryStatus(ctx, d);
  d.quietResetsUntil = Date.now() + FIRMWARE_RESET_WINDOW_MS;
  await qmp.execute('system_reset');
  // A guest that halted stays stopped under -no-shutdown until told to run again.
  if (before === 'shutdown' || which !== 'reboot') await qmp.execute('cont');
  const after = await queryStatus(ctx, d);
  return record(ctx, d, after === 'running' ? RUNNING_BOOTED : mapRunState(after, d.rec.state));
}

/** Ends the process: QMP quit, then SIGTERM, then SIGKILL, each after the grace period. */
export async function terminate(ctx: QemuContext, d: Domain, final: ObservedState, opts: OperationOptions = {}): Promise<ObservedState> {
  d.expectExit = final;
  const grace = ctx.opts.destroyGraceMs ?? 5000;
  if (d.qmp && !d.qmp.isClosed) {
    opts.progress?.('asking qemu to quit');
    await d.qmp.execute('quit', undefined, { timeoutMs: grace }).catch(() => undefined);
  }
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    const gone = await within(d.exited, grace, undefined, 'qemu exit').then(
      () => true,
      () => false,
    );
    if (gone) break;
    opts.progress?.(`qemu did not exit; sending ${sig}`);
    try {
      process.kill(d.pid, sig);
    } catch {
      // Already gone.
    }
    if (!d.child) d.pollExit(() => void onExit(ctx, d, { code: null, signal: sig }), 50);
  }
  await within(d.exited, 60_000, undefined, `killing qemu ${d.pid}`);
  return ctx.stopped.get(d.uuid) ?? final;
}

export async function onExit(ctx: QemuContext, d: Domain, info: ExitInfo): Promise<void> {
  if (d.exitInfo) return;
  d.exitInfo = info;
  d.stopPolling();
  if (d.detached) return d.markExited();
  // A qemu that dies while being launched failed to start; start() reports that itself.
  const starting = d.op === 'start';
  const final = d.expectExit ?? (starting ? SHUTOFF_FAILED : d.gotShutdown ? SHUTOFF_SHUTDOWN : SHUTOFF_CRASHED);
  ctx.stopped.set(d.uuid, final);
  if (ctx.domains.get(d.uuid) === d) ctx.domains.delete(d.uuid);
  for (const p of d.rec.vncPorts) ctx.reservedPorts.delete(p);
  await d.qmp?.close().catch(() => undefined);
  await cleanupDir(d.dir, d.rec.qmpSocket);
  if (d.rec.ifnames.length && ctx.opts.releaseInterfaces) {
    await ctx.opts.releaseInterfaces(d.uuid, d.rec.ifnames).catch(() => undefined);
  }
  await appendFile(
    d.rec.qemuLog,
    `${new Date().toISOString()}: shutting down, reason=${final.reason}` +
      `${info.signal ? ` (signal ${info.signal})` : info.code !== null ? ` (exit code ${info.code})` : ''}\n`,
  ).catch(() => undefined);
  d.markExited();
  if (!d.expectExit && !starting) {
    const how = info.signal
      ? `qemu was killed by ${info.signal}`
      : info.code !== null
        ? `qemu exited with code ${info.code}`
        : 'qemu exited';
    emit(ctx, d, final, d.gotShutdown ? `${how} after SHUTDOWN` : how);
  }
}

export async function cleanupDir(dir: string, socket: string): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const e of entries) if (!KEEP_AFTER_STOP.has(e)) await rm(join(dir, e), { recursive: true, force: true });
  await unlink(socket).catch(() => undefined);
}

