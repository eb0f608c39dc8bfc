import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { open, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The host's own record of which tasks it began and finished, written to disk before each step. After a
 * crash a redelivered task that finished is only reported again, and one that began but did not
 * finish is not started a second time when its operation is not idempotent (reboot).
 *
 * Entries are group-committed: whatever was asked for while the previous write and fsync ran goes
 * out in one write and one fsync, both on libuv's threads, so the event loop never waits on the disk.
 * `markStarted` and `markDone` resolve only once their entry is on disk, and the caller waits for
 * that before the effect the entry guards (the operation, the report); an entry is also visible to
 * `wasStarted` / `outcome` only from then on.
 */
type Entry<R> = { taskId: string; phase: 'started' } | { taskId: string; phase: 'done'; report: R };

const KEEP = 2_000;

/** `R` is what the host reports for a finished task: the report is sent again after a crash. */
export class TaskJournal<R> {
  private readonly started = new Set<string>();
  private readonly done = new Map<string, R>();
  private lines = 0;
  private queued: Array<{ e: Entry<R>; resolve: () => void; reject: (e: unknown) => void }> = [];
  private writing: Promise<void> | null = null;
  private fd: FileHandle | null = null;

  constructor(private readonly file: string) {
    mkdirSync(dirname(file), { recursive: true });
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          this.apply(JSON.parse(line) as Entry<R>);
        } catch {
          // A torn last line from a crash mid-write: the step it recorded did not complete.
        }
      }
    }
  }

  private apply(e: Entry<R>) {
    this.lines++;
    if (e.phase === 'started') this.started.add(e.taskId);
    else this.done.set(e.taskId, e.report);
  }

  wasStarted(taskId: string): boolean {
    return this.started.has(taskId);
  }

  outcome(taskId: string): R | undefined {
    return this.done.get(taskId);
  }

  markStarted(taskId: string): Promise<void> {
    return this.append({ taskId, phase: 'started' });
  }

  markDone(taskId: string, report: R): Promise<void> {
    return this.append({ taskId, phase: 'done', report });
  }

  /** Closes the file once everything asked for is written. */
  async close(): Promise<void> {
    while (this.writing) await this.writing;
    await this.fd?.close();
    this.fd = null;
  }

  private append(e: Entry<R>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ e, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.writing) return;
    // An entry queued after the drain saw an empty queue, but before it finished, starts the next one.
    this.writing = this.drain().finally(() => {
      this.writing = null;
      if (this.queued.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queued.length > 0) {
      const batch = this.queued;
      this.queued = [];
      try {
        this.fd ??= await open(this.file, 'a');
        await this.fd.write(batch.map((b) => `${JSON.stringify(b.e)}\n`).join(''));
        await this.fd.datasync();
      } catch (err) {
        // Not on disk, so not recorded: the callers give up on the step (the task comes back).
        // The handle may be unusable: open the file afresh for the next batch.
        await this.fd?.close().catch(() => undefined);
        this.fd = null;
        for (const b of batch) b.reject(err);
        continue;
      }
      for (const b of batch) {
        this.apply(b.e);
        b.resolve();
      }
      if (this.lines > KEEP * 4) await this.compact();
    }
  }

  /** Keeps the newest finished tasks; anything older has long left the work queue. */
  private async compact() {
    const keep = [...this.done.entries()].slice(-KEEP);
    const text = keep.map(([taskId, report]) => JSON.stringify({ taskId, phase: 'done', report })).join('\n');
    const tmp = `${this.file}.tmp`;
    const h = await open(tmp, 'w');
    try {
      await writeFile(h, text ? `${text}\n` : '');
      await h.datasync();
    } finally {
      await h.close();
    }
    await this.fd?.close();
    this.fd = null;
    await rename(tmp, this.file);
    this.done.clear();
    this.started.clear();
    this.lines = 0;
    for (const [taskId, report] of keep) this.apply({ taskId, phase: 'done', report });
  }
}
