import { createHash, randomBytes, type Hash } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import { VirtError } from '../../contracts/errors.ts';
import type { PoolView, VolumeView } from '../../contracts/storage/views.ts';
import {
  chunkBytesFor,
  STREAM_WINDOW,
  VolStreamAbort,
  VolStreamData,
  VolStreamFinish,
  VolStreamOpenRequest,
  VolStreamRead,
  volStreamSubjects,
  type VolStreamOpenRequest as OpenRequest,
} from '../../contracts/storage/stream.ts';
import { subjects } from '../../contracts/subjects.ts';
import { VolumeFile } from '../../drivers/storage/index.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { call, serve } from '../../platform/rpc.ts';
import { ownDomains } from './own-domains.ts';

export interface VolumeStreamsOptions {
  hostId: string;
  /** A session is released after this long without a message from its client. */
  idleMs?: number;
  /** Whether a storage task is working on this file now (resize, wipe, clone...). */
  taskBusy(path: string): boolean;
}

interface Session {
  id: string;
  direction: 'upload' | 'download';
  volume: string;
  path: string;
  file: VolumeFile;
  offset: number;
  /** Upload: the most it may receive; download: what it sends. */
  limit: number | undefined;
  chunkBytes: number;
  next: number;
  done: number;
  hash: Hash;
  /** Chunks are handled one after another, in the order they came: the checksum needs that order. */
  chain: Promise<unknown>;
  idle: NodeJS.Timeout;
}

const invalid = (message: string) => new VirtError('operation-invalid', message);
const failed = (message: string) => new VirtError('operation-failed', message);

/**
 * The host's side of vol-upload and vol-download (contracts/storage/stream.ts). At most one session
 * per volume file, and none while a storage task works on it, as libvirt refuses a stream to a
 * volume that is in use.
 */
export class VolumeStreams {
  private readonly sessions = new Map<string, Session>();
  /** Files of sessions being opened: taken at the check, so two opens at once cannot both pass it. */
  private readonly opening = new Set<string>();
  private subs: Subscription[] = [];

  constructor(
    private readonly n: Nats,
    private readonly opts: VolumeStreamsOptions,
    private readonly log: Logger,
  ) {}

  private get idleMs() {
    return this.opts.idleMs ?? 30_000;
  }

  /** A session holds this file (the storage worker refuses to change it meanwhile). */
  busy(path: string): boolean {
    return this.opening.has(path) || [...this.sessions.values()].some((s) => s.path === path);
  }

  start(): void {
    const h = this.opts.hostId;
    const nc = this.n.nc;
    this.subs = [
      serve(nc, volStreamSubjects.open(h), undefined, VolStreamOpenRequest, async (req) => this.open(req), this.log),
      serve(nc, volStreamSubjects.data(h), undefined, VolStreamData, async (req) => this.inSession(req.sessionId, 'upload', (s) => this.write(s, req)), this.log),
      serve(nc, volStreamSubjects.read(h), undefined, VolStreamRead, async (req) => this.inSession(req.sessionId, 'download', (s) => this.read(s, req.seq)), this.log),
      serve(nc, volStreamSubjects.finish(h), undefined, VolStreamFinish, async (req) => this.inSession(req.sessionId, undefined, (s) => this.finish(s, req)), this.log),
      serve(
        nc,
        volStreamSubjects.abort(h),
        undefined,
        VolStreamAbort,
        async (req) => {
          const s = this.sessions.get(req.sessionId);
          if (s) await this.release(s, 'aborted by its client');
          return {};
        },
        this.log,
      ),
    ];
  }

  private async open(req: OpenRequest): Promise<Record<string, unknown>> {
    // The views say which file the volume is and whether the log has work pending on it.
    const { pool, volume } = await call<{ pool: PoolView; volume: VolumeView }>(this.n.nc, subjects.hostQuery(this.opts.hostId, 'vol', 'get'), { pool: req.poolId, volume: req.volume }, 15_000);
    if (!pool.active) throw invalid(`storage pool '${pool.name}' is not active`);
    if (pool.type !== 'dir') throw new VirtError('operation-unsupported', `this function is not supported by the connection driver: ${req.direction} of a volume in a '${pool.type}' pool`);
    if (volume.pending?.op === 'vol-create' || volume.pending?.op === 'vol-clone') throw invalid(`volume '${volume.name}' is still being allocated.`);
    if (volume.pending) throw invalid(`volume '${volume.name}' has asynchronous jobs running.`);
    if (this.busy(volume.path) || this.opts.taskBusy(volume.path)) throw invalid(`volume '${volume.name}' is still in use.`);
    this.opening.add(volume.path);
    try {
      return await this.openFile(req, pool, volume);
    } finally {
      this.opening.delete(volume.path);
    }
  }

