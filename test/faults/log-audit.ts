import { DeliverPolicy } from '@nats-io/jetstream';
import { STREAMS } from '../../contracts/subjects.ts';
import { toRecordedCommit, type RecordedCommit } from '../../platform/event-store.ts';
import type { Nats } from '../../platform/nats.ts';

/** Every commit on `filter` stored so far, oldest first: what the audit trail holds. */
export const readLog = async (n: Nats, filter = 'ev.>'): Promise<RecordedCommit[]> => {
  const consumer = await n.js.consumers.get(STREAMS.events, { filter_subjects: filter, deliver_policy: DeliverPolicy.All });
  const { num_pending } = await consumer.info();
  const out: RecordedCommit[] = [];
  if (num_pending === 0) return out;
  const messages = await consumer.consume();
  for await (const m of messages) {
    out.push(toRecordedCommit({ seq: m.seq, subject: m.subject, data: m.data }));
    if (m.info.pending === 0) break;
  }
  await messages.close();
  return out;
};

/** How many commits each command id produced: 0 is a lost command, more than 1 a doubled one. */
export const commitsPerCommand = (commits: RecordedCommit[]): Map<string, number> => {
  const counts = new Map<string, number>();
  for (const c of commits) counts.set(c.commandId, (counts.get(c.commandId) ?? 0) + 1);
  return counts;
};

/** Counts what was published on `subject` per message id (core subscribers see every publish, a duplicate too). */
export const countPublished = (n: Nats, subject: string) => {
  const counts = new Map<string, number>();
  const sub = n.nc.subscribe(subject, {
    callback: (_e, m) => {
      const id = m.headers?.get('Nats-Msg-Id') ?? '';
      counts.set(id, (counts.get(id) ?? 0) + 1);
    },
  });
  return { counts, stop: () => sub.unsubscribe() };
};
