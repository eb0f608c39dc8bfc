import { open, rename, readFile, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { z } from 'zod';

/**
 * A file that must never be seen half-written: a reader finds either the old or the new content,
 * because the new one is written to a temporary file, synced, and renamed over. `mode` is set
 * explicitly, since the one given to open is masked by the umask.
 */
export async function writeFileAtomic(path: string, text: string, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  // The rename itself is only durable once the directory entry is on disk.
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Small JSON state files, written as writeFileAtomic writes. */
export const writeJsonAtomic = (path: string, value: unknown): Promise<void> => writeFileAtomic(path, `${JSON.stringify(value, null, 1)}\n`);

/**
 * Reads and validates a state file. A missing file is `undefined`; an unreadable one is moved
 * aside (kept for inspection) and reported through `onCorrupt`, so a damaged cache never stops
 * the host from starting: the names in use are re-learned from running guests and the host.
 */
export async function readJsonState<S extends z.ZodType>(
  path: string,
  schema: S,
  onCorrupt: (message: string) => void,
): Promise<z.infer<S> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return schema.parse(JSON.parse(text));
  } catch (e) {
    const aside = `${path}.corrupt-${Date.now()}`;
    await rename(path, aside).catch(() => undefined);
    onCorrupt(`state file ${path} is unreadable (${(e as Error).message.split('\n')[0]}); moved to ${aside}`);
    return undefined;
  }
}

/**
 * Coalesces saves of one file: callers await a write that started after their change, but
 * concurrent changes share one write instead of queueing one each.
 */
export class CoalescedWriter {
  private running: Promise<void> | undefined;
  private pending: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => unknown,
  ) {}

  save(): Promise<void> {
    if (this.pending) return this.pending;
    if (!this.running) {
      this.running = this.write().finally(() => (this.running = undefined));
      return this.running;
    }
    const after = this.running.catch(() => undefined);
    this.pending = after.then(() => {
      this.pending = undefined;
      return this.save();
    });
    return this.pending;
  }

  private async write(): Promise<void> {
    await writeJsonAtomic(this.path, this.snapshot());
  }
}
