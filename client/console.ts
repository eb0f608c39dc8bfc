import { randomBytes } from 'node:crypto';
import { headers, type Msg } from '@nats-io/transport-node';
import { CONSOLE_CONTROL_HEADER, CONSOLE_OFFSET_HEADER, ConsoleClosed, type ConsoleOpened } from '../contracts/console.ts';
import { subjects } from '../contracts/subjects.ts';
import { isVirtError, VirtError } from '../contracts/errors.ts';
import { decodeJson, isNoResponders, type Nats } from '../platform/nats.ts';
import { call } from '../platform/rpc.ts';

export interface ConsoleOptions {
  /** libvirt's alias of the character device (serial0, console1); the domain's console by default. */
  devName?: string;
  /** Take the console from whoever holds it (virsh console --force). */
  force?: boolean;
  /** What the guest writes; the host sends more once the promise this returns settles. */
  onData: (chunk: Uint8Array) => void | Promise<void>;
  timeoutMs?: number;
}

/** How a session ended: closed by this side, or what the host said (taken over, guest gone, ...). */
export type ConsoleEnd = ConsoleClosed | { reason: 'host-lost'; message: string };

/** An open console: bytes to write, and the end to wait for. */
export interface ConsoleSession {
  readonly sessionId: string;
  readonly device: string;
  write(data: Uint8Array): void;
  /** Lets go of the console; the guest keeps running. */
  close(): Promise<void>;
  readonly ended: Promise<ConsoleEnd>;
}

/**
 * Opens a guest's console on its host (contracts/console.ts): subscribes to the session's output
 * before asking, so nothing written after the host's answer is missed, acknowledges what it has
 * handed to `onData`, and keeps the session alive with heartbeats until it is closed or the host
 * falls silent.
 */
export const openConsole = async (nats: Nats, target: { hostId: string; domainId: string }, opts: ConsoleOptions): Promise<ConsoleSession> => {
  const { nc } = nats;
  const sessionId = randomBytes(18).toString('base64url');
  const inSubject = subjects.consoleIn(target.hostId, sessionId);
  let lastHeard = Date.now();
  let finish!: (e: ConsoleEnd) => void;
  let done = false;
  const ended = new Promise<ConsoleEnd>((r) => (finish = r));
  // Chunks are written in order, each acknowledged once the caller has taken it.
  let writing: Promise<void> = Promise.resolve();
  const control = (what: 'ack' | 'ping' | 'close', offset?: number) => {
    const h = headers();
    h.set(CONSOLE_CONTROL_HEADER, what);
    if (offset !== undefined) h.set(CONSOLE_OFFSET_HEADER, String(offset));
    try {
      nc.publish(inSubject, new Uint8Array(), { headers: h });
    } catch {
      // Closed connection: the host lets the session go when it stops hearing from us.
    }
  };
  const onMessage = (m: Msg) => {
    if (done) return;
    lastHeard = Date.now();
    const what = m.headers?.get(CONSOLE_CONTROL_HEADER) ?? '';
    if (what === 'close') {
      const said = ConsoleClosed.safeParse(safeJson(m.data));
      end(said.success ? said.data : { reason: 'closed', message: 'the host closed the console' });
      return;
    }
    if (what !== '') return;
    const offset = Number(m.headers?.get(CONSOLE_OFFSET_HEADER));
    const chunk = m.data;
    writing = writing.then(async () => {
      await opts.onData(chunk);
      if (Number.isFinite(offset)) control('ack', offset);
    });
  };
  const sub = nc.subscribe(subjects.consoleOut(target.hostId, sessionId), { callback: (err, m) => (err ? undefined : onMessage(m)) });
  let timer: NodeJS.Timeout | undefined;
  const end = (e: ConsoleEnd) => {
    if (done) return;
    done = true;
    clearInterval(timer);
    sub.unsubscribe();
    // What arrived before the end is still written out first.
    void writing.then(() => finish(e));
  };

  let opened: ConsoleOpened;
  try {
    opened = await call<ConsoleOpened>(
      nc,
      subjects.consoleOpen(target.hostId, nats.principal ?? 'anonymous'),
      { domainId: target.domainId, sessionId, force: opts.force ?? false, ...(opts.devName ? { devName: opts.devName } : {}) },
      opts.timeoutMs ?? 15_000,
    );
  } catch (e) {
    done = true;
    sub.unsubscribe();
    // Nobody serves the host's console subject: its agent is down (the guest may well run on).
    if (isNoResponders(e) || (isVirtError(e) && e.message.startsWith('no service answers'))) {
      throw new VirtError('operation-failed', `operation failed: host '${target.hostId}' does not answer: is its agent running?`);
    }
    throw e;
  }
  lastHeard = Date.now();
  timer = setInterval(() => {
    if (Date.now() - lastHeard > opened.idleMs) end({ reason: 'host-lost', message: `no word from host '${target.hostId}' for ${opened.idleMs} ms` });
    else control('ping');
  }, opened.heartbeatMs);

  return {
    sessionId,
    device: opened.device,
    ended,
    write(data) {
      if (done || data.length === 0) return;
      nc.publish(inSubject, data);
    },
    async close() {
      if (done) return;
      control('close');
      await nc.flush().catch(() => undefined);
      end({ reason: 'closed', message: 'closed' });
      await ended;
    },
  };
};

const safeJson = (data: Uint8Array): unknown => {
  try {
    return decodeJson(data);
  } catch {
    return undefined;
  }
};
