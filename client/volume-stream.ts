import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { VirtError } from '../contracts/errors.ts';
import { chunkBytesFor, volStreamSubjects } from '../contracts/storage/stream.ts';
import { call } from '../platform/rpc.ts';

/**
 * The client's side of vol-upload and vol-download (contracts/storage/stream.ts): chunks go out or
 * are asked for with at most `window` unanswered, and the transfer ends with both ends' sha256
 * compared. A transfer that fails is aborted, so the volume is free again at once; a client that dies
 * leaves its session to the host's idle timeout.
 */

export interface StreamTarget {
  hostId: string;
  poolId: string;
  volume: string;
}

export interface TransferResult {
  bytes: number;
  sha256: string;
}

interface Opened {
  sessionId: string;
  chunkBytes: number;
  window: number;
  idleMs: number;
  bytes?: number;
}

/** One chunk's request: answered within the session's idle time, or the session is gone anyway. */
const CHUNK_TIMEOUT_MS = 30_000;

const openSession = async (nc: NatsConnection, t: StreamTarget, direction: 'upload' | 'download', offset: number, length: number | undefined): Promise<Opened> => {
  const o = await call<Opened>(nc, volStreamSubjects.open(t.hostId), { direction, poolId: t.poolId, volume: t.volume, offset, ...(length ? { length } : {}) }, 30_000);
  // This side's server may allow less than the host's.
  return { ...o, chunkBytes: Math.min(o.chunkBytes, chunkBytesFor(nc.info?.max_payload ?? 1024 * 1024)) };
};

const abort = (nc: NatsConnection, hostId: string, sessionId: string) => call(nc, volStreamSubjects.abort(hostId), { sessionId }, 5_000).catch(() => undefined);

/**
 * For i = 0 .. count-1, one after another, `issue(i)` starts chunk i's request and gives back its
 * completion (wrapped, so that awaiting `issue` does not await it); at most `window` completions are awaited at once.
 */
const windowed = async (window: number, count: number, issue: (i: number) => Promise<{ done: Promise<void> }>): Promise<void> => {
  const running = new Set<Promise<void>>();
  let failure: unknown;
  for (let i = 0; i < count && failure === undefined; i++) {
    const p: Promise<void> = (await issue(i)).done.then(
      () => void running.delete(p),
      (e: unknown) => {
        running.delete(p);
        failure ??= e;
      },
    );
    running.add(p);
    if (running.size >= window) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure !== undefined) throw failure;
};

/** `virsh vol-upload`: the file's bytes (at most `length`) into the volume from `offset`. */
export const uploadVolume = async (nc: NatsConnection, t: StreamTarget, file: string, opts: { offset?: number; length?: number; sparse?: boolean } = {}): Promise<TransferResult> => {
  const fh = await open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new VirtError('invalid-arg', `cannot open file '${file}': ${e.message}`);
  });
  try {
    const size = (await fh.stat()).size;
    const total = opts.length ? Math.min(opts.length, size) : size;
    const s = await openSession(nc, t, 'upload', opts.offset ?? 0, total);
    const hash = createHash('sha256');
    try {
      const chunks = Math.ceil(total / s.chunkBytes);
      // Read in order (the hash needs it) while earlier chunks are on their way.
      await windowed(s.window, chunks, async (i) => {
        const n = Math.min(s.chunkBytes, total - i * s.chunkBytes);
        const buf = Buffer.alloc(n);
        const { bytesRead } = await fh.read(buf, 0, n, i * s.chunkBytes);
        if (bytesRead !== n) throw new VirtError('operation-failed', `file '${file}' changed while it was read`);
        hash.update(buf);
        const zero = opts.sparse && buf.every((b) => b === 0);
        const sent = call(nc, volStreamSubjects.data(t.hostId), { sessionId: s.sessionId, seq: i, ...(zero ? { zero: n } : { data: buf.toString('base64') }) }, CHUNK_TIMEOUT_MS);
        return { done: sent.then(() => undefined) };
      });
      const sha256 = hash.digest('hex');
      const done = await call<TransferResult>(nc, volStreamSubjects.finish(t.hostId), { sessionId: s.sessionId, bytes: total, sha256 }, CHUNK_TIMEOUT_MS);
      if (done.sha256 !== sha256 || done.bytes !== total) throw new VirtError('operation-failed', `upload damaged: the host has ${done.bytes} bytes with sha256 ${done.sha256}`);
      return { bytes: done.bytes, sha256: done.sha256 };
    } catch (e) {
      await abort(nc, t.hostId, s.sessionId);
      throw e;
    }
  } finally {
    await fh.close();
  }
};

/** `virsh vol-download`: the volume's bytes from `offset` (at most `length`) into a new or truncated file. */
export const downloadVolume = async (nc: NatsConnection, t: StreamTarget, file: string, opts: { offset?: number; length?: number } = {}): Promise<TransferResult> => {
  const fh = await open(file, 'w').catch((e: NodeJS.ErrnoException) => {
    throw new VirtError('invalid-arg', `cannot open file '${file}': ${e.message}`);
  });
  try {
    const s = await openSession(nc, t, 'download', opts.offset ?? 0, opts.length);
    const total = s.bytes ?? 0;
    const hash = createHash('sha256');
    try {
      const chunks = Math.ceil(total / s.chunkBytes);
      // Asked for in order; each answer is hashed and written after the one before it.
      let written = 0;
      let previous: Promise<void> = Promise.resolve();
      await windowed(s.window, chunks, async (i) => {
        const asked = call<{ data: string }>(nc, volStreamSubjects.read(t.hostId), { sessionId: s.sessionId, seq: i }, CHUNK_TIMEOUT_MS);
        const before = previous;
        previous = (async () => {
          const data = Buffer.from((await asked).data, 'base64');
          await before;
          hash.update(data);
          await fh.write(data, 0, data.length, i * s.chunkBytes);
          written += data.length;
        })();
        return { done: previous };
      });
      const done = await call<TransferResult>(nc, volStreamSubjects.finish(t.hostId), { sessionId: s.sessionId }, CHUNK_TIMEOUT_MS);
      const sha256 = hash.digest('hex');
      if (done.sha256 !== sha256 || done.bytes !== written) throw new VirtError('operation-failed', `download damaged: ${written} bytes with sha256 ${sha256} received, the host sent ${done.bytes} with ${done.sha256}`);
      return { bytes: written, sha256 };
    } catch (e) {
      await abort(nc, t.hostId, s.sessionId);
      throw e;
    }
  } finally {
    await fh.close();
  }
};
