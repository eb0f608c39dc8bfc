import { connect, type Socket } from 'node:net';

/**
 * A client for the QEMU Machine Protocol over a unix socket: greeting, capability negotiation,
 * commands matched to replies by id, asynchronous events, per-command timeouts.
 */

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** An error reply from qemu (`{"error": {"class", "desc"}}`). */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super(`${command}: ${desc}`);
    this.name = 'QmpError';
  }
}

/** The monitor connection went away (qemu exited, or the client was closed). */
export class QmpClosedError extends Error {
  constructor(message = 'QMP connection closed') {
    super(message);
    this.name = 'QmpClosedError';
  }
}

export class QmpTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpTimeoutError';
  }
}

export interface QmpCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  cleanup: () => void;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class QmpClient {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(e: QmpEvent) => void>();
  private closedErr: Error | undefined;
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | undefined;
  private closeResolve!: () => void;
  /** Resolves once the connection has gone, for whatever reason. */
  readonly closed: Promise<void> = new Promise((r) => (this.closeResolve = r));
  greeting: QmpGreeting | undefined;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
    sock.on('error', (err) => this.shutdown(new QmpClosedError(`QMP connection failed: ${err.message}`)));
    sock.on('close', () => this.shutdown(new QmpClosedError()));
  }

  /** Connects, reads the greeting and leaves capability negotiation mode. */
  static async connect(path: string, opts: QmpCallOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      const onErr = (e: Error) => {
        s.destroy();
        reject(e);
      };
      s.once('error', onErr);
      s.once('connect', () => {
        s.off('error', onErr);
        resolve(s);
      });
    });
    const client = new QmpClient(sock);
    try {
      client.greeting = await client.waitGreeting({ ...opts, timeoutMs });
      await client.execute('qmp_capabilities', undefined, { ...opts, timeoutMs });
      return client;
    } catch (e) {
      client.destroy();
      throw e;
    }
  }

  get isClosed(): boolean {
    return this.closedErr !== undefined;
  }

  private waitGreeting(opts: QmpCallOptions): Promise<QmpGreeting> {
    if (this.greeting) return Promise.resolve(this.greeting);
    if (this.closedErr) return Promise.reject(this.closedErr);
    return new Promise((resolve, reject) => {
      const { cleanup } = this.guard(opts, 'QMP greeting', (e) => {
        this.greetingWaiter = undefined;
        reject(e);
      });
      this.greetingWaiter = {
        resolve: (g) => {
          cleanup();
          resolve(g);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
    });
  }

  /** Arms a timeout and abort listener; `fail` runs at most once, and never after `cleanup`. */
  private guard(opts: QmpCallOptions, what: string, fail: (e: Error) => void): { cleanup: () => void } {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let done = false;
    const timer =
      timeoutMs === Infinity
        ? undefined
        : setTimeout(() => finish(new QmpTimeoutError(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => finish(abortError(opts.signal, what));
    const finish = (e: Error) => {
      if (done) return;
      cleanup();
      fail(e);
    };
    const cleanup = () => {
      done = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    if (opts.signal?.aborted) queueMicrotask(onAbort);
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    return { cleanup };
  }

  /** Runs a command and resolves with its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpCallOptions = {}): Promise<T> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const id = `vp-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const { cleanup } = this.guard(opts, `QMP command ${command}`, (e) => {
        // A late reply for this id is dropped when it arrives.
        this.pending.delete(id);
        reject(e);
      });
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, cleanup });
      const msg = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
      this.sock.write(`${msg}\n`);
    });
  }

  /** Subscribes to asynchronous events; returns an unsubscribe function. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves with the first event matching `match`. Subscribe before issuing the command that causes
   * the event: qemu may send the event ahead of the command's reply.
   */
  waitForEvent(match: string | ((e: QmpEvent) => boolean), opts: QmpCallOptions = {}): Promise<QmpEvent> {
    const pred = typeof match === 'string' ? (e: QmpEvent) => e.event === match : match;
    if (this.closedErr) return Promise.reject(this.closedErr);
    return new Promise((resolve, reject) => {
      let unsubscribe = () => {};
      const { cleanup } = this.guard(opts, `waiting for QMP event`, (e) => {
        unsubscribe();
        reject(e);
      });
      const off = this.onEvent((e) => {
        if (!pred(e)) return;
        cleanup();
        unsubscribe();
        resolve(e);
      });
      const onClose = () => {
        cleanup();
        unsubscribe();
        reject(this.closedErr ?? new QmpClosedError());
      };
      void this.closed.then(onClose);
      unsubscribe = () => off();
    });
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: Record<string, unknown>): void {
    if ('QMP' in msg) {
      this.greeting = msg as unknown as QmpGreeting;
      this.greetingWaiter?.resolve(this.greeting);
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof msg.event === 'string') {
      const ev = msg as unknown as QmpEvent;
      for (const l of [...this.listeners]) {
        try {
          l(ev);
        } catch {
          // A listener's bug must not break the protocol stream for everyone else.
        }
      }
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    if (!id) return;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.cleanup();
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(p.command, err.class ?? 'GenericError', err.desc ?? 'unknown error'));
    } else {
      p.resolve(msg.return);
    }
  }

  private shutdown(err: Error): void {
    if (this.closedErr) return;
    this.closedErr = err;
    for (const p of this.pending.values()) {
      p.cleanup();
      p.reject(err);
    }
    this.pending.clear();
    this.greetingWaiter?.reject(err);
    this.greetingWaiter = undefined;
    this.closeResolve();
  }

  private destroy(): void {
    this.sock.destroy();
    this.shutdown(new QmpClosedError('QMP client closed'));
  }

  /** Closes the connection; qemu keeps running and accepts the next client. */
  async close(): Promise<void> {
    if (this.closedErr) return;
    this.sock.end();
    const t = setTimeout(() => this.sock.destroy(), 1000);
    await this.closed;
    clearTimeout(t);
    this.shutdown(new QmpClosedError('QMP client closed'));
  }
}

const abortError = (signal: AbortSignal | undefined, what: string): Error => {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return reason;
  return new QmpTimeoutError(`${what} aborted`);
};

/**
 * Connects to a monitor socket that may not exist yet (qemu still starting), retrying until the
 * deadline or until `alive()` says the process is gone.
 */
export async function connectWhenReady(
  path: string,
  opts: { timeoutMs: number; signal?: AbortSignal; alive?: () => boolean; intervalMs?: number },
): Promise<QmpClient> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastErr: unknown;
  for (;;) {
    if (opts.signal?.aborted) throw abortError(opts.signal, 'connecting to QMP');
    if (opts.alive && !opts.alive()) throw new QmpClosedError('qemu exited before its monitor became ready');
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      return await QmpClient.connect(path, { timeoutMs: Math.max(left, 1), ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (e) {
      lastErr = e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 10));
  }
  throw new QmpTimeoutError(
    `QMP socket ${path} not ready after ${opts.timeoutMs} ms${lastErr instanceof Error ? `: ${lastErr.message}` : ''}`,
  );
}
