import { STORAGE_DISPATCHER_CONSUMER, storageSubjects, storageWorkerConsumer } from '../../contracts/storage/tasks.ts';
import { volStreamSubjects } from '../../contracts/storage/stream.ts';
import { BUCKETS, STREAMS, subjects } from '../../contracts/subjects.ts';
import { DEADLINE_CHECKPOINTS } from '../provision.ts';

/**
 * Who may do what on the bus, as nats-server permissions. Pure data: the server config, the
 * documentation and the tests are all derived from here, so they cannot drift apart.
 *
 * Every principal replies to requests only through `allow_responses` (never by publishing into
 * `_INBOX.>`), and receives replies only under its own inbox prefix `_INBOX.<principal>`.
 */

export const ROLES = ['admin', 'command', 'projector', 'host', 'operator', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export interface Permissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
  /** Lets a service answer requests it received, and nothing else in `_INBOX`. */
  allowResponses?: boolean;
}

/** Durable consumer names, shared with the services that bind to them. */
export const CONSUMERS = {
  /** Retired: the relay of domain tasks, removed where an older version left it. */
  dispatcher: 'dispatcher',
  storageDispatcher: STORAGE_DISPATCHER_CONSUMER,
  projector: 'projector',
  hostTasks: (hostId: string) => `agent-${hostId}`,
  hostStorage: storageWorkerConsumer,
} as const;

export const inboxPrefix = (principal: string) => `_INBOX.${principal}`;

const API = '$JS.API';

