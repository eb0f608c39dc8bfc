import { basename, dirname, join } from 'node:path';
import type { JsMsg } from '@nats-io/jetstream';
import { isVirtError, VirtError } from '../../contracts/errors.ts';
import { askPoolAutostart } from './pool-autostart.ts';
import { StorageTask, storageSubjects, storageWorkerConsumer, type StorageReportRequest } from '../../contracts/storage/tasks.ts';
import { STREAMS } from '../../contracts/subjects.ts';
import { DirPool } from '../../drivers/dir-pool.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { call, errorBody } from '../../platform/rpc.ts';
import { TaskJournal } from './task-journal.ts';
import { TaskWorker } from './task-worker.ts';

export interface StorageWorkerOptions {
  hostId: string;
  stateDir: string;
  /** How long a task may go unacknowledged before it is given out again (after a crash). */
  ackWaitMs?: number;
  qemuImg?: string;
  /** Whether a vol-upload or vol-download holds this file: a task must not change it meanwhile. */
  streamBusy?: (path: string) => boolean;
}

/** The volume files a task reads or writes, and the pool directory for pool-wide work. */
const pathsOf = (t: StorageTask): string[] => {
  switch (t.op) {
    case 'vol-create':
      return [t.volume.target?.path ?? t.volume.key ?? ''];
    case 'vol-clone':
      return [t.source.path, t.volume.target?.path ?? t.volume.key ?? ''];
    case 'vol-delete':
    case 'vol-resize':
    case 'vol-wipe':
      return [t.path];
    default:
      return [t.target.path];
  }
};

/**
 * The host's storage work: pool build and start, volume create and delete, taken from
 * `task.<hostId>.storage` with explicit acks. Like the domain agent it writes no events: it claims a
 * task (skipping one that is no longer in flight), runs it, reports the outcome, and only then
 * acknowledges. Tasks of one pool run in order; pools run side by side.
 */
export class StorageWorker {
  private readonly worker: TaskWorker<StorageTask>;
  private readonly journal: TaskJournal<StorageReportRequest>;
  /** Files and pool directories of the tasks running now. */
  private readonly working = new Map<string, number>();

  constructor(
    private readonly n: Nats,
    private readonly opts: StorageWorkerOptions,
    private readonly log: Logger,
  ) {
    this.journal = new TaskJournal(join(opts.stateDir, 'storage-tasks.jsonl'));
    this.worker = new TaskWorker(
      n,
      {
        stream: STREAMS.tasks,
        name: storageWorkerConsumer(opts.hostId),
        // Not overlapping the domain consumer's `task.<hostId>`, as a work-queue stream requires.
        filterSubject: storageSubjects.task(opts.hostId),
        ackWaitMs: this.ackWaitMs,
        maxAckPending: 256,
        batch: 64,
        schema: StorageTask,
        key: (t) => t.poolId,
        what: 'storage task',
      },
      (task, m) => this.run(task, m),
      log,
    );
  }

  private get hostId() {
    return this.opts.hostId;
  }

  private get ackWaitMs() {
    return this.opts.ackWaitMs ?? 15_000;
  }

  /** A task works on this volume file, or on its whole pool. */
  busy(path: string): boolean {
    return this.working.has(path) || this.working.has(dirname(path));
  }

  start(): Promise<void> {
    return this.worker.start();
  }

  private async run(task: StorageTask, m: JsMsg): Promise<void> {
    const finished = this.journal.outcome(task.taskId);
    if (finished) {
      // Done before a crash or a lost ack: only the report is repeated, never the work.
      await this.report(finished);
      m.ack();
      return;
    }
    const claim = await call<{ proceed: boolean; reason?: string }>(this.n.nc, storageSubjects.claim(this.hostId), { taskId: task.taskId, poolId: task.poolId });
    if (!claim.proceed) {
      this.log.info('skipping a storage task that is no longer current', { taskId: task.taskId, op: task.op, reason: claim.reason });
      m.ack();
      return;
    }
    const report = await this.execute(task, m);
    await this.journal.markDone(task.taskId, report);
    await this.report(report);
    m.ack();
  }

