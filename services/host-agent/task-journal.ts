import { appendFileSync, existsSync, mkdirSync, openSync, closeSync, fsyncSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The host's own record of which tasks it began and finished, written to disk before each step. After a
 * crash a redelivered task that finished is only reported again, and one that began but did not
 * finish is not started a second time when its operation is not idempotent (reboot).
 */
type Entry<R> = { taskId: string; phase: 'started' } | { taskId: string; phase: 'done'; report: R };

const KEEP = 2_000;

/** `R` is what the host reports for a finished task: the report is sent again after a crash. */
export class TaskJournal<R> {
  private readonly started = new Set<string>();
  private readonly done = new Map<string, R>();
  private lines = 0;

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

  markStarted(taskId: string): void {
    this.append({ taskId, phase: 'started' });
  }

  markDone(taskId: string, report: R): void {
    this.append({ taskId, phase: 'done', report });
  }

  private append(e: Entry<R>) {
    const fd = openSync(this.file, 'a');
    try {
      appendFileSync(fd, `${JSON.stringify(e)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.apply(e);
    if (this.lines > KEEP * 4) this.compact();
  }

  /** Keeps the newest finished tasks; anything older has long left the work queue. */
  private compact() {
    const keep = [...this.done.entries()].slice(-KEEP);
    this.done.clear();
    this.started.clear();
    this.lines = 0;
    const text = keep.map(([taskId, report]) => JSON.stringify({ taskId, phase: 'done', report })).join('\n');
    writeFileSync(`${this.file}.tmp`, text ? `${text}\n` : '');
    renameSync(`${this.file}.tmp`, this.file);
    for (const [taskId, report] of keep) this.apply({ taskId, phase: 'done', report });
  }
}
