import { DeliverPolicy } from '@nats-io/jetstream';
import { STREAMS, subjects } from '../../contracts/subjects.ts';
import { toRecordedCommit } from '../../platform/event-store.ts';
import { readBucket } from '../../platform/kv-mirror.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';
import { applyCommit, type Projection } from '../../services/projector/projection.ts';
import { domainProjection, hostProjection, networkProjection, poolProjection } from '../../services/projector/projections.ts';

/**
 * What a rebuild from the log gives, computed in the test: every commit folded once, in order, with
 * the deciders' own evolve, and the lifecycle message ids that fold announces, in order.
 */

const PROJECTIONS = [domainProjection, hostProjection, networkProjection, poolProjection] as Array<Projection<{ version: number }>>;

export interface Folded {
  lastSeq: number;
  /** bucket -> aggregate id -> state (removed aggregates included, as the projector stores them). */
  views: Map<string, Map<string, unknown>>;
  lifecycleIds: string[];
}

/** Every message of a stream from its start, with an ordered consumer. */
const readStream = async <T>(n: Nats, stream: string, filter: string, map: (m: { seq: number; subject: string; data: Uint8Array; msgId?: string }) => T): Promise<T[]> => {
  const out: T[] = [];
  const info = await n.jsm.streams.info(stream);
  if (info.state.messages === 0) return out;
  const consumer = await n.js.consumers.get(stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume();
  for await (const m of messages) {
    out.push(map({ seq: m.seq, subject: m.subject, data: m.data, msgId: m.headers?.get('Nats-Msg-Id') }));
    if (m.info.pending === 0) break;
  }
  await messages.close();
  return out;
};

export const foldLog = async (n: Nats): Promise<Folded> => {
  const views = new Map(PROJECTIONS.map((p) => [p.bucket, new Map<string, { version: number }>()]));
  const lifecycleIds: string[] = [];
  let lastSeq = 0;
  const commits = await readStream(n, STREAMS.events, subjects.allEvents, (m) => m);
  for (const m of commits) {
    lastSeq = m.seq;
    const p = PROJECTIONS.find((x) => m.subject.startsWith(x.prefix));
    if (!p) continue;
    const c = toRecordedCommit(m);
    const states = views.get(p.bucket)!;
    const applied = applyCommit(p, states.get(c.subject.slice(p.prefix.length)), c);
    if (!applied) continue;
    states.set(applied.id, applied.state);
    lifecycleIds.push(...applied.lifecycle.map((l) => l.msgId));
  }
  return { lastSeq, views: views as Map<string, Map<string, unknown>>, lifecycleIds };
};

/** What the projectors stored in KV, bucket by bucket. */
export const storedViews = async (n: Nats): Promise<Map<string, Map<string, unknown>>> => {
  const out = new Map<string, Map<string, unknown>>();
  for (const p of PROJECTIONS) {
    const m = new Map<string, unknown>();
    for (const e of await readBucket(n, p.bucket)) if (e.value) m.set(e.key, decodeJson(e.value));
    out.set(p.bucket, m);
  }
  return out;
};

/** The LIFECYCLE stream's message ids, in stream order. */
export const publishedLifecycleIds = async (n: Nats): Promise<string[]> =>
  readStream(n, STREAMS.lifecycle, '>', (m) => m.msgId ?? `(no id at ${m.seq})`);

/** Keys whose stored state differs from the fold's, bucket by bucket. */
export const divergingViews = (expected: Map<string, Map<string, unknown>>, actual: Map<string, Map<string, unknown>>): string[] => {
  const out: string[] = [];
  for (const [bucket, want] of expected) {
    const got = actual.get(bucket) ?? new Map();
    for (const key of new Set([...want.keys(), ...got.keys()])) {
      if (JSON.stringify(want.get(key)) !== JSON.stringify(got.get(key))) out.push(`${bucket}/${key}`);
    }
  }
  return out;
};

/** Ids the fold announces that the stream lacks, and ids the stream holds more than once. */
export const lifecycleFigures = (expected: string[], published: string[]): { lost: string[]; doubled: string[]; outOfOrder: boolean } => {
  const seen = new Set<string>();
  const doubled: string[] = [];
  for (const id of published) {
    if (seen.has(id)) doubled.push(id);
    seen.add(id);
  }
  const lost = expected.filter((id) => !seen.has(id));
  return { lost, doubled, outOfOrder: JSON.stringify(expected) !== JSON.stringify([...new Set(published)]) };
};
