import { durableConsumer, processByKey } from '../../platform/durable-consumer.ts';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { Envelope } from '../../contracts/envelope.ts';
import type { StorageEventBody } from '../../contracts/storage/events.ts';
import { STORAGE_DISPATCHER_CONSUMER, storageSubjects, type StorageTask } from '../../contracts/storage/tasks.ts';
import { STREAMS } from '../../contracts/subjects.ts';
import { toRecordedCommit, type RecordedCommit } from '../../platform/event-store.ts';
import type { Logger } from '../../platform/log.ts';
import { encodeJson, type Nats } from '../../platform/nats.ts';

/**
 * Turns storage intent events into tasks on `task.<hostId>.storage`. Storage intents carry everything
 * the host needs, so no state is folded here. The task id is the intent event id and is the message
 * id of the task, so a redelivered commit publishes nothing twice (inside the duplicate window; after
 * it, the host's claim refuses a task that is no longer in flight).
 */
export class StorageDispatcher {
  private running: { stop(): Promise<void> } | null = null;

  constructor(
    private readonly n: Nats,
    private readonly log: Logger,
    /** Called for each task with its deadline, so a missed deadline can be recorded. */
    private readonly onTask: (task: StorageTask) => void = () => {},
  ) {}

  async start(): Promise<void> {
    const consumer = await durableConsumer(this.n, {
      stream: STREAMS.events,
      name: STORAGE_DISPATCHER_CONSUMER,
      filterSubject: 'ev.pool.>',
      ackWaitMs: 30_000,
      maxAckPending: 1024,
    });
    // One pool's commits in order, different pools side by side.
    this.running = await processByKey(
      consumer,
      (m) => m.subject,
      (m) => this.handle(toRecordedCommit({ seq: m.seq, subject: m.subject, data: m.data })),
      (m, e) => this.log.error('storage dispatch failed; will be redelivered', { seq: m.seq, error: String(e) }),
    );
  }

  async stop(): Promise<void> {
    await this.running?.stop();
  }

  private async handle(commit: RecordedCommit): Promise<void> {
    const poolId = commit.subject.slice('ev.pool.'.length);
    for (const raw of commit.events) {
      const e = raw as unknown as Envelope<StorageEventBody>;
      const task = taskOf(poolId, e);
      if (!task) continue;
      const h = natsHeaders();
      if (task.traceparent) h.set('traceparent', task.traceparent);
      await this.n.js.publish(storageSubjects.task(hostOf(e)), encodeJson(task), { msgID: task.taskId, headers: h });
      this.onTask(task);
    }
  }
}

const hostOf = (e: Envelope<StorageEventBody>): string => ('hostId' in e.data ? e.data.hostId : '');

export const taskOf = (poolId: string, e: Envelope<StorageEventBody>): StorageTask | null => {
  const base = {
    kind: 'storage' as const,
    taskId: e.id,
    poolId,
    version: e.version,
    correlationId: e.correlationId,
    ...(e.traceContext.traceparent ? { traceparent: e.traceContext.traceparent } : {}),
  };
  switch (e.type) {
    case 'PoolBuildRequested':
      return { ...base, op: 'pool-build', deadline: e.data.deadline, target: e.data.target };
    case 'PoolStartRequested':
      return { ...base, op: 'pool-start', deadline: e.data.deadline, target: e.data.target, build: e.data.build };
    case 'VolumeCreateRequested':
      return { ...base, op: 'vol-create', deadline: e.data.deadline, volume: e.data.volume };
    case 'VolumeDeleteRequested':
      return { ...base, op: 'vol-delete', deadline: e.data.deadline, name: e.data.name, path: e.data.path };
    case 'PoolRefreshRequested':
      return { ...base, op: 'pool-refresh', deadline: e.data.deadline, target: e.data.target };
    case 'PoolDeleteRequested':
      return { ...base, op: 'pool-delete', deadline: e.data.deadline, target: e.data.target };
    case 'VolumeResizeRequested':
      return { ...base, op: 'vol-resize', deadline: e.data.deadline, name: e.data.name, path: e.data.path, capacityBytes: e.data.capacityBytes, shrink: e.data.shrink };
    case 'VolumeWipeRequested':
      return { ...base, op: 'vol-wipe', deadline: e.data.deadline, name: e.data.name, path: e.data.path };
    case 'VolumeCloneRequested':
      return { ...base, op: 'vol-clone', deadline: e.data.deadline, volume: e.data.volume, source: e.data.source };
    default:
      return null;
  }
};
