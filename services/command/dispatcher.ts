import { headers as natsHeaders } from '@nats-io/transport-node';
import { carriedByIntent, evolve, OP_OF, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody, DomainOp } from '../../contracts/domain/events.ts';
import type { Envelope } from '../../contracts/envelope.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { DomainTask } from '../../contracts/tasks.ts';
import type { EventStore, RecordedEvent } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, type Nats } from '../../platform/nats.ts';
import type { Repository } from './repository.ts';

/**
 * How long an operation may stay in flight before the replicas publish its task again: longer than
 * most operations take, so a copy is rarely sent, and short next to the redelivery wait of a relay.
 */
export const BACKSTOP_MS = 5_000;

const PUBLISHED_LIMIT = 100_000;

const INTENT_OPS: Partial<Record<DomainEventBody['type'], DomainOp>> = OP_OF;

/** The host an intent event asks and its task, or null for an event that asks nothing. `state` is the domain with `e` folded in. */
export const taskOf = (state: DomainAggregate, e: Envelope<DomainEventBody>): { hostId: string; task: DomainTask } | null => {
  const op = INTENT_OPS[e.type];
  if (!op || !('deadline' in e.data) || !state.definition) return null;
  const task: DomainTask = {
    kind: 'domain',
    taskId: e.id,
    op,
    domainId: state.id,
    name: state.name,
    version: e.version,
    placementEpoch: e.data.placementEpoch,
    deadline: e.data.deadline,
    ...(e.data.paused ? { paused: true } : {}),
    // Whether to resume from a saved state is the log's to say: managedsave-remove leaves it false.
    ...(op === 'start' && state.managedSave && e.data.file === undefined ? { restore: true } : {}),
    ...carriedByIntent(e.data),
    ...(e.data.screen !== undefined ? { screen: e.data.screen } : {}),
    definition: state.definition,
    correlationId: e.correlationId,
    ...(e.traceContext.traceparent ? { traceparent: e.traceContext.traceparent } : {}),
  };
  return { hostId: e.data.hostId, task };
};

/**
 * Puts each host's work on `task.<hostId>`, straight from the command that recorded it: no relay
 * reads the log to find it, so a task costs its publish and nothing else, and dispatching scales with
 * the replicas that take commands.
 *
 * No task is lost: a process that dies between recording an intent and publishing its task leaves
 * the intent pending in the log, and every replica's deadline keeper, which knows every operation in
 * flight from the log, hands one still pending after `BACKSTOP_MS` (or found pending when it reads
 * the log at start) to `backstop`, which publishes it again unless this very process published it.
 * No task is given twice: its message id is the intent's event id, TASKS remembers ids longer than any
 * operation's timeout, and nothing is published past its deadline, so every later copy meets the
 * duplicate check. Two intents of one
 * domain cannot run out of order on the host: a domain has one operation pending at a time, and the
 * host runs a task only while it is the pending one (its claim).
 */
export class Dispatcher {
  /**
   * Tasks this process has published and the server stored: its own backstop leaves them alone, so
   * with one replica a task is published again only after a crash. Bounded; the oldest go first.
   */
  private readonly published = new Set<string>();

  constructor(
    private readonly n: Nats,
    private readonly store: EventStore,
    private readonly log: Logger,
  ) {}

  /** After an append: the tasks of its intents, each with the domain as that intent left it. */
  async committed(before: DomainAggregate, events: RecordedEvent[]): Promise<void> {
    // Most commits ask nothing of a host (definitions, reports): no fold for them.
    if (!events.some((e) => INTENT_OPS[e.type as DomainEventBody['type']])) return;
    let state = before;
    for (const raw of events) {
      const e = raw as unknown as Envelope<DomainEventBody>;
      state = evolve(state, e);
      const t = taskOf(state, e);
      if (t) await this.publish(t.hostId, t.task);
    }
  }

  /**
   * An operation still pending a while after it was recorded: its task again, in case the process
   * that recorded it died before publishing it. The domain as it stands now stands in for the domain
   * as the intent left it, which it is while the operation is pending: the claim refuses anything else.
   */
  async backstop(domains: Repository<DomainAggregate, DomainEventBody>, p: { aggregateId: string; taskId: string; seq?: number }): Promise<void> {
    if (this.published.delete(p.taskId)) return;
    const state = await domains.load(p.aggregateId);
    if (state.pending?.taskId !== p.taskId) return;
    const subject = subjects.aggregate('domain', p.aggregateId);
    const commits = p.seq !== undefined ? await this.store.read(subject, p.seq - 1, p.seq + 1) : await this.store.read(subject);
    const intent = commits.flatMap((c) => c.events).find((e) => e.id === p.taskId);
    if (!intent) return;
    const t = taskOf(state, intent as unknown as Envelope<DomainEventBody>);
    if (t) await this.publish(t.hostId, t.task, true);
  }

  private async publish(hostId: string, task: DomainTask, fromBackstop = false): Promise<void> {
    if (Date.parse(task.deadline) <= Date.now()) {
      // The host would refuse it; the deadline keeper records the timeout.
      this.log.info('not dispatching a task past its deadline', { taskId: task.taskId, op: task.op });
      return;
    }
    const h = natsHeaders();
    if (task.traceparent) h.set('traceparent', task.traceparent);
    const ack = await this.n.js.publish(subjects.task(hostId), encodeJson(task), { msgID: task.taskId, headers: h });
    if (!fromBackstop) {
      this.published.add(task.taskId);
      if (this.published.size > PUBLISHED_LIMIT) this.published.delete(this.published.values().next().value!);
    } else if (!ack.duplicate) this.log.warn('published a task its command had not: the process that recorded it stopped first', { taskId: task.taskId, op: task.op, domainId: task.domainId });
  }
}
