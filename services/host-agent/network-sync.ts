import { DeliverPolicy } from '@nats-io/jetstream';
import { isVirtError } from '../../contracts/errors.ts';
import { NetworkLifecycleEvent } from '../../contracts/network/lifecycle.ts';
import type { NetworkView } from '../../contracts/network/views.ts';
import { STREAMS, subjects } from '../../contracts/subjects.ts';
import type { NetworkHost } from '../../drivers/network/index.ts';
import type { Logger } from '../../platform/log.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';

/**
 * A network is realised on a host only while guests use it; when the network is destroyed or
 * undefined fleet-wide, every host takes its bridge, rules and DHCP down, guests' devices staying
 * detached (libvirt's net-destroy). Events missed while the agent was away are caught on start by
 * comparing what the host has with the views.
 */
export class NetworkSync {
  private readonly ac = new AbortController();
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly n: Nats,
    private readonly network: NetworkHost,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (const realised of this.network.listNetworks()) {
      const active = await call<{ network: NetworkView }>(this.n.nc, subjects.query('network', 'get'), { network: realised.name })
        .then((r) => r.network.active && r.network.id === realised.uuid)
        .catch((e) => (isVirtError(e) && e.code === 'no-network' ? false : true));
      if (!active) await this.takeDown(realised.name, 'not active in the fleet');
    }
    const consumer = await this.n.js.consumers.get(STREAMS.lifecycle, { filter_subjects: subjects.allNetworkLifecycle, deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume();
    this.ac.signal.addEventListener('abort', () => void messages.close(), { once: true });
    this.done = (async () => {
      for await (const m of messages) {
        const e = NetworkLifecycleEvent.safeParse(decodeJson(m.data));
        if (!e.success || (e.data.event !== 'STOPPED' && e.data.event !== 'UNDEFINED')) continue;
        const mine = this.network.listNetworks().find((r) => r.uuid === e.data.networkId);
        if (mine) await this.takeDown(mine.name, `network ${e.data.event.toLowerCase()}`);
      }
    })().catch((e) => this.log.warn('network event feed ended', { error: String(e) }));
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
    this.ac.abort();
    await this.done;
  }
}
