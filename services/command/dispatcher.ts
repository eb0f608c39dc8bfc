import { durableConsumer, processByKey } from '../../platform/durable-consumer.ts';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { evolve, initialDomainState, OP_OF, type DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody, DomainOp } from '../../contracts/domain/events.ts';
import type { Envelope } from '../../contracts/envelope.ts';
import { STREAMS, subjects } from '../../contracts/subjects.ts';
import type { DomainTask } from '../../contracts/tasks.ts';
import { toRecordedCommit, type EventStore } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, type Nats } from '../../platform/nats.ts';

const INTENT_OPS: Partial<Record<DomainEventBody['type'], DomainOp>> = OP_OF;

export const DISPATCHER_CONSUMER = 'dispatcher';

/**
 * Turns intent events into tasks on `task.<hostId>`. It folds every domain commit it consumes, so it
 * knows the exact definition each intent refers to.
 *
 * Any number of replicas share one durable consumer; within a replica, one domain's commits are
 * handled in log order and different domains side by side. No task is published twice: its message
 * id is the intent event id, TASKS remembers ids longer than any operation's timeout, and a task is
 * never published past its deadline, so a commit redelivered (to this replica or another) after the
 * first publish either meets the duplicate check or is too late to publish. Two replicas handling
 * two intents of one domain at once cannot run them out of order on the host: a domain has one
 * operation pending at a time, and the host runs a task only while it is the pending one (its claim).
 */
export class Dispatcher {
  private readonly states = new Map<string, DomainAggregate>();
  private running: { stop(): Promise<void> } | null = null;

  constructor(
    private readonly n: Nats,
    private readonly store: EventStore,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const consumer = await durableConsumer(this.n, {
      stream: STREAMS.events,
      name: DISPATCHER_CONSUMER,
      filterSubject: 'ev.domain.>',
      ackWaitMs: 30_000,
      maxAckPending: 1024,
    });
    this.running = await processByKey(
      consumer,
      (m) => m.subject,
      (m) => this.handle(toRecordedCommit({ seq: m.seq, subject: m.subject, data: m.data })),
      (m, e) => this.log.error('dispatch failed; will be redelivered', { seq: m.seq, error: String(e) }),
    );
  }

  async stop(): Promise<void> {
    await this.running?.stop();
  }

  /**
   * The domain as it was just before this commit. What this process folded is topped up from the log,
   * because another replica (or a run before a restart) may have consumed commits in between.
   */
  private async stateBefore(id: string, seq: number, previousVersion?: number): Promise<DomainAggregate> {
    const known = this.states.get(id);
    if (previousVersion !== undefined && (known?.version ?? 0) === previousVersion) return known ?? initialDomainState(id);
    const base = known && known.version < seq ? known : initialDomainState(id);
    const commits = await this.store.read(subjects.aggregate('domain', id), base.version, seq);
    return commits
      .flatMap((c) => c.events)
      .reduce((s, e) => evolve(s, e as unknown as Envelope<DomainEventBody>), base);
  }

  private async handle(commit: ReturnType<typeof toRecordedCommit>): Promise<void> {
    const id = commit.subject.slice('ev.domain.'.length);
    let state = await this.stateBefore(id, commit.seq, commit.previousVersion);
    for (const raw of commit.events) {
      const e = raw as unknown as Envelope<DomainEventBody>;
      const op = INTENT_OPS[e.type];
      state = evolve(state, e);
      if (!op || !('deadline' in e.data) || !state.definition) continue;
      const task: DomainTask = {
        kind: 'domain',
        taskId: e.id,
        op,
        domainId: id,
        name: state.name,
        version: e.version,
        placementEpoch: e.data.placementEpoch,
        deadline: e.data.deadline,
        ...(e.data.paused ? { paused: true } : {}),
        // Whether to resume from a saved state is the log's to say: managedsave-remove leaves it false.
        ...(op === 'start' && state.managedSave && e.data.file === undefined ? { restore: true } : {}),
        ...(e.data.iface ? { iface: e.data.iface } : {}),
        ...(e.data.mac ? { mac: e.data.mac } : {}),
        ...(e.data.memoryKiB !== undefined ? { memoryKiB: e.data.memoryKiB } : {}),
        ...(e.data.vcpus !== undefined ? { vcpus: e.data.vcpus } : {}),
        ...(e.data.disk ? { disk: e.data.disk } : {}),
        ...(e.data.target ? { target: e.data.target } : {}),
        ...(e.data.file !== undefined ? { file: e.data.file } : {}),
        ...(e.data.snapshot ? { snapshot: e.data.snapshot } : {}),
        ...(e.data.keys ? { keys: e.data.keys } : {}),
        ...(e.data.bytes !== undefined ? { bytes: e.data.bytes } : {}),
        ...(e.data.screen !== undefined ? { screen: e.data.screen } : {}),
        definition: state.definition,
        correlationId: e.correlationId,
        ...(e.traceContext.traceparent ? { traceparent: e.traceContext.traceparent } : {}),
      };
      if (Date.parse(task.deadline) <= Date.now()) {
        // The host would refuse it; the deadline keeper records the timeout.
        this.log.info('not dispatching a task past its deadline', { taskId: task.taskId, op });
        continue;
      }
      const h = natsHeaders();
      if (task.traceparent) h.set('traceparent', task.traceparent);
      await this.n.js.publish(subjects.task(e.data.hostId), encodeJson(task), { msgID: task.taskId, headers: h });
    }
    if (state.exists) this.states.set(id, state);
    else this.states.delete(id);
  }
}
