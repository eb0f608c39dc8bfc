import type { Duplex } from 'node:stream';
import { headers, type Msg, type Subscription } from '@nats-io/transport-node';
import {
  CONSOLE_CONTROL_HEADER,
  CONSOLE_DEFAULTS,
  CONSOLE_OFFSET_HEADER,
  ConsoleOpenRequest,
  type ConsoleClosed,
  type ConsoleOpened,
} from '../../contracts/console.ts';
import { isActive } from '../../contracts/domain/state.ts';
import { virtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { HypervisorDriver } from '../../drivers/hypervisor.ts';
import { KeyedQueue } from '../../platform/keyed-queue.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, type Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';

export interface ConsoleBridgeOptions {
  hostId: string;
  drivers: HypervisorDriver[];
  heartbeatMs?: number;
  idleMs?: number;
  windowBytes?: number;
}

/** One client attached to one guest's console device. */
interface Session {
  id: string;
  domainId: string;
  device: string;
  principal: string;
  stream: Duplex;
  /** Bytes sent to the client, and the offset it acknowledged having written. */
  sent: number;
  acked: number;
  paused: boolean;
  lastHeard: number;
  closed: boolean;
}

/**
 * The guest side of `virtplane console`: bridges a guest's console pty (opened through its driver,
 * which knows nothing of NATS) to a client's session subjects. One session per console device at a
 * time, as libvirt's; `force` takes it over. A client that stops being heard (killed, cut off) loses
 * the console after `idleMs`, and the pty is let go so the next session can have it.
 */
export class ConsoleBridge {
  private readonly sessions = new Map<string, Session>();
  /** The session holding each console device, by `<domain>/<device>`. */
  private readonly holders = new Map<string, Session>();
  /** Opens of one domain one after the other: two at once must not both find the console free. */
  private readonly opening = new KeyedQueue();
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly n: Nats,
    private readonly opts: ConsoleBridgeOptions,
    private readonly log: Logger,
  ) {}

  private get heartbeatMs(): number {
    return this.opts.heartbeatMs ?? CONSOLE_DEFAULTS.heartbeatMs;
  }
  private get idleMs(): number {
    return this.opts.idleMs ?? CONSOLE_DEFAULTS.idleMs;
  }
  private get windowBytes(): number {
    return this.opts.windowBytes ?? CONSOLE_DEFAULTS.windowBytes;
  }

  start(): void {
    const h = this.opts.hostId;
    this.subs.push(
      serve(
        this.n.nc,
        subjects.consoleOpen(h, '*'),
        undefined,
        ConsoleOpenRequest,
        async (req, msg) => {
          const principal = msg.subject.split('.')[3] ?? '?';
          let opened: ConsoleOpened | undefined;
          await this.opening.run(req.domainId, async () => {
            opened = await this.open(req, principal);
          });
          return { ...opened! };
        },
        this.log,
      ),
      this.n.nc.subscribe(subjects.consoleIn(h, '*'), { callback: (err, m) => (err ? undefined : this.onInput(m)) }),
    );
    this.timer = setInterval(() => this.tick(), Math.max(50, Math.floor(this.heartbeatMs / 2)));
    this.timer.unref();
  }

  private async open(req: ConsoleOpenRequest, principal: string): Promise<ConsoleOpened> {
    if (this.sessions.has(req.sessionId)) throw virtError('invalid-arg', `invalid argument: console session id '${req.sessionId}' is in use`);
    const driver = await this.driverRunning(req.domainId);
    if (!driver.openConsole) throw virtError('operation-unsupported', 'this function is not supported by the connection driver: virDomainOpenConsole');
    const { device, stream } = await driver.openConsole(req.domainId, req.devName);
    const key = `${req.domainId}/${device}`;
    const holder = this.holders.get(key);
    if (holder && !req.force) {
      stream.destroy();
      throw virtError('operation-failed', 'operation failed: Active console session exists for this domain');
    }
    if (holder) this.close(holder, 'taken-over', `the console was taken over by '${principal}'`);
    const s: Session = { id: req.sessionId, domainId: req.domainId, device, principal, stream, sent: 0, acked: 0, paused: false, lastHeard: Date.now(), closed: false };
    this.sessions.set(s.id, s);
    this.holders.set(key, s);
    stream.on('data', (chunk: Buffer) => this.forward(s, chunk));
    // The guest went away (qemu exited, the pty hung up): the session ends with it.
    stream.on('error', () => this.close(s, 'guest-gone', 'the guest is no longer running'));
    stream.on('close', () => this.close(s, 'guest-gone', 'the guest is no longer running'));
    stream.on('end', () => this.close(s, 'guest-gone', 'the guest is no longer running'));
    this.log.info('console session opened', { domainId: s.domainId, device, principal, sessionId: s.id, ...(holder ? { tookOver: holder.principal } : {}) });
    return { sessionId: s.id, device, heartbeatMs: this.heartbeatMs, idleMs: this.idleMs, windowBytes: this.windowBytes };
  }

  /** The driver running the domain on this host; libvirt's "domain is not running" otherwise. */
  private async driverRunning(domainId: string): Promise<HypervisorDriver> {
    for (const d of this.opts.drivers) {
      const st = await d.state(domainId).catch(() => undefined);
      if (st && isActive(st.state)) return d;
    }
    throw virtError('operation-invalid', 'Requested operation is not valid: domain is not running');
  }

  private forward(s: Session, chunk: Buffer): void {
    if (s.closed) return;
    s.sent += chunk.length;
    const h = headers();
    h.set(CONSOLE_OFFSET_HEADER, String(s.sent));
    this.n.nc.publish(subjects.consoleOut(this.opts.hostId, s.id), chunk, { headers: h });
    // Too far ahead of the client: stop reading the guest until it catches up.
    if (s.sent - s.acked >= this.windowBytes && !s.paused) {
      s.paused = true;
      s.stream.pause();
    }
  }

  private onInput(m: Msg): void {
    const id = m.subject.split('.')[3] ?? '';
    const s = this.sessions.get(id);
    if (!s) {
      // A session this host does not hold (ended, or before an agent restart): tell the client at once.
      this.send(id, 'close', { reason: 'closed', message: 'no such console session' });
      return;
    }
    s.lastHeard = Date.now();
    const control = m.headers?.get(CONSOLE_CONTROL_HEADER) ?? '';
    if (control === 'ack') {
      const at = Number(m.headers?.get(CONSOLE_OFFSET_HEADER));
      if (Number.isFinite(at) && at > s.acked) s.acked = Math.min(at, s.sent);
      if (s.paused && s.sent - s.acked < this.windowBytes) {
        s.paused = false;
        s.stream.resume();
      }
    } else if (control === 'close') {
      this.close(s, 'closed', 'the client closed the console', false);
    } else if (control === '' && m.data.length) {
      s.stream.write(m.data);
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const s of [...this.sessions.values()]) {
      if (now - s.lastHeard > this.idleMs) {
        this.close(s, 'idle', `no word from the client for ${this.idleMs} ms`);
        continue;
      }
      this.send(s.id, 'ping');
    }
  }

  private send(sessionId: string, control: 'ping' | 'close', body?: ConsoleClosed): void {
    const h = headers();
    h.set(CONSOLE_CONTROL_HEADER, control);
    try {
      this.n.nc.publish(subjects.consoleOut(this.opts.hostId, sessionId), body ? encodeJson(body) : new Uint8Array(), { headers: h });
    } catch {
      // The connection is closing: the client learns from the missing heartbeats.
    }
  }

  private close(s: Session, reason: ConsoleClosed['reason'], message: string, tell = true): void {
    if (s.closed) return;
    s.closed = true;
    this.sessions.delete(s.id);
    const key = `${s.domainId}/${s.device}`;
    if (this.holders.get(key) === s) this.holders.delete(key);
    if (tell) this.send(s.id, 'close', { reason, message });
    s.stream.destroy();
    this.log.info('console session closed', { domainId: s.domainId, device: s.device, principal: s.principal, sessionId: s.id, reason });
  }

  /** Sessions still open, by domain (for tests and the agent's own checks). */
  holdersOf(domainId: string): string[] {
    return [...this.holders.values()].filter((s) => s.domainId === domainId).map((s) => s.id);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const s of [...this.sessions.values()]) this.close(s, 'host-stopping', 'the host agent is stopping');
    for (const sub of this.subs) sub.unsubscribe();
    await this.n.nc.flush().catch(() => undefined);
  }
}
