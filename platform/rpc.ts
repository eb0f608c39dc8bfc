import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { errors as natsErrors, headers } from '@nats-io/transport-node';
import { context } from '@opentelemetry/api';
import { contextFrom, inSpan, traceparentOf } from './telemetry.ts';
import type { z } from 'zod';
import { ErrorReply, fromZodError, isVirtError, VirtError, type VirtErrorBody } from '../contracts/errors.ts';
import { decodeJson, decodeText, encodeJson } from './nats.ts';
import type { Logger } from './log.ts';

/**
 * Request/reply on both sides. A handler never sees unparsed input: malformed JSON and schema
 * violations are answered with structured errors before it runs, and nothing it throws escapes as
 * anything but `{ok: false, error}`.
 */

/** `traceparent` is the handler's own span, to be recorded on whatever the request causes. */
export type Handler<T> = (req: T, msg: Msg, traceparent: string | undefined) => Promise<Record<string, unknown>>;

export const parseRequest = <S extends z.ZodType>(schema: S, data: Uint8Array): z.infer<S> => {
  let raw: unknown;
  try {
    raw = data.length === 0 ? {} : JSON.parse(decodeText(data));
  } catch (e) {
    throw new VirtError('invalid-arg', `malformed JSON: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw fromZodError(parsed.error);
  return parsed.data;
};

export const errorBody = (e: unknown, log?: Logger): VirtErrorBody => {
  if (isVirtError(e)) return e.toBody();
  log?.error('unexpected error', { error: (e as Error)?.stack ?? String(e) });
  return { code: 'internal-error', message: `internal error: ${(e as Error)?.message ?? String(e)}` };
};

export const serve = <S extends z.ZodType>(
  nc: NatsConnection,
  subject: string,
  queue: string | undefined,
  schema: S,
  handler: Handler<z.infer<S>>,
  log?: Logger,
): Subscription => {
  const sub = nc.subscribe(subject, {
    ...(queue ? { queue } : {}),
    callback: (err, msg) => {
      if (err) return;
      void (async () => {
        const reply = await inSpan(msg.subject, contextFrom(msg.headers), async (span) => {
          try {
            const req = parseRequest(schema, msg.data);
            return { ok: true, ...(await handler(req, msg, traceparentOf(span))) };
          } catch (e) {
            span.setStatus({ code: 2, message: (e as Error).message });
            return { ok: false, error: errorBody(e, log) };
          }
        });
        if (msg.reply) respondSafely(nc, msg, reply, subject, log);
      })();
    },
  });
  return sub;
};

/**
 * Answers a request without ever throwing: a reply over the server's payload limit (or one the
 * connection refuses) becomes a structured error, so one oversized view cannot take a service down.
 */
const respondSafely = (nc: NatsConnection, msg: Msg, reply: Record<string, unknown>, subject: string, log?: Logger): void => {
  const fail = (message: string) => {
    log?.error('reply not sent', { subject, error: message });
    try {
      msg.respond(encodeJson({ ok: false, error: { code: 'operation-failed', message } satisfies VirtErrorBody }));
    } catch (e) {
      log?.error('error reply not sent either', { subject, error: String(e) });
    }
  };
  let data: Uint8Array;
  try {
    data = encodeJson(reply);
  } catch (e) {
    return fail(`the reply could not be encoded: ${(e as Error).message}`);
  }
  const max = nc.info?.max_payload;
  if (max !== undefined && data.length > max) {
    return fail(`the reply (${data.length} bytes) is larger than the server's payload limit (${max} bytes)`);
  }
  try {
    msg.respond(data);
  } catch (e) {
    fail(`the reply could not be sent: ${(e as Error).message}`);
  }
};

/** Sends a request and returns the `ok` reply, or throws the reply's error as a VirtError. */
export const call = async <T = Record<string, unknown>>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  timeoutMs = 10_000,
): Promise<T & { ok: true }> => {
  let msg: Msg;
  try {
    msg = await inSpan(`request ${subject}`, context.active(), (span) => {
      const h = headers();
      const tp = traceparentOf(span);
      if (tp) h.set('traceparent', tp);
      return nc.request(subject, encodeJson(body), { timeout: timeoutMs, headers: h });
    });
  } catch (e) {
    if (e instanceof natsErrors.NoRespondersError) {
      throw new VirtError('operation-failed', `no service answers ${subject}: is virtplane running?`);
    }
    if (e instanceof natsErrors.TimeoutError) {
      throw new VirtError('timeout', `no reply on ${subject} within ${timeoutMs} ms`);
    }
    throw e;
  }
  const reply = decodeJson(msg.data) as { ok?: boolean };
  if (reply.ok === true) return reply as T & { ok: true };
  const err = ErrorReply.safeParse(reply);
  if (err.success) throw new VirtError(err.data.error.code, err.data.error.message, err.data.error.details);
  throw new VirtError('internal-error', `unexpected reply on ${subject}`);
};
