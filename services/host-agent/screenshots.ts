import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ScreenshotReadRequest } from '../../contracts/domain/guest-actions.ts';
import { virtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';

/**
 * virsh screenshot: the host writes the picture into a directory of its own, named by the task that
 * took it, and hands it out in pieces on `hostread.<host>.screenshot`. Only principals the server
 * lets ask this host's live readings (operators, who may use any guest's console) reach it; auditors
 * see that a screenshot was taken, in the log, never the picture. Pictures are kept a few minutes.
 */

/** Bytes per reply: well under the server's default 1 MiB payload once in base64. */
export const SCREENSHOT_CHUNK = 256 * 1024;
const KEEP_MS = 10 * 60_000;

const dirOf = (stateDir: string) => join(stateDir, 'screenshots');

/** Where the picture of this task goes; older pictures are removed on the way. */
export const screenshotFile = async (stateDir: string, taskId: string): Promise<string> => {
  const dir = dirOf(stateDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    const p = join(dir, f);
    const st = await stat(p).catch(() => null);
    if (st && now - st.mtimeMs > KEEP_MS) await unlink(p).catch(() => undefined);
  }
  return join(dir, taskId);
};

export const serveScreenshots = (n: Nats, hostId: string, stateDir: string, log: Logger): (() => void) => {
  const sub = serve(
    n.nc,
    subjects.hostRead(hostId, 'screenshot'),
    undefined,
    ScreenshotReadRequest,
    async (req) => {
      // The task id is checked as a plain token, so the path stays inside the directory.
      const fh = await open(join(dirOf(stateDir), req.taskId), 'r').catch(() => {
        throw virtError('operation-invalid', `no screenshot of task '${req.taskId}' on host '${hostId}' (taken more than ${KEEP_MS / 60_000} minutes ago, or never)`);
      });
      try {
        const { size } = await fh.stat();
        const buf = Buffer.alloc(Math.max(0, Math.min(SCREENSHOT_CHUNK, size - req.offset)));
        if (buf.length) await fh.read(buf, 0, buf.length, req.offset);
        return { size, data: buf.toString('base64') };
      } finally {
        await fh.close();
      }
    },
    log,
  );
  return () => sub.unsubscribe();
};
