import { DeliverPolicy } from '@nats-io/jetstream';
import { isVirtError } from '../../contracts/errors.ts';
import { NetworkLifecycleEvent, NetworkLiveChange } from '../../contracts/network/lifecycle.ts';
import type { NetworkView } from '../../contracts/network/views.ts';
import { STREAMS, subjects } from '../../contracts/subjects.ts';
import type { NetworkHost } from '../../drivers/network/index.ts';
import type { Logger } from '../../platform/log.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';
import { KeyedQueue } from '../../platform/keyed-queue.ts';
import { call } from '../../platform/rpc.ts';

/**
 * A network is realised on a host only while guests use it; when the network is destroyed or
 * undefined fleet-wide, every host takes its bridge, rules and DHCP down, guests' devices staying
 * detached (libvirt's net-destroy). Events missed while the agent was away are caught on start by
 * comparing what the host has with the views.
 *
 * A running network's live definition (net-update --live) is level-triggered: on each notice, at
 * start and at every resync, each network realised here has its DHCP converged to the view's
 * definition, so a host that was away, or whose agent died before it applied a change, catches up.
 */
export class NetworkSync {
  private readonly ac = new AbortController();
  private done: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  /** The view version each network's DHCP was last converged to: an older read never undoes a newer one. */
  private readonly applied = new Map<string, number>();
  private resyncing: Promise<void> = Promise.resolve();
  private readonly applying = new KeyedQueue();

  constructor(
    private readonly n: Nats,
    private readonly network: NetworkHost,
    private readonly log: Logger,
    private readonly opts: { resyncMs?: number } = {},
  ) {}

  async start(): Promise<void> {
    await this.resync(true);
    const consumer = await this.n.js.consumers.get(STREAMS.lifecycle, { filter_subjects: subjects.allNetworkLifecycle, deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume();
    this.ac.signal.addEventListener('abort', () => void messages.close(), { once: true });
    this.done = (async () => {
      for await (const m of messages) {
        const body = decodeJson(m.data);
        const live = NetworkLiveChange.safeParse(body);
        if (live.success) {
          const mine = this.network.listNetworks().find((r) => r.uuid === live.data.networkId);
          if (mine) await this.converge(mine.uuid, live.data.version);
          continue;
        }
        const e = NetworkLifecycleEvent.safeParse(body);
        if (!e.success || (e.data.event !== 'STOPPED' && e.data.event !== 'UNDEFINED')) continue;
        const mine = this.network.listNetworks().find((r) => r.uuid === e.data.networkId);
        if (mine) await this.takeDown(mine.name, `network ${e.data.event.toLowerCase()}`);
      }
    })().catch((e) => this.log.warn('network event feed ended', { error: String(e) }));
    this.timer = setInterval(() => {
      this.resyncing = this.resyncing.then(() => this.resync(false)).catch((e) => this.log.warn('network resync failed; the next one tries again', { error: String(e) }));
    }, this.opts.resyncMs ?? 30_000);
    this.timer.unref();
  }

  /**
   * Compares every network realised here with its view: one no longer active fleet-wide is taken
   * down (at start only: while running, the feed says so), one still active gets its live DHCP hosts.
   */
  private async resync(atStart: boolean) {
    for (const realised of this.network.listNetworks()) {
      const view = await call<{ network: NetworkView }>(this.n.nc, subjects.query('network', 'get'), { network: realised.uuid })
        .then((r) => r.network)
        .catch((e) => (isVirtError(e) && e.code === 'no-network' ? null : undefined));
      // undefined: the views did not answer; nothing is decided on no answer.
      if (view === undefined) continue;
      const active = view !== null && view.active && view.id === realised.uuid;
      if (!active) {
        if (atStart) await this.takeDown(realised.name, 'not active in the fleet');
        continue;
      }
      await this.apply(view);
    }
  }

  /** On a notice: reads the view at least as new as the change, then converges. */
  private async converge(uuid: string, version: number) {
    try {
      const r = await call<{ network: NetworkView }>(this.n.nc, subjects.query('network', 'get'), { network: uuid, minVersion: version, waitMs: 5_000 });
      if (r.network.active && r.network.id === uuid) await this.apply(r.network);
    } catch (e) {
      this.log.warn('could not read a changed network; the next resync tries again', { network: uuid, error: String(e) });
    }
  }

  /** One at a time per network, in the order asked: the version check then sees every application before it. */
  private apply(view: NetworkView): Promise<void> {
    return this.applying.run(view.id, () => this.applyNow(view));
  }

  private async applyNow(view: NetworkView) {
    if ((this.applied.get(view.id) ?? -1) > view.version) return;
    try {
      const signalled = await this.network.updateDhcpHosts(view.definition);
      this.applied.set(view.id, view.version);
      if (signalled) this.log.info('network DHCP hosts converged to the live definition', { network: view.name, version: view.version });
    } catch (e) {
      this.log.warn('could not update the DHCP hosts of a network', { network: view.name, error: String(e) });
    }
  }

  private async takeDown(name: string, why: string) {
    try {
      await this.network.destroyNetwork(name);
      this.log.info('network taken down on this host', { network: name, why });
    } catch (e) {
      this.log.warn('could not take a network down', { network: name, error: String(e) });
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.ac.abort();
    await Promise.all([this.done, this.resyncing]);
  }
}
