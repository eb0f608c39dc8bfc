import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { VirtError } from '../../contracts/errors.ts';
import { openImage, qemuImageHeader, readImageHeader, writeImage } from '../save-image.ts';
import type { QmpClient } from './qmp.ts';

/**
 * virsh managedsave for QEMU guests, as libvirt's QEMU driver does it: the paused guest's state is
 * migrated into a file in the domain's directory and qemu quits; the next start launches qemu with
 * `-incoming defer` and migrates the state back in, so the guest carries on where it stopped.
 * qemu 7.2 has no `file:` migration, and its sandbox forbids the process an `exec:` one would spawn,
 * so the stream goes over a unix socket between qemu and the driver, which writes or reads the file.
 */

/** Short, in the temporary directory: a socket path longer than 107 bytes cannot be bound. */
const migrationSocket = (): string => join(tmpdir(), `vp-mig-${randomBytes(6).toString('hex')}.sock`);

export const MANAGED_SAVE_FILE = 'managed.save';

export const managedSavePath = (domainDir: string): string => join(domainDir, MANAGED_SAVE_FILE);

const POLL_MS = 100;

/** Waits for a migration (outgoing, or incoming when `incoming`) to finish; its failure is an operation failure. */
const settle = async (qmp: QmpClient, signal: AbortSignal | undefined, incoming: boolean): Promise<void> => {
  for (;;) {
    if (signal?.aborted) throw new VirtError('timeout', 'the guest state was not saved or restored before the deadline');
    if (incoming) {
      const { status } = await qmp.execute<{ status: string }>('query-status');
      if (status !== 'inmigrate') return;
    }
    const m = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (m.status === 'failed' || m.status === 'cancelled') throw new VirtError('operation-failed', `migration of the guest state ${m.status}: ${m['error-desc'] ?? 'no reason given'}`);
    if (!incoming && m.status === 'completed') return;
    await sleep(POLL_MS);
  }
};

/**
 * Migrates the stopped guest's state over a unix socket to `sink`, which gets qemu's one connection;
 * done once qemu says the migration completed and the sink has everything.
 */
const streamGuestState = async (qmp: QmpClient, sink: (conn: Socket) => Promise<void>, signal?: AbortSignal): Promise<void> => {
  const sock = migrationSocket();
  const server = createServer();
  const written = new Promise<void>((resolve, reject) => {
    server.once('connection', (conn) => {
      server.close();
      sink(conn).then(resolve, reject);
    });
    server.once('error', reject);
  });
  written.catch(() => undefined);
  try {
    await new Promise<void>((resolve, reject) => server.listen(sock, resolve).once('error', reject));
    await qmp.execute('migrate', { uri: `unix:${sock}` });
    await settle(qmp, signal, false);
    await written;
  } catch (e) {
    await qmp.execute('migrate_cancel').catch(() => undefined);
    throw e;
  } finally {
    server.close();
    await unlink(sock).catch(() => undefined);
  }
};

/**
 * Writes the stopped guest's state to the managed save file, whole or not at all: it goes to a
 * partial file that is renamed once qemu says the migration completed.
 */
export const saveGuestState = async (qmp: QmpClient, domainDir: string, signal?: AbortSignal): Promise<void> => {
  const file = managedSavePath(domainDir);
  const part = `${file}.part`;
  try {
    await streamGuestState(qmp, (conn) => pipeline(conn, createWriteStream(part, { mode: 0o600 })), signal);
    await rename(part, file);
  } catch (e) {
    await unlink(part).catch(() => undefined);
    throw e;
  }
};

/**
 * virsh save: the stopped guest's state, after libvirt's header that records its definition and
 * whether it ran, into `file` (already checked against the host's image directories).
 */
export const saveGuestImage = (qmp: QmpClient, file: string, xml: string, running: boolean, signal?: AbortSignal): Promise<void> => {
  const header = qemuImageHeader(xml, running);
  // The stream writes through the plain descriptor: one given a FileHandle stalled once the migration ended.
  return writeImage(file, header, (_part, fh) =>
    streamGuestState(qmp, (conn) => pipeline(conn, createWriteStream('', { fd: fh.fd, start: header.length, autoClose: false })), signal),
  );
};

/** Connects to the socket qemu listens on for the incoming state; it may take a moment to appear. */
const connectTo = async (sock: string, signal?: AbortSignal): Promise<Socket> => {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const c = connect(sock);
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
    } catch (e) {
      if (attempt >= 50 || signal?.aborted) throw new VirtError('operation-failed', `qemu did not take the saved state: ${(e as Error).message}`);
      await sleep(POLL_MS);
    }
  }
};

/** Migrates a saved state into a qemu launched with `-incoming defer`. */
const loadGuestState = async (qmp: QmpClient, source: () => Readable, signal?: AbortSignal): Promise<void> => {
  const sock = migrationSocket();
  try {
    await qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
    await pipeline(source(), await connectTo(sock, signal)).catch((e: NodeJS.ErrnoException) => {
      // qemu closes its end as soon as it has read the whole state, which can come before the socket
      // has finished on this side; whether the state arrived whole is for qemu to say, below.
      if (e.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw e;
    });
    await settle(qmp, signal, true);
  } finally {
    await unlink(sock).catch(() => undefined);
  }
};

/** managedsave's start: the file goes once the guest has it. */
export const restoreGuestState = async (qmp: QmpClient, domainDir: string, signal?: AbortSignal): Promise<void> => {
  const file = managedSavePath(domainDir);
  await loadGuestState(qmp, () => createReadStream(file), signal);
  await unlink(file);
};

/** virsh restore: the state after the image's header; the image stays, as libvirt leaves it. */
export const restoreGuestImage = async (qmp: QmpClient, file: string, signal?: AbortSignal): Promise<void> => {
  const header = await readImageHeader(file);
  if (header.format !== 'qemu') throw new VirtError('operation-failed', `'${file}' is not a saved qemu guest`);
  const fh = await openImage(file);
  try {
    // The stream gets the handle, not its number: a pipeline cut short (qemu closing its end once it
    // has the whole state) destroys the stream, which closes what it was given whatever autoClose
    // says, and a handle closes once, where a bare number closed twice could close a reused one.
    await loadGuestState(qmp, () => createReadStream('', { fd: fh, start: header.dataOffset, autoClose: false }), signal);
  } finally {
    await fh.close();
  }
};
