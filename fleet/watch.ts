import type { Subscription } from '@nats-io/transport-node';
import type { Commit } from '../contracts/envelope.ts';
import type { LifecycleEvent } from '../contracts/lifecycle.ts';
import { subjects } from '../contracts/subjects.ts';
import { decodeJson, type Nats } from '../platform/nats.ts';

/**
 * When things happened, as the control plane published them: the first HostLost commit of each host
 * and each domain's STARTED lifecycle events (with the host). Core subscriptions see every publish,
 * so this only times events; what the log holds is checked separately.
 */
export class FleetWatch {
  readonly hostLostAt = new Map<string, number>();
  readonly started = new Map<string, Array<{ hostId: string; at: number }>>();
  private readonly subs: Subscription[];

  constructor(n: Nats) {
    this.subs = [
      n.nc.subscribe('ev.host.>', {
        callback: (_e, m) => {
          const c = decodeJson(m.data) as Commit;
          const host = m.subject.slice('ev.host.'.length);
          if (c.events.some((e) => e.type === 'HostLost') && !this.hostLostAt.has(host)) this.hostLostAt.set(host, performance.now());
        },
      }),
      n.nc.subscribe(subjects.allLifecycle, {
        callback: (_e, m) => {
          const e = decodeJson(m.data) as LifecycleEvent;
          if (e.event !== 'STARTED') return;
          const list = this.started.get(e.domainId) ?? [];
          list.push({ hostId: e.hostId, at: performance.now() });
          this.started.set(e.domainId, list);
        },
      }),
    ];
  }

  /** When the domain was first seen started on a host other than `from`, after `since`. */
  restartedAt(domainId: string, from: string, since: number): { hostId: string; at: number } | undefined {
    return this.started.get(domainId)?.find((s) => s.hostId !== from && s.at >= since);
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
  }
}
