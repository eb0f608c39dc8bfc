import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultMac } from './argv.ts';
import { domainDir, withLock, type QemuContext } from './context.ts';
import { Domain, SHUTOFF_CRASHED, mapRunState, type DomainRecord, type NicRecord } from './guest.ts';
import { cleanupDir, onExit, onGuestShutdown } from './guest-events.ts';
import { processCmdline, processState } from './host.ts';
import { queryStatus, save } from './monitor.ts';
import { QmpClient } from './qmp.ts';

/** Records written before NICs were tracked: the boot-time NICs, with their taps from the command line. */
const nicsFromArgs = (rec: DomainRecord): NicRecord[] => {
  const taps = new Map<string, string>();
  rec.args.forEach((a, i) => {
    if (a !== '-netdev') return;
    try {
      const o = JSON.parse(rec.args[i + 1] ?? '') as { id?: unknown; ifname?: unknown };
      if (typeof o.id === 'string' && typeof o.ifname === 'string') taps.set(o.id, o.ifname);
    } catch {
      // Not JSON: not one of ours.
    }
  });
  return rec.def.devices.interfaces.map((nic, i) => {
    const ifname = taps.get(`hostnet${i}`);
    return { mac: (nic.mac ?? defaultMac(rec.uuid, i)).toLowerCase(), index: i, ...(ifname ? { ifname } : {}) };
  });
};

/** Picks up qemu processes started by an earlier driver on this state directory; clears the dead. */
export async function rescan(ctx: QemuContext): Promise<void> {
  const entries = await readdir(ctx.qemuDir).catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter((u) => !ctx.domains.has(u) && existsSync(join(ctx.qemuDir, u, 'domain.json')))
      .map((u) => withLock(ctx, u, () => reattach(ctx, u)).catch(() => undefined)),
  );
}

/** The running domain, reattaching to it when an earlier driver started it. */
export async function find(ctx: QemuContext, uuid: string): Promise<Domain | undefined> {
  const d = ctx.domains.get(uuid) ?? (await reattach(ctx, uuid));
  return d?.alive ? d : undefined;
}

export async function reattach(ctx: QemuContext, uuid: string): Promise<Domain | undefined> {
  if (ctx.closed) return undefined;
  const known = ctx.domains.get(uuid);
  if (known) return known;
  const dir = domainDir(ctx, uuid);
  let rec: DomainRecord;
  try {
    rec = JSON.parse(await readFile(join(dir, 'domain.json'), 'utf8')) as DomainRecord;
  } catch {
    return undefined;
  }
  const pidText = await readFile(rec.pidfile, 'utf8').catch(() => '');
  const pid = Number.parseInt(pidText, 10) || rec.pid;
  const cmdline = pid ? await processCmdline(pid) : undefined;
  const same =
    cmdline !== undefined &&
    cmdline.length === rec.args.length + 1 &&
    cmdline.every((a, i) => a === (i === 0 ? rec.binary : rec.args[i - 1]));
  if (!pid || !same || (await processState(pid)) !== 'alive') {
    // Under -no-shutdown a guest that powered off keeps qemu alive, so a vanished qemu crashed.
    ctx.stopped.set(uuid, SHUTOFF_CRASHED);
    await cleanupDir(dir, rec.qmpSocket);
    for (const p of rec.vncPorts ?? []) ctx.reservedPorts.delete(p);
    if (rec.ifnames?.length && ctx.opts.releaseInterfaces) {
      await ctx.opts.releaseInterfaces(uuid, rec.ifnames).catch(() => undefined);
    }
    return undefined;
  }
  rec.nics ??= nicsFromArgs(rec);
  const d = new Domain(dir, rec, pid);
  ctx.domains.set(uuid, d);
  for (const p of rec.vncPorts ?? []) ctx.reservedPorts.add(p);
  try {
    const qmp = await QmpClient.connect(rec.qmpSocket, { timeoutMs: 10_000 });
    ctx.attach(d, qmp);
    const status = await queryStatus(ctx, d);
    d.rec.state = status === 'running' && rec.state.state === 'running' ? rec.state : mapRunState(status, rec.state);
    await save(ctx, d);
    // The guest powered off while nobody watched: finish what its SHUTDOWN would have started.
    if (status === 'shutdown') {
      d.gotShutdown = true;
      queueMicrotask(() => void withLock(ctx, uuid, () => onGuestShutdown(ctx, d, 'guest-shutdown')).catch(() => undefined));
    }
  } catch {
    // The monitor may be busy with another client; keep watching the process and retry on use.
    d.pollExit(() => void onExit(ctx, d, { code: null, signal: null }), 1000);
  }
  return d;
}

