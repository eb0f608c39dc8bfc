import { RetentionPolicy, StorageType, DiscardPolicy, type StreamConfig } from '@nats-io/jetstream';
import { BUCKETS, STREAMS, subjects } from '../contracts/subjects.ts';
import type { Nats } from './nats.ts';

const nanos = (ms: number) => ms * 1_000_000;
/** How long the server remembers command ids; after it, the aggregates' own memory answers retries. */
export const duplicateWindowMs = (): number => Number(process.env.VIRTPLANE_DUPLICATE_WINDOW_MS ?? 2 * 60_000);

/**
 * How long TASKS remembers task ids. Longer than the longest operation timeout (an hour) plus a
 * margin, and the dispatcher never publishes a task past its deadline: a commit redelivered after a
 * dispatcher crash either falls inside this window (the server drops the copy) or is past the
 * task's deadline (nothing is published). No task is given to a host twice either way.
 */
export const TASK_DUPLICATE_WINDOW_MS = 65 * 60_000;

export const streamConfigs = (replicas: number, windowMs = duplicateWindowMs()): Array<Partial<StreamConfig> & { name: string; subjects: string[] }> => [
  {
    name: STREAMS.events,
    subjects: [subjects.allEvents],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    // The log is the audit trail: nothing may remove a message from it.
    deny_delete: true,
    deny_purge: true,
    duplicate_window: nanos(windowMs),
    allow_direct: true,
    discard: DiscardPolicy.New,
  },
  {
    name: STREAMS.tasks,
    subjects: [subjects.allTasks],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(Math.max(windowMs, TASK_DUPLICATE_WINDOW_MS)),
  },
  {
    name: STREAMS.lifecycle,
    subjects: [subjects.allLifecycle, subjects.allNetworkLifecycle],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: nanos(7 * 24 * 3600_000),
    duplicate_window: nanos(windowMs),
  },
];

/**
 * Where deadline keepers leave what they folded from the log (a position and the operations in
 * flight at it), so a restarted keeper reads on from there rather than from the start. Only a
 * shortcut: each entry is a state the log itself produced at that position.
 */
export const DEADLINE_CHECKPOINTS = 'deadline-checkpoints';

/** What a host agent uses, and so all it may look at on a secured server: its tasks, the feed, liveness. */
export const HOST_AGENT_NEEDS = { streams: [STREAMS.tasks, STREAMS.lifecycle], buckets: [BUCKETS.hostLiveness] };

/**
 * Creates what is missing and leaves what exists: safe to run from every service at start-up. `only`
 * limits it to what the caller uses, for principals that may not look at the rest.
 */
export const provision = async (n: Nats, replicas = 1, only?: { streams: string[]; buckets: string[] }): Promise<void> => {
  for (const cfg of streamConfigs(replicas).filter((c) => !only || only.streams.includes(c.name))) {
    try {
      const { config } = await n.jsm.streams.info(cfg.name);
      // A stream made by an older release gains the subjects added since (netlifecycle.>).
      const missing = cfg.subjects.filter((s) => !config.subjects?.includes(s));
      const window = cfg.duplicate_window !== undefined && config.duplicate_window < cfg.duplicate_window ? { duplicate_window: cfg.duplicate_window } : {};
      if (missing.length > 0 || 'duplicate_window' in window) {
        await n.jsm.streams.update(cfg.name, { subjects: [...(config.subjects ?? []), ...missing], ...window });
      }
    } catch {
      try {
        await n.jsm.streams.add(cfg);
      } catch (e) {
        // Another service created it between our look and our add.
        await n.jsm.streams.info(cfg.name).catch(() => {
          throw e;
        });
      }
    }
  }
  const wanted = (name: string) => !only || only.buckets.includes(name);
  for (const bucket of [BUCKETS.domains, BUCKETS.hosts, BUCKETS.networks, BUCKETS.pools, BUCKETS.secrets, BUCKETS.projectorPosition].filter(wanted)) {
    await n.kvm.create(bucket, { replicas, history: 1, storage: StorageType.File });
  }
  // Secret values, as ciphertext only; an ephemeral secret's in memory, as libvirt never writes one to disk.
  if (wanted(BUCKETS.secretValues)) await n.kvm.create(BUCKETS.secretValues, { replicas, history: 1, storage: StorageType.File });
  if (wanted(BUCKETS.secretValuesMemory)) await n.kvm.create(BUCKETS.secretValuesMemory, { replicas, history: 1, storage: StorageType.Memory });
  if (wanted(BUCKETS.hostLiveness)) await provisionLiveness(n, replicas);
  if (wanted(DEADLINE_CHECKPOINTS)) await n.kvm.create(DEADLINE_CHECKPOINTS, { replicas, history: 1, storage: StorageType.File });
};


/**
 * The hosts' leases, on disk like everything else so a server restart keeps them. A bucket an older
 * release kept in memory is replaced: its content is only leases, which the agents write again by
 * themselves (an agent whose renewal finds no lease registers anew).
 */
export const provisionLiveness = async (n: Nats, replicas = 1): Promise<void> => {
  const stream = `KV_${BUCKETS.hostLiveness}`;
  const info = await n.jsm.streams.info(stream).catch(() => null);
  if (info && info.config.storage !== StorageType.File) await n.jsm.streams.delete(stream).catch(() => undefined);
  await n.kvm.create(BUCKETS.hostLiveness, { replicas, history: 1, storage: StorageType.File });
};
