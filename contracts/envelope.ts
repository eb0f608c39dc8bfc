import { z } from 'zod';
import type { AggregateType } from './subjects.ts';

export const TraceContext = z.object({ traceparent: z.string().optional(), tracestate: z.string().optional() });
export type TraceContext = z.infer<typeof TraceContext>;

/**
 * What every stored event carries besides its type and data. `version` is not stored: it is the
 * stream sequence of the commit that holds the event, added when the event is read back.
 */
export const EventMeta = z.object({
  id: z.string(),
  aggregateType: z.enum(['domain', 'host', 'network', 'pool', 'secret', 'name']),
  aggregateId: z.string(),
  time: z.iso.datetime(),
  /** The authenticated principal (or, on a server without authentication, what the client claimed). */
  actor: z.string(),
  /** What the client said about itself (`--actor`), kept beside the proven actor, never instead of it. */
  actorNote: z.string().optional(),
  commandId: z.string(),
  causationId: z.string(),
  correlationId: z.string(),
  traceContext: TraceContext,
  schemaVersion: z.number().int().positive(),
});
export type EventMeta = z.infer<typeof EventMeta>;

/** One command's events, stored as one message so they land atomically (2.9 has no batch publish). */
export const Commit = z.object({
  commandId: z.string(),
  /** The aggregate version the events were decided against: lets readers tell whether they missed a commit. */
  previousVersion: z.number().int().nonnegative().optional(),
  events: z.array(z.looseObject({ type: z.string(), data: z.unknown() }).and(EventMeta)),
});
export type Commit = z.infer<typeof Commit>;

export type Envelope<E extends { type: string; data: unknown }> = E & EventMeta & { version: number };

/** Who issued a command and why: copied onto every event the command causes. */
export interface CommandMeta {
  commandId: string;
  actor: string;
  actorNote?: string;
  correlationId: string;
  causationId: string;
  traceContext: TraceContext;
  /** The decider's clock: injected so deciders stay pure. */
  now: Date;
}

export const stamp = <E extends { type: string; data: unknown }>(
  aggregateType: AggregateType,
  aggregateId: string,
  meta: CommandMeta,
  events: E[],
  newId: () => string,
): Array<E & EventMeta> =>
  events.map((e) => ({
    ...e,
    id: newId(),
    aggregateType,
    aggregateId,
    time: meta.now.toISOString(),
    actor: meta.actor,
    ...(meta.actorNote !== undefined ? { actorNote: meta.actorNote } : {}),
    commandId: meta.commandId,
    causationId: meta.causationId,
    correlationId: meta.correlationId,
    traceContext: meta.traceContext,
    schemaVersion: 1,
  }));
