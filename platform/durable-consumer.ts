import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { withJsRetry } from './js-retry.ts';
import { KeyedQueue } from './keyed-queue.ts';
import type { Nats } from './nats.ts';

export interface DurableConsumerOptions {
  stream: string;
  name: string;
  /** One subject (2.9 servers have no multi-filter consumers). */
  filterSubject: string;
  ackWaitMs: number;
  maxAckPending: number;
}

/**
 * Binds to a durable pull consumer with explicit acks, creating it when it is missing (another
 * replica may create it at the same moment) and bringing its ack wait up to date when the
 * configuration changed since it was made. Each step waits out a cluster's leader election.
 */
export const durableConsumer = async (n: Nats, o: DurableConsumerOptions): Promise<Consumer> => {
  const config = {
    durable_name: o.name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: o.filterSubject,
    ack_wait: o.ackWaitMs * 1_000_000,
    max_ack_pending: o.maxAckPending,
  };
  const what = `consumer ${o.name} on ${o.stream}`;
  const info = () =>
    withJsRetry(what, () =>
      n.jsm.consumers.info(o.stream, o.name).catch((e) => {
        if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound) return null;
        throw e;
      }),
      { nc: n.nc },
    );
  const existing = await info();
  if (!existing) {
    await withJsRetry(what, () => n.jsm.consumers.add(o.stream, config), { nc: n.nc }).catch(async (e) => {
      if (!(await info())) throw e;
    });
  } else if (existing.config.ack_wait !== config.ack_wait) {
    await withJsRetry(what, () => n.jsm.consumers.update(o.stream, o.name, { ack_wait: config.ack_wait }), { nc: n.nc });
  }
  return withJsRetry(what, () => n.js.consumers.get(o.stream, o.name), { nc: n.nc });
};

/**
 * Hands each message to `handle`: messages with the same key are handled one at a time in stream
 * order, different keys side by side (at most `maxInFlight` at once). Each message is acknowledged
 * once handled, and asked for again a second later when handling failed, so nothing is lost to a
 * passing error.
 */
export const processByKey = async (
  consumer: Consumer,
  key: (m: JsMsg) => string,
  handle: (m: JsMsg) => Promise<void>,
  onError: (m: JsMsg, e: unknown) => void,
  maxInFlight = 256,
): Promise<{ stop(): Promise<void> }> => {
  const messages = await consumer.consume({ max_messages: maxInFlight });
  const queue = new KeyedQueue();
  const done = (async () => {
    for await (const m of messages) {
      void queue.run(key(m), async () => {
        try {
          await handle(m);
          m.ack();
        } catch (e) {
          onError(m, e);
          m.nak(1000);
        }
      });
    }
  })();
  return {
    async stop() {
      await messages.close();
      await done;
      await queue.drain();
    },
  };
};
