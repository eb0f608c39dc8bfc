import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A file per task that changes an image, written before the change. A run of the same task (one
 * redelivered after the agent was killed) finds its marker and knows that what the image already
 * holds is its own work; a run without one knows that whatever it finds was left by another task,
 * one abandoned or failed, and is not to be taken as done.
 */
export interface TaskMarker {
  dir: string;
  key: string;
}

const path = (m: TaskMarker): string => join(m.dir, `${createHash('sha256').update(m.key).digest('hex').slice(0, 32)}.json`);

export const isMarked = (m: TaskMarker): boolean => existsSync(path(m));

export const mark = async (m: TaskMarker, content: Record<string, unknown> = {}): Promise<void> => {
  await mkdir(m.dir, { recursive: true });
  await writeFile(path(m), JSON.stringify({ key: m.key, ...content }));
};

export const unmark = (m: TaskMarker): Promise<void> => rm(path(m), { force: true });