  private async execute(task: StorageTask, m: JsMsg): Promise<StorageReportRequest> {
    const base = { reportId: `${task.taskId}:outcome`, poolId: task.poolId, taskId: task.taskId };
    const remaining = Math.max(0, Date.parse(task.deadline) - Date.now());
    const signal = AbortSignal.any([this.worker.signal, AbortSignal.timeout(remaining)]);
    const progress = setInterval(() => m.working(), Math.max(500, this.ackWaitMs / 3));
    const qemuImg = this.opts.qemuImg ? { qemuImg: this.opts.qemuImg } : {};
    const paths = pathsOf(task);
    this.hold(paths);
    try {
      this.refuseStreamed(task, paths);
      switch (task.op) {
        case 'pool-build':
          await new DirPool(task.target.path, qemuImg).build(task.target.permissions);
          return { ...base, kind: 'completed', result: { op: 'pool-build' } };
        case 'pool-start': {
          const pool = new DirPool(task.target.path, qemuImg);
          if (task.build) await pool.build(task.target.permissions);
          return { ...base, kind: 'completed', result: { op: 'pool-start', ...(await pool.start()) } };
        }
        case 'vol-create': {
          const { pool } = DirPool.of(task.volume.target?.path ?? task.volume.key ?? '', qemuImg);
          const { stats, ...info } = await pool.createVolume(task.volume, signal);
          return { ...base, kind: 'completed', result: { op: 'vol-create', info, ...(stats ? { stats } : {}) } };
        }
        case 'vol-delete': {
          const { pool, name } = DirPool.of(task.path, qemuImg);
          return { ...base, kind: 'completed', result: { op: 'vol-delete', ...(await pool.deleteVolume(name)) } };
        }
        case 'pool-refresh':
          return { ...base, kind: 'completed', result: { op: 'pool-refresh', ...(await new DirPool(task.target.path, qemuImg).refresh()) } };
        case 'pool-delete':
          await new DirPool(task.target.path, qemuImg).delete();
          return { ...base, kind: 'completed', result: { op: 'pool-delete' } };
        case 'vol-resize':
        case 'vol-wipe': {
          const { pool, name } = DirPool.of(task.path, qemuImg);
          const { stats, ...info } =
            task.op === 'vol-resize' ? await pool.resizeVolume(name, task.capacityBytes, task.shrink, signal) : await pool.wipeVolume(name, signal);
          return { ...base, kind: 'completed', result: { op: task.op, info, ...(stats ? { stats } : {}) } };
        }
        case 'vol-clone': {
          const { pool, name: source } = DirPool.of(task.source.path, qemuImg);
          const { stats, ...info } = await pool.cloneVolume(source, task.volume.name, signal);
          return { ...base, kind: 'completed', result: { op: 'vol-clone', info, ...(stats ? { stats } : {}) } };
        }
      }
    } catch (e) {
      const error =
        signal.aborted && !isVirtError(e) ? { code: 'timeout' as const, message: `operation '${task.op}' did not finish before its deadline` } : errorBody(e, this.log);
      return { ...base, kind: 'failed', error };
    } finally {
      this.release(paths);
      clearInterval(progress);
    }
  }

  private hold(paths: string[]): void {
    for (const p of paths) this.working.set(p, (this.working.get(p) ?? 0) + 1);
  }

  private release(paths: string[]): void {
    for (const p of paths) {
      const left = (this.working.get(p) ?? 1) - 1;
      if (left > 0) this.working.set(p, left);
      else this.working.delete(p);
    }
  }

  /** What changes or removes a volume file waits for no stream on it: it is refused, as libvirt refuses a volume in use. */
  private refuseStreamed({ op }: { op: StorageTask["op"] }, paths: string[]): void {
    if (op === 'pool-start' || op === 'pool-build' || op === 'pool-refresh') return;
    const streamed = paths.find((p) => this.opts.streamBusy?.(p));
    if (streamed) throw new VirtError('operation-invalid', `volume '${basename(streamed)}' is still in use.`);
  }

  /** Asks for the start of this host's inactive autostart pools (services/host-agent/pool-autostart.ts). */
  autostartPools(instanceId: string): Promise<number> {
    return askPoolAutostart(this.n, this.opts.hostId, instanceId, (r) => this.report(r), this.log);
  }

  /** Retries until the command service has it: a report is the only record of what the host did. */
  private report(r: StorageReportRequest): Promise<void> {
    return this.worker.report(storageSubjects.report(this.hostId), r);
  }

  /** Stops taking tasks and lets running ones finish; a task cut short is not acknowledged and comes back. */
  async stop(graceMs = 20_000): Promise<void> {
    await this.worker.stop(graceMs);
    await this.journal.close();
  }
}