  private async openFile(req: OpenRequest, pool: PoolView, volume: VolumeView): Promise<Record<string, unknown>> {
    if (req.direction === 'upload') {
      // Writing under a running guest corrupts its disk; reading it is a copy like any other.
      const user = (await ownDomains(this.n, this.opts.hostId)).find(
        (d) => d.domid !== undefined && d.definition.devices.disks.some((k) => k.source?.file === volume.path || (k.source?.pool === pool.name && k.source?.volume === volume.name)),
      );
      if (user) throw invalid(`volume '${volume.name}' is in use by running domain '${user.name}'`);
    }
    const file = await VolumeFile.open(volume.path, req.direction === 'upload' ? 'write' : 'read');
    let limit = req.length;
    if (req.direction === 'download') {
      const size = await file.size();
      if (req.offset > size) {
        await file.close();
        throw new VirtError('invalid-arg', `invalid argument: offset ${req.offset} is past the end of volume '${volume.name}' (${size} bytes)`);
      }
      limit = Math.min(size - req.offset, req.length || Infinity);
    }
    const max = this.n.nc.info?.max_payload ?? 1024 * 1024;
    const session: Session = {
      id: randomBytes(12).toString('base64url'),
      direction: req.direction,
      volume: volume.name,
      path: volume.path,
      file,
      offset: req.offset,
      // virsh's --length 0 means no limit.
      limit: limit || (req.direction === 'download' ? 0 : undefined),
      chunkBytes: chunkBytesFor(max),
      next: 0,
      done: 0,
      hash: createHash('sha256'),
      chain: Promise.resolve(),
      idle: setTimeout(() => undefined, 0),
    };
    this.sessions.set(session.id, session);
    this.touch(session);
    this.log.info('volume stream opened', { sessionId: session.id, direction: req.direction, path: volume.path, offset: req.offset });
    return {
      sessionId: session.id,
      chunkBytes: session.chunkBytes,
      window: STREAM_WINDOW,
      idleMs: this.idleMs,
      ...(req.direction === 'download' ? { bytes: session.limit } : {}),
    };
  }

  private touch(s: Session): void {
    clearTimeout(s.idle);
    s.idle = setTimeout(() => void this.release(s, 'idle'), this.idleMs);
    s.idle.unref();
  }

  private inSession(id: string, direction: Session['direction'] | undefined, fn: (s: Session) => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const s = this.sessions.get(id);
    if (!s) throw invalid(`no open stream '${id}': it finished, was aborted or went idle`);
    if (direction && s.direction !== direction) throw invalid(`stream '${id}' is an ${s.direction}`);
    this.touch(s);
    const run = s.chain.then(() => (this.sessions.has(id) ? fn(s) : Promise.reject(invalid(`no open stream '${id}'`))));
    s.chain = run.catch(() => undefined);
    return run;
  }

  private async write(s: Session, req: VolStreamData): Promise<Record<string, unknown>> {
    // A copy of a chunk already written (a request sent again): answered, not written twice.
    if (req.seq < s.next) return { seq: req.seq, bytes: s.done };
    if (req.seq > s.next) throw invalid(`chunk ${req.seq} came before chunk ${s.next}`);
    const data = req.data !== undefined ? Buffer.from(req.data, 'base64') : Buffer.alloc(req.zero ?? 0);
    if (data.length > s.chunkBytes) throw new VirtError('invalid-arg', `invalid argument: chunk of ${data.length} bytes, more than ${s.chunkBytes}`);
    if (s.limit !== undefined && s.done + data.length > s.limit) throw new VirtError('invalid-arg', `invalid argument: more than the ${s.limit} bytes announced`);
    const at = s.offset + s.done;
    if (req.data === undefined) await s.file.writeZeros(at, data.length);
    else await s.file.write(at, data);
    s.hash.update(data);
    s.done += data.length;
    s.next++;
    return { seq: req.seq, bytes: s.done };
  }

  private async read(s: Session, seq: number): Promise<Record<string, unknown>> {
    if (seq !== s.next) throw invalid(`chunk ${seq} asked for before chunk ${s.next}`);
    const data = await s.file.read(s.offset + s.done, Math.min(s.chunkBytes, (s.limit ?? 0) - s.done));
    s.hash.update(data);
    s.done += data.length;
    s.next++;
    return { seq, data: data.toString('base64') };
  }

  private async finish(s: Session, req: VolStreamFinish): Promise<Record<string, unknown>> {
    const sha256 = s.hash.digest('hex');
    try {
      if (s.direction === 'upload') {
        if (req.bytes !== undefined && req.bytes !== s.done) throw failed(`upload of '${s.volume}' incomplete: ${s.done} of ${req.bytes} bytes received`);
        if (req.sha256 !== undefined && req.sha256 !== sha256) throw failed(`upload of '${s.volume}' damaged: sha256 ${sha256} received, ${req.sha256} sent`);
        await s.file.finish(s.offset + s.done);
      }
      return { bytes: s.done, sha256 };
    } finally {
      await this.release(s, 'finished');
    }
  }

  private async release(s: Session, why: string): Promise<void> {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    clearTimeout(s.idle);
    await s.file.close();
    this.log.info('volume stream closed', { sessionId: s.id, direction: s.direction, path: s.path, bytes: s.done, why });
  }

  async stop(): Promise<void> {
    for (const sub of this.subs) sub.unsubscribe();
    for (const s of [...this.sessions.values()]) await this.release(s, 'host agent stopping');
  }
}
