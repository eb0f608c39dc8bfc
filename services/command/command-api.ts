import { randomUUID } from 'node:crypto';
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { z } from 'zod';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { commandPrincipal, QUEUES, subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';

type MetaRequest = { commandId?: string | undefined; actor?: string | undefined; correlationId?: string | undefined };

/**
 * The command's metadata. On an authenticated server the actor is the principal named in the subject,
 * which the server allows each principal to publish under only for itself; what the client says about
 * itself (`actor` in the body) is kept beside it as a note. Only a request on the unauthenticated form
 * (`cmd.<aggregate>.<verb>`, served only when the server has no authentication) is taken at its word.
 */
export const metaFrom = (req: MetaRequest, traceparent: string | undefined, msg?: Pick<Msg, 'subject'>): CommandMeta => {
  const commandId = req.commandId ?? randomUUID();
  const principal = msg ? commandPrincipal(msg.subject) : undefined;
  return {
    commandId,
    actor: principal ?? req.actor ?? 'anonymous',
    ...(principal !== undefined && req.actor !== undefined && req.actor !== principal ? { actorNote: req.actor } : {}),
    correlationId: req.correlationId ?? commandId,
    causationId: commandId,
    traceContext: traceparent ? { traceparent } : {},
    now: new Date(),
  };
};

export type CommandHandler<T> = (req: T, meta: CommandMeta, msg: Msg) => Promise<Record<string, unknown>>;

export interface CommandApi {
  metaFrom: typeof metaFrom;
  /** Serves `<aggregate>.<verb>` for every principal, and in the unauthenticated form when there is no authentication. */
  serve<S extends z.ZodType<MetaRequest>>(aggregate: string, verb: string, schema: S, handler: CommandHandler<z.infer<S>>): Subscription[];
}

export const commandApi = (n: Nats, log: Logger): CommandApi => ({
  metaFrom,
  serve(aggregate, verb, schema, handler) {
    const forms = [subjects.commandFor('*', aggregate, verb), ...(n.principal === undefined ? [subjects.command(aggregate, verb)] : [])];
    return forms.map((subject) => serve(n.nc, subject, QUEUES.command, schema, (r, m, tp) => handler(r, metaFrom(r, tp, m), m), log));
  },
});
