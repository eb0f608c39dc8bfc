import { randomUUID } from 'node:crypto';
import { userInfo, hostname } from 'node:os';
import { DeliverPolicy, type OrderedConsumerOptions } from '@nats-io/jetstream';
import type { CommandAccepted } from '../contracts/domain/commands.ts';
import type { DomainDefinitionInput } from '../contracts/domain/definition.ts';
import type { DomainOp } from '../contracts/domain/events.ts';
import { virtError } from '../contracts/errors.ts';
import { LifecycleEvent } from '../contracts/lifecycle.ts';
import { STREAMS, subjects } from '../contracts/subjects.ts';
import type { DomainListRequest, DomainView, HostView } from '../contracts/views.ts';
import { BaseConfig, loadConfig, resolveNatsUrl } from '../platform/config.ts';
import { connectNats, decodeJson, type Nats } from '../platform/nats.ts';
import { call } from '../platform/rpc.ts';

export type { CommandAccepted, DomainView, HostView, LifecycleEvent };

export interface CommandOptions {
  /** Reuse one id to retry a command safely: it takes effect once and the reply repeats. */
  commandId?: string;
  correlationId?: string;
  timeoutSeconds?: number;
}

export interface ClientOptions {
  /** NATS URL(s); absent: the embedded default this project started. */
  url?: string;
  /** Who the audit trail names for this client's commands. */
  actor?: string;
  requestTimeoutMs?: number;
}

const defaultActor = () => {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `uid${process.getuid?.() ?? '?'}@${hostname()}`;
  }
};

/** The typed client: commands with generated ids, queries, and the lifecycle feed. */
export class VirtplaneClient {
  private constructor(
    readonly nats: Nats,
    private readonly actor: string,
    private readonly timeoutMs: number,
    private readonly owned: boolean,
  ) {}

  static async connect(opts: ClientOptions = {}): Promise<VirtplaneClient> {
    const cfg = loadConfig(BaseConfig, opts.url ? { natsUrl: opts.url } : {});
    const n = await connectNats(resolveNatsUrl(cfg), 'virtplane-client');
    return new VirtplaneClient(n, opts.actor ?? defaultActor(), opts.requestTimeoutMs ?? 30_000, true);
  }

  /** Wraps a connection the caller owns (tests, services embedding the client). */
  static over(n: Nats, opts: ClientOptions = {}): VirtplaneClient {
    return new VirtplaneClient(n, opts.actor ?? defaultActor(), opts.requestTimeoutMs ?? 30_000, false);
  }

  private command(verb: string, body: Record<string, unknown>, opts: CommandOptions = {}): Promise<CommandAccepted> {
    return call<CommandAccepted>(
      this.nats.nc,
      subjects.command('domain', verb),
      {
        ...body,
        commandId: opts.commandId ?? randomUUID(),
        actor: this.actor,
        ...(opts.correlationId ? { correlationId: opts.correlationId } : {}),
        ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}),
      },
      this.timeoutMs,
    );
  }

  define(input: { definition: DomainDefinitionInput | Record<string, unknown>; hostId?: string } | { xml: string; hostId?: string }, opts?: CommandOptions) {
    return this.command('define', input, opts);
  }

  undefine(domain: string, opts?: CommandOptions) {
    return this.command('undefine', { domain }, opts);
  }

  start(domain: string, opts: CommandOptions & { paused?: boolean } = {}) {
    return this.command('start', { domain, ...(opts.paused ? { paused: true } : {}) }, opts);
  }

  operation(op: Exclude<DomainOp, 'start'>, domain: string, opts?: CommandOptions) {
    return this.command(op, { domain }, opts);
  }

  shutdown = (domain: string, opts?: CommandOptions) => this.operation('shutdown', domain, opts);
  destroy = (domain: string, opts?: CommandOptions) => this.operation('destroy', domain, opts);
  suspend = (domain: string, opts?: CommandOptions) => this.operation('suspend', domain, opts);
  resume = (domain: string, opts?: CommandOptions) => this.operation('resume', domain, opts);
  reboot = (domain: string, opts?: CommandOptions) => this.operation('reboot', domain, opts);

  async get(domain: string, opts: { minVersion?: number; settled?: boolean; waitMs?: number } = {}): Promise<DomainView> {
    const r = await call<{ domain: DomainView }>(this.nats.nc, subjects.query('domain', 'get'), { domain, ...opts }, (opts.waitMs ?? 5000) + this.timeoutMs);
    return r.domain;
  }

  async list(filter: Partial<DomainListRequest> = {}): Promise<DomainView[]> {
    return (await call<{ domains: DomainView[] }>(this.nats.nc, subjects.query('domain', 'list'), filter, this.timeoutMs)).domains;
  }

  async hosts(): Promise<HostView[]> {
    return (await call<{ hosts: HostView[] }>(this.nats.nc, subjects.query('host', 'list'), {}, this.timeoutMs)).hosts;
  }

  /**
   * Waits until the host has carried out what `accepted` asked for, and returns the view then.
   * Throws the host's error when the operation failed, and `timeout` when it is still running.
   */
  async outcome(accepted: CommandAccepted, timeoutMs = 120_000): Promise<DomainView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waitMs = Math.max(0, Math.min(25_000, deadline - Date.now()));
      const v = await this.get(accepted.domainId, { minVersion: accepted.version, settled: true, waitMs }).catch((e) => {
        if (e?.code === 'no-domain') return null;
        throw e;
      });
      if (!v) throw virtError('no-domain', `domain '${accepted.name}' was removed`);
      if (accepted.taskId && v.lastError?.taskId === accepted.taskId) {
        throw virtError(v.lastError.code as never, v.lastError.message, { domain: v.name, op: v.lastError.op });
      }
      if (!accepted.taskId || v.pending?.taskId !== accepted.taskId) return v;
      if (Date.now() >= deadline) {
        throw virtError('timeout', `domain '${v.name}': operation '${v.pending.op}' still in progress after ${timeoutMs} ms`);
      }
    }
  }

  /** Lifecycle events as they happen (or from the start of the stream), in libvirt's vocabulary. */
  async *lifecycle(opts: { domainId?: string; hostId?: string; from?: 'new' | 'all'; signal?: AbortSignal } = {}): AsyncGenerator<LifecycleEvent> {
    const filter = subjects.lifecycle(opts.hostId ?? '*', opts.domainId ?? '*');
    const consumerOpts: Partial<OrderedConsumerOptions> = {
      // A single string, not an array: 2.9 servers have no multi-filter consumers.
      filter_subjects: filter,
      deliver_policy: opts.from === 'all' ? DeliverPolicy.All : DeliverPolicy.New,
    };
    const consumer = await this.nats.js.consumers.get(STREAMS.lifecycle, consumerOpts);
    const messages = await consumer.consume();
    const stop = () => void messages.close();
    opts.signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const m of messages) {
        const parsed = LifecycleEvent.safeParse(decodeJson(m.data));
        if (parsed.success) yield parsed.data;
      }
    } finally {
      opts.signal?.removeEventListener('abort', stop);
      await messages.close();
    }
  }

  async close(): Promise<void> {
    if (this.owned) await this.nats.close();
  }
}

