import type { RecordedCommit, RecordedEvent } from '../../platform/event-store.ts';

/** A message for the LIFECYCLE stream, derived from one event of one commit. */
export interface LifecycleMessage {
  subject: string;
  /** The Nats-Msg-Id: the event id (with `:n` for the n-th further message one event causes). */
  msgId: string;
  body: unknown;
}

/**
 * One projection of the log, emmett-style: a pure fold of one aggregate type's commits into one
 * state per aggregate. The runtime (ProjectionViews) keeps the states, their KV copies and their
 * names; the projector feeds it every commit once, in log order.
 */
export interface Projection<S extends { version: number }> {
  /** Its commits' subject prefix, e.g. `ev.domain.`; the rest of the subject is the aggregate id. */
  readonly prefix: string;
  /** The KV bucket holding its states. */
  readonly bucket: string;
  initial(id: string): S;
  evolve(state: S, event: RecordedEvent): S;
  /** Whether queries see the aggregate (a removed domain keeps its state for the fold, but no view). */
  visible(state: S): boolean;
  /** The unique name queries look it up by, if it has one. */
  name?(state: S): string;
  /** The group queries may ask for alone (a domain's host), kept in an index so they need not scan every state. */
  group?(state: S): string;
  /** The lifecycle messages of one event, given the state before and after it. */
  lifecycle?(before: S, after: S, event: RecordedEvent): LifecycleMessage[];
}

/** The result of applying one commit: what the state became and what it announces. */
export interface Applied<S> {
  id: string;
  state: S;
  lifecycle: LifecycleMessage[];
}

/**
 * Folds one commit into the aggregate's state; null when the state already reflects it (a view loaded
 * from KV that was written past the position the log is read from).
 */
export const applyCommit = <S extends { version: number }>(p: Projection<S>, current: S | undefined, c: RecordedCommit): Applied<S> | null => {
  const id = c.subject.slice(p.prefix.length);
  let s = current ?? p.initial(id);
  if (c.seq <= s.version) return null;
  const lifecycle: LifecycleMessage[] = [];
  for (const e of c.events) {
    const before = s;
    s = p.evolve(s, e);
    if (p.lifecycle) lifecycle.push(...p.lifecycle(before, s, e));
  }
  // The version is the commit's sequence even when an event leaves it alone: the fold's position.
  if (s.version < c.seq) s = { ...s, version: c.seq };
  return { id, state: s, lifecycle };
};

/** Ids for the lifecycle messages of one event: the event id, then `<id>:1`, `<id>:2`, ... */
export const lifecycleIds = (eventId: string, count: number): string[] =>
  Array.from({ length: count }, (_, i) => (i === 0 ? eventId : `${eventId}:${i}`));
