import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObservedState } from '../../contracts/domain/state.ts';
import { VirtError, isVirtError } from '../../contracts/errors.ts';
import type { QemuContext } from './context.ts';
import { mapRunState, notRunning, type Domain } from './guest.ts';
import { QmpClient, QmpClosedError, QmpError, QmpTimeoutError } from './qmp.ts';

export async function monitor(ctx: QemuContext, d: Domain): Promise<QmpClient> {
  if (d.qmp && !d.qmp.isClosed) return d.qmp;
  if (!d.alive) throw notRunning();
  // qemu serves one monitor client at a time: connecting here would starve the launch in progress.
  if (d.op === 'start') throw new VirtError('operation-failed', `domain '${d.rec.name}' is starting`);
  try {
    const qmp = await QmpClient.connect(d.rec.qmpSocket, { timeoutMs: 5000 });
    d.stopPolling();
    ctx.attach(d, qmp);
    return qmp;
  } catch (e) {
    throw new VirtError('operation-failed', `cannot reach the monitor of domain '${d.rec.name}': ${(e as Error).message}`);
  }
}

export async function queryStatus(ctx: QemuContext, d: Domain): Promise<string> {
  const qmp = await monitor(ctx, d);
  const r = await qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs: 10_000 });
  return r.status;
}

export async function liveState(ctx: QemuContext, d: Domain): Promise<ObservedState> {
  const status = await queryStatus(ctx, d);
  return mapRunState(status, d.rec.state);
}

/** Records the state now and persists it in order; operations wait for the write before replying. */
export function record(ctx: QemuContext, d: Domain, s: ObservedState): ObservedState {
  d.rec.state = s;
  d.saving = d.saving.then(() => save(ctx, d)).catch(() => undefined);
  return s;
}

/** Writes the record now, in order with state changes. */
export function persist(ctx: QemuContext, d: Domain): Promise<void> {
  d.saving = d.saving.then(() => save(ctx, d)).catch(() => undefined);
  return d.saving;
}

export async function save(ctx: QemuContext, d: Domain): Promise<void> {
  if (!d.alive || d.detached) return;
  const file = join(d.dir, 'domain.json');
  const tmp = `${file}.${++ctx.saveSeq}.tmp`;
  await writeFile(tmp, JSON.stringify(d.rec, null, 2));
  await rename(tmp, file);
}

/** Marks an operation in flight and maps monitor failures to libvirt-style errors. */
export async function during<T>(d: Domain, op: string, fn: () => Promise<T>): Promise<T> {
  const prev = d.op;
  d.op = op;
  try {
    return await fn();
  } catch (e) {
    if (isVirtError(e)) throw e;
    if (e instanceof QmpClosedError || !d.alive) throw notRunning();
    if (e instanceof QmpTimeoutError) throw new VirtError('timeout', `${op} of domain '${d.rec.name}': ${e.message}`);
    if (e instanceof QmpError) throw new VirtError('operation-failed', `internal error: ${e.message}`);
    throw e;
  } finally {
    d.op = prev;
    // A reply must not overtake the record a successor driver would reattach from.
    await d.saving;
  }
}
