import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import type { NetworkDefinition } from '../../contracts/network/definition.ts';
import type { StoragePoolDefinition, StorageVolumeDefinition } from '../../contracts/storage/definition.ts';
import { FROM_SOURCE } from '../../platform/runtime.ts';
import { runJob, type Job, type JobResult, type JsonKind, type XmlKind } from './parse-job.ts';

/**
 * Large libvirt XML documents and JSON definitions are read on a few worker threads, not on the
 * request loop: a 1 MiB domain document takes a second or more to parse, and on the loop every
 * other command (and every reply to an agent) would wait behind it. What crosses to a thread is a
 * string or a plain object, and what comes back is a plain model: the hop costs a structured clone.
 */

type Definitions = { domain: DomainDefinition; network: NetworkDefinition; pool: StoragePoolDefinition; volume: StorageVolumeDefinition };

/**
 * Below this size a document is read on the loop: it costs about as much as the hop to a thread,
 * and it need not queue behind large documents already on the threads.
 */
export const INLINE_BYTES = 16 * 1024;

interface Slot {
  worker: Worker;
  busy: number;
}

// Built, the thread's entry is the bundle beside this one (dist/parse-worker.mjs); from sources, tsx's.
const WORKER = new URL(FROM_SOURCE ? './parse-worker.ts' : './parse-worker.mjs', import.meta.url);

let shared: ParsePool | null = null;

/** The process's one pool, started on first use; its threads never keep the process alive. */
export const parsePool = (): ParsePool => (shared ??= new ParsePool());

export class ParsePool {
  private readonly slots: Slot[] = [];
  private readonly waiting = new Map<number, { slot: Slot; resolve: (r: JobResult) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;

  // One core stays free for the request loop (and whatever else runs there): threads that starve
  // the loop of CPU would only move the wait from the loop to the scheduler.
  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism() - 1))) {}

  /** Parses `xml` as a document of `kind`; failures are the same VirtErrors a parse on the loop throws. */
  parse<K extends XmlKind>(kind: K, xml: string, seed?: string): Promise<Definitions[K]> {
    const job: Job = { kind, xml, ...(seed !== undefined ? { seed } : {}) };
    return this.run(job, xml.length) as Promise<Definitions[K]>;
  }

  /** Checks a JSON definition against its schema; failures are invalid-arg naming each offending path. */
  validate<K extends JsonKind>(kind: K, json: unknown): Promise<Definitions[K]> {
    return this.run({ kind: `${kind}-json`, json }, JSON.stringify(json)?.length ?? 0) as Promise<Definitions[K]>;
  }

  private async run(job: Job, size: number): Promise<unknown> {
    if (this.closed) throw new VirtError('internal-error', 'the command service is shutting down');
    const result = size <= INLINE_BYTES ? runJob(job) : await this.onThread(job);
    if (!result.ok) throw new VirtError(result.error.code, result.error.message, result.error.details);
    return result.definition;
  }

  private onThread(job: Job): Promise<JobResult> {
    const slot = this.leastBusy();
    const id = this.nextId++;
    return new Promise<JobResult>((resolve, reject) => {
      this.waiting.set(id, { slot, resolve, reject });
      slot.busy++;
      slot.worker.postMessage({ id, job });
    });
  }

  /**
   * Starts the threads now: each one loads the XML layer (through tsx from sources, a second or two),
   * better spent while the service starts than by the first define.
   */
  warm(): this {
    this.leastBusy();
    return this;
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private leastBusy(): Slot {
    while (this.slots.length < this.size) this.slots.push(this.spawn());
    return this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private spawn(): Slot {
    // From sources the service runs its TypeScript through tsx; on Node 20 a thread does not inherit
    // the loader, so the thread registers it before it loads its entry.
    const boot = FROM_SOURCE
      ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(WORKER.href)}); })`
      : null;
    const worker = boot ? new Worker(boot, { eval: true }) : new Worker(WORKER);
    worker.unref();
    const slot: Slot = { worker, busy: 0 };
    worker.on('message', ({ id, result }: { id: number; result: JobResult }) => {
      const w = this.waiting.get(id);
      if (!w) return;
      this.waiting.delete(id);
      slot.busy--;
      w.resolve(result);
    });
    const fail = (e: Error) => {
      // A thread that dies takes its jobs with it: fail them, and let the next parse start a new one.
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      for (const [id, w] of this.waiting) {
        if (w.slot !== slot) continue;
        this.waiting.delete(id);
        w.reject(new VirtError('internal-error', `XML parser thread failed: ${e.message}`));
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    return slot;
  }
}