/** Reads of a stream without touching its configuration: info, single-message gets and readers of its own. */
const readStream = (stream: string, filter = '>'): string[] => [
  `${API}.STREAM.INFO.${stream}`,
  `${API}.STREAM.MSG.GET.${stream}`,
  `${API}.DIRECT.GET.${stream}`,
  `${API}.DIRECT.GET.${stream}.${filter}`,
  // Ordered consumers: created with their filter in the subject (2.9's extended create), so the
  // filter itself is what the permission allows.
  `${API}.CONSUMER.CREATE.${stream}.*.${filter}`,
  `${API}.CONSUMER.INFO.${stream}.*`,
  `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
  `${API}.CONSUMER.DELETE.${stream}.*`,
];

/** Binding to one durable pull consumer: create or update it with its filter, pull, acknowledge. */
const ownDurable = (stream: string, name: string, opts: { manage: boolean }): string[] => [
  ...(opts.manage
    ? [`${API}.CONSUMER.CREATE.${stream}.${name}`, `${API}.CONSUMER.CREATE.${stream}.${name}.>`, `${API}.CONSUMER.DURABLE.CREATE.${stream}.${name}`, `${API}.CONSUMER.DELETE.${stream}.${name}`]
    : []),
  `${API}.CONSUMER.INFO.${stream}.${name}`,
  `${API}.CONSUMER.MSG.NEXT.${stream}.${name}`,
  `$JS.ACK.${stream}.${name}.>`,
];

/** The durable consumers on EVENTS, each bound by one service. */
const EVENTS_DURABLES = [CONSUMERS.dispatcher, CONSUMERS.storageDispatcher, CONSUMERS.projector];

/**
 * A reader of EVENTS may make its own ordered consumers, whose names are random and so cannot be
 * allowed one by one; what it must not do is reach a service's durable consumer through the same
 * wildcards: look at it, pull its messages away, reconfigure or delete it.
 */
const othersDurables = (stream: string, durables: string[], mine: string[] = []): string[] =>
  durables
    .filter((d) => !mine.includes(d))
    .flatMap((d) => [`${API}.CONSUMER.*.${stream}.${d}`, `${API}.CONSUMER.*.*.${stream}.${d}`, `${API}.CONSUMER.CREATE.${stream}.${d}.>`, `$JS.ACK.${stream}.${d}.>`]);

const kvStream = (bucket: string) => `KV_${bucket}`;
/**
 * Read and write a KV bucket (keys under `key`, all by default). Limited to one key, a reader gets
 * no single-message get whose subject is in the request body (`STREAM.MSG.GET`, a bare
 * `DIRECT.GET`): with those, the key in the permission would bind nothing. Its own key is read
 * with the direct get that names the key in the subject, which is how nats.js reads a bucket that
 * allows direct gets (ours all do).
 */
const kv = (bucket: string, opts: { write: boolean; key?: string }): string[] => {
  const key = opts.key ?? '>';
  const stream = kvStream(bucket);
  const reads = readStream(stream, `$KV.${bucket}.${key}`);
  return [
    ...(opts.write ? [`$KV.${bucket}.${key}`] : []),
    ...(key === '>' ? reads : reads.filter((s) => s !== `${API}.STREAM.MSG.GET.${stream}` && s !== `${API}.DIRECT.GET.${stream}`)),
    `${API}.DIRECT.GET.${stream}.$KV.${bucket}.${key}`,
  ];
};

const VIEW_BUCKETS = [BUCKETS.domains, BUCKETS.hosts, BUCKETS.networks, BUCKETS.pools, BUCKETS.secrets];

/** Principals that only read and ask: the lifecycle feed (domains and networks). */
const lifecycleFeed = (): string[] => readStream(STREAMS.lifecycle);

export const permissionsFor = (role: Role, principal: string): Permissions => {
  const inbox = `${inboxPrefix(principal)}.>`;
  switch (role) {
    case 'admin':
      return {
        // Stream management, and nothing that writes history: events come only from the command service.
        publish: {
          allow: [`${API}.>`],
          deny: [`${API}.STREAM.PURGE.${STREAMS.events}`, `${API}.STREAM.MSG.DELETE.${STREAMS.events}`, `${API}.STREAM.DELETE.${STREAMS.events}`],
        },
        subscribe: { allow: [inbox] },
      };
    case 'command':
      // The command service, its dispatchers and deadline keeping: one process, one principal.
      return {
        publish: {
          allow: [
            `${API}.INFO`,
            `${API}.STREAM.INFO.*`,
            subjects.allEvents,
            subjects.allTasks,
            // restore reads the definition a saved image records on the host that holds it; no other reading.
            subjects.hostRead('*', 'save-image'),
            ...readStream(STREAMS.events),
            // Tasks are published by the command that records them; the consumer that once relayed them is only removed.
            `${API}.CONSUMER.DELETE.${STREAMS.events}.${CONSUMERS.dispatcher}`,
            ...ownDurable(STREAMS.events, CONSUMERS.storageDispatcher, { manage: true }),
            ...kv(BUCKETS.hostLiveness, { write: true }),
            ...kv(DEADLINE_CHECKPOINTS, { write: true }),
            // Secret values' ciphertext: nobody else reads or writes these buckets (SECURITY.md, "Secrets").
            ...kv(BUCKETS.secretValues, { write: true }),
            ...kv(BUCKETS.secretValuesMemory, { write: true }),
          ],
          deny: othersDurables(STREAMS.events, EVENTS_DURABLES, [CONSUMERS.dispatcher, CONSUMERS.storageDispatcher]),
        },
        subscribe: { allow: [subjects.commandFor('*', '*', '*'), 'agent.*.*', inbox] },
        allowResponses: true,
      };
    case 'projector':
      return {
        publish: {
          allow: [
            `${API}.INFO`,
            `${API}.STREAM.INFO.*`,
            ...readStream(STREAMS.events),
            ...ownDurable(STREAMS.events, CONSUMERS.projector, { manage: true }),
            ...VIEW_BUCKETS.flatMap((b) => kv(b, { write: true })),
            // Where this replica's views stand in the log, read before the views at start.
            ...kv(BUCKETS.projectorPosition, { write: true }),
            ...kv(BUCKETS.hostLiveness, { write: false }),
            subjects.allLifecycle,
            subjects.allNetworkLifecycle,
            ...lifecycleFeed(),
            // Host-scoped questions are answered by asking the full query with the host filled in.
            'query.>',
          ],
          deny: othersDurables(STREAMS.events, EVENTS_DURABLES, [CONSUMERS.projector]),
        },
        subscribe: { allow: ['query.>', subjects.hostQuery('*', '*', '*'), inbox] },
        allowResponses: true,
      };
    case 'host': {
      // `principal` is the host id: the server, not the agent, decides which host it speaks for.
      const h = principal;
      return {
        publish: {
          allow: [
            `${API}.INFO`,
            `${API}.STREAM.INFO.${STREAMS.tasks}`,
            `${API}.STREAM.INFO.${STREAMS.lifecycle}`,
            `${API}.STREAM.INFO.${kvStream(BUCKETS.hostLiveness)}`,
            `agent.${h}.*`,
            subjects.hostQuery(h, '*', '*'),
            // Networks are shared by the fleet: a guest joins one by name.
            subjects.query('network', 'get'),
            // Only its own durable consumers, made at enrolment: it can pull and ack, and make one
            // again should the server have lost it, but only under its own name with its own filter
            // (the filter is part of the subject the server checks), and never delete one.
            ...hostConsumers(h, 0).flatMap((c) => [...ownDurable(c.stream, c.name, { manage: false }), `${API}.CONSUMER.CREATE.${c.stream}.${c.name}.${c.filterSubject}`]),
            // Which networks start and stop, to keep its bridges in step; not the domains' feed.
            `${API}.CONSUMER.CREATE.${STREAMS.lifecycle}.*.${subjects.allNetworkLifecycle}`,
            `${API}.CONSUMER.INFO.${STREAMS.lifecycle}.*`,
            `${API}.CONSUMER.MSG.NEXT.${STREAMS.lifecycle}.*`,
            `${API}.CONSUMER.DELETE.${STREAMS.lifecycle}.*`,
            // Its own liveness key only, should it renew it directly.
            ...kv(BUCKETS.hostLiveness, { write: true, key: h }),
            // What its own guests write on their consoles; never into another host's sessions.
            subjects.consoleOut(h, '*'),
          ],
        },
        // Live readings operators ask of this host only (services/host-agent/live-reads.ts), vol-upload
        // and vol-download of its own pools' volumes, and console sessions of its own guests: answered,
        // never sent; another host's are neither its to hear nor to publish on.
        subscribe: { allow: [inbox, `hostread.${h}.*`, volStreamSubjects.all(h), subjects.consoleOpen(h, '*'), subjects.consoleIn(h, '*')] },
        // It answers what it is asked, and nothing else in `_INBOX`.
        allowResponses: true,
      };
    }
    case 'operator':
      return {
        publish: {
          allow: [`${API}.INFO`, subjects.commandFor(principal, '*', '*'), 'query.>', 'hostread.*.*', ...lifecycleFeed(), volStreamSubjects.all('*'), subjects.consoleOpen('*', principal), subjects.consoleIn('*', '*')],
        },
        // Guests' consoles (virsh console): operators may use any guest's console, auditors none.
        subscribe: { allow: [inbox, subjects.consoleOut('*', '*')] },
      };
    case 'auditor':
      return {
        publish: { allow: [`${API}.INFO`, 'query.>', ...lifecycleFeed(), ...readStream(STREAMS.events)], deny: othersDurables(STREAMS.events, EVENTS_DURABLES) },
        subscribe: { allow: [inbox] },
      };
  }
};

/** The durable consumers a host's agent pulls from, made for it at enrolment. */
export const hostConsumers = (hostId: string, ackWaitMs: number) => [
  // The same settings the agent's task workers ask for, so binding to them changes nothing.
  { stream: STREAMS.tasks, name: CONSUMERS.hostTasks(hostId), filterSubject: subjects.task(hostId), ackWaitMs, maxAckPending: 1024 },
  { stream: STREAMS.tasks, name: CONSUMERS.hostStorage(hostId), filterSubject: storageSubjects.task(hostId), ackWaitMs, maxAckPending: 256 },
];
