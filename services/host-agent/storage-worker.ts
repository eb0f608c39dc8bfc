import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { durableConsumer } from '../../platform/durable-consumer.ts';
import { KeyedQueue } from '../../platform/keyed-queue.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { StorageTask, storageSubjects, storageWorkerConsumer, type StorageReportRequest } from '../../contracts/storage/tasks.ts';
import { STREAMS } from '../../contracts/subjects.ts';
import { DirPool } from '../../drivers/dir-pool.ts';
import type { Logger } from '../../platform/log.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';
import { call, errorBody } from '../../platform/rpc.ts';

export interface StorageWorkerOptions {
  hostId: string;
  stateDir: string;
  /** How long a task may go unacknowledged before it is given out again (after a crash). */
  ackWaitMs?: number;
  qemuImg?: string;
}

/**
 * The host's storage work: pool build and start, volume create and delete, taken from
 * `task.<hostId>.storage` with explicit acks. Like the domain agent it writes no events: it claims a
 * task (skipping one that is no longer in flight), runs it, reports the outcome, and only then
 * acknowledges. Tasks of one pool run in order; pools run side by side.
 */
export class StorageWorker {
  private messages: ConsumerMessages | null = null;
  private consuming: Promise<void> = Promise.resolve();
  private readonly queues = new KeyedQueue();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly journal: OutcomeJournal;
  private stopping = false;

  constructor(
    private readonly n: Nats,
    private readonly opts: StorageWorkerOptions,
    private readonly log: Logger,
  ) {
    this.journal = new OutcomeJournal(join(opts.stateDir, 'storage-tasks.jsonl'));
  }

  private get hostId() {
    return this.opts.hostId;
  }

  private get ackWaitMs() {
    return this.opts.ackWaitMs ?? 15_000;
  }

  async start(): Promise<void> {
    const name = storageWorkerConsumer(this.hostId);
    const consumer = await durableConsumer(this.n, {
      stream: STREAMS.tasks,
      name,
      // Not overlapping the domain consumer's `task.<hostId>`, as a work-queue stream requires.
      filterSubject: storageSubjects.task(this.hostId),
      ackWaitMs: this.ackWaitMs,
      maxAckPending: 256,
    });
    this.messages = await consumer.consume({ max_messages: 64 });
    const messages = this.messages;
    this.consuming = (async () => {
      for await (const m of messages) {
        if (this.stopping) break;
        const p = this.take(m);
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
      }
    })();
  }

  private take(m: JsMsg): Promise<void> {
    let task: StorageTask;
    try {
      task = StorageTask.parse(decodeJson(m.data));
    } catch (e) {
      this.log.error('dropping a malformed storage task', { seq: m.seq, error: String(e) });
      m.term();
      return Promise.resolve();
    }
    return this.queues
      .run(task.poolId, () => this.run(task, m))
      .catch((e) => {
        this.log.error('storage task failed to run; it will be redelivered', { taskId: task.taskId, error: String(e) });
        if (!this.stopping) m.nak(2000);
      });
  }

  private async run(task: StorageTask, m: JsMsg): Promise<void> {
    if (this.stopping) {
      m.nak();
      return;
    }
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
    this.journal.markDone(task.taskId, report);
    await this.report(report);
    m.ack();
  }

  private async execute(task: StorageTask, m: JsMsg): Promise<StorageReportRequest> {
    const base = { reportId: `${task.taskId}:outcome`, poolId: task.poolId, taskId: task.taskId };
    const remaining = Math.max(0, Date.parse(task.deadline) - Date.now());
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(remaining)]);
    const progress = setInterval(() => m.working(), Math.max(500, this.ackWaitMs / 3));
    const qemuImg = this.opts.qemuImg ? { qemuImg: this.opts.qemuImg } : {};
    try {
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
      }
    } catch (e) {
      const error =
        signal.aborted && !isVirtError(e) ? { code: 'timeout' as const, message: `operation '${task.op}' did not finish before its deadline` } : errorBody(e, this.log);
      return { ...base, kind: 'failed', error };
    } finally {
      clearInterval(progress);
    }
  }

  /** Retries until the command service has it: a report is the only record of what the host did. */
  private async report(r: StorageReportRequest): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await call(this.n.nc, storageSubjects.report(this.hostId), r);
        return;
      } catch (e) {
        if (isVirtError(e) && e.code !== 'timeout' && e.code !== 'operation-failed') {
          this.log.warn('storage report refused', { reportId: r.reportId, error: e.message });
          return;
        }
        if (this.stopping && attempt > 3) throw e;
        await new Promise((res) => setTimeout(res, Math.min(5000, 200 * 2 ** attempt)));
      }
    }
  }

  /** Stops taking tasks and lets running ones finish; a task cut short is not acknowledged and comes back. */
  async stop(graceMs = 20_000): Promise<void> {
    this.stopping = true;
    await this.messages?.close();
    await this.consuming;
    const timer = setTimeout(() => this.abort.abort(), graceMs);
    await Promise.all([...this.inFlight]);
    clearTimeout(timer);
  }
}

const KEEP = 2_000;

/** Finished tasks and their reports, on disk before the report is sent. */
class OutcomeJournal {
  private readonly done = new Map<string, StorageReportRequest>();
  private lines = 0;

  constructor(private readonly file: string) {
    mkdirSync(dirname(file), { recursive: true });
    if (!existsSync(file)) return;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line) as { taskId: string; report: StorageReportRequest };
        this.done.set(e.taskId, e.report);
        this.lines++;
      } catch {
        // A torn last line from a crash mid-write: that task's outcome was not recorded.
      }
    }
  }

  outcome(taskId: string): StorageReportRequest | undefined {
    return this.done.get(taskId);
  }

  markDone(taskId: string, report: StorageReportRequest): void {
    const fd = openSync(this.file, 'a');
    try {
      appendFileSync(fd, `${JSON.stringify({ taskId, report })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.done.set(taskId, report);
    if (++this.lines > KEEP * 2) this.compact();
  }

  /** Keeps the newest outcomes; older tasks have long left the work queue. */
  private compact() {
    const keep = [...this.done.entries()].slice(-KEEP);
    this.done.clear();
    for (const [k, v] of keep) this.done.set(k, v);
    this.lines = keep.length;
    writeFileSync(`${this.file}.tmp`, keep.map(([taskId, report]) => `${JSON.stringify({ taskId, report })}\n`).join(''));
    renameSync(`${this.file}.tmp`, this.file);
  }
}
