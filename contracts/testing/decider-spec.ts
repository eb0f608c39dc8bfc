import { expect } from 'vitest';
import type { Envelope, EventMeta } from '../envelope.ts';
import type { ErrorCode } from '../errors.ts';
import { isVirtError } from '../errors.ts';
import type { AggregateType } from '../subjects.ts';

/**
 * Given events / when command / then events, for any pure decider. Each given event becomes its own
 * commit with the next version, so a test reads like the log it stands for; the decided events are
 * folded as one commit, as the command service stores them.
 */

export interface Decider<S, C, E extends { type: string; data: unknown }> {
  decide: (command: C, state: S, now: Date) => E[];
  evolve: (state: S, event: Envelope<E>) => S;
  initialState: () => S;
}

/** A given event may pin the envelope fields a test needs to refer to, such as the id (a task id). */
export type GivenEvent<E> = E & Partial<Pick<EventMeta, 'id' | 'time' | 'commandId'>>;

export interface SpecOptions {
  aggregateType?: AggregateType;
  aggregateId?: string;
  /** Time of the first given event; each later one is a second after it. */
  epoch?: Date;
}

export interface Outcome<S> {
  /** The state the command was decided against. */
  before: S;
  /** The state after folding the decided events. */
  after: S;
}

export interface When<S, E> {
  then(expected: E[]): Outcome<S>;
  /** No events: the command changes nothing. */
  thenNothing(): Outcome<S>;
  thenThrows(code: ErrorCode, message?: RegExp | string): void;
  /** The raw decision, for assertions `then` cannot express. */
  decided(): E[];
}

export interface Given<S, C, E extends { type: string; data: unknown }> {
  readonly state: S;
  readonly envelopes: Array<Envelope<E>>;
  when(command: C, now?: Date): When<S, E>;
}

export const DEFAULT_EPOCH = new Date('2025-01-01T00:00:00.000Z');

export const deciderSpec = <S, C, E extends { type: string; data: unknown }>(
  decider: Decider<S, C, E>,
  options: SpecOptions = {},
) => {
  const aggregateType = options.aggregateType ?? 'domain';
  const aggregateId = options.aggregateId ?? '00000000-0000-4000-8000-000000000001';
  const epoch = options.epoch ?? DEFAULT_EPOCH;

  const envelope = (e: GivenEvent<E>, version: number, index: number, commandId: string, time: string): Envelope<E> => {
    const { id, time: pinnedTime, commandId: pinnedCommand, ...body } = e;
    return {
      ...(body as unknown as E),
      id: id ?? `evt-${version}-${index}`,
      aggregateType,
      aggregateId,
      time: pinnedTime ?? time,
      actor: 'spec',
      commandId: pinnedCommand ?? commandId,
      causationId: pinnedCommand ?? commandId,
      correlationId: pinnedCommand ?? commandId,
      traceContext: {},
      schemaVersion: 1,
      version,
    };
  };

  const given = (events: Array<GivenEvent<E>> = []): Given<S, C, E> => {
    const envelopes = events.map((e, i) =>
      envelope(e, i + 1, 0, `given-${i + 1}`, new Date(epoch.getTime() + i * 1000).toISOString()),
    );
    const state = envelopes.reduce(decider.evolve, decider.initialState());
    const version = envelopes.length;

    const when = (command: C, now: Date = new Date(epoch.getTime() + envelopes.length * 1000)): When<S, E> => {
      const decided = () => decider.decide(command, state, now);
      const fold = (out: E[]): Outcome<S> => ({
        before: state,
        after: out
          .map((e, i) => envelope(e as GivenEvent<E>, version + 1, i, 'when', now.toISOString()))
          .reduce(decider.evolve, state),
      });
      return {
        decided,
        then(expected) {
          const out = decided();
          expect(out).toEqual(expected);
          return fold(out);
        },
        thenNothing() {
          const out = decided();
          expect(out).toEqual([]);
          return fold(out);
        },
        thenThrows(code, message) {
          let thrown: unknown;
          let out: E[] | undefined;
          try {
            out = decided();
          } catch (err) {
            thrown = err;
          }
          if (thrown === undefined) {
            throw new Error(`expected ${code} but the command was accepted with ${JSON.stringify(out)}`);
          }
          if (!isVirtError(thrown)) throw thrown;
          expect(thrown.code).toBe(code);
          if (typeof message === 'string') expect(thrown.message).toBe(message);
          else if (message) expect(thrown.message).toMatch(message);
        },
      };
    };
    return { state, envelopes, when };
  };

  return { given };
};
