import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { errors as natsErrors, headers } from '@nats-io/transport-node';
import { context } from '@opentelemetry/api';
import { contextFrom, inSpan, traceparentOf } from './telemetry.ts';
import type { z } from 'zod';
import { ErrorReply, fromZodError, isVirtError, VirtError, type VirtErrorBody } from '../contracts/errors.ts';
import { isRetryable, lastServerLossAt, nextServerLoss } from './js-retry.ts';
import { decodeJson, decodeText, encodeJson, isNoResponders } from './nats.ts';
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

/**
 * The answers to a request that carries several (e.g. `{ reports: [...] }`): each one as a reply of
 * its own would be, `{ ok: true, ... }` or `{ ok: false, error }`, so one refused entry refuses only itself.
 */
export const answerEach = <T, R extends Record<string, unknown>>(items: T[], handle: (item: T) => Promise<R>, log?: Logger) =>
  Promise.all(items.map((item) => handle(item).then((r) => ({ ok: true as const, ...r }), (e: unknown) => ({ ok: false as const, error: errorBody(e, log) }))));

/**
 * The asking side of `answerEach`: one item goes in its own form (its reply, or its error thrown, as
 * `call`), several as `{ [field]: items }`. Each answer, in order, is for `entryResult`.
 */
export const callEach = async (nc: NatsConnection, subject: string, field: string, items: unknown[], timeoutMs?: number): Promise<unknown[]> =>
  items.length === 1 ? [await call(nc, subject, items[0], timeoutMs)] : (await call<{ results: unknown[] }>(nc, subject, { [field]: items }, timeoutMs)).results;

/** One entry of `answerEach` on the asking side: its result, or its error thrown as `call` throws a reply's. */
export const entryResult = <T = Record<string, unknown>>(entry: unknown): T => {
  if ((entry as { ok?: unknown })?.ok === true) return entry as T;
  const err = ErrorReply.safeParse(entry);
  if (!err.success) throw new VirtError('internal-error', 'unexpected entry in a reply');
  throw new VirtError(err.data.error.code, err.data.error.message, err.data.error.details);
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

/** How long a request is sent again while nobody answers its subject (services moving to a surviving node). */
const NO_RESPONDERS_GRACE_MS = 5_000;

/**
 * A request sent just after a server was lost and unanswered this long is sent again: it may have
 * crossed a route to that server as it died. A service still working on the first copy answers both.
 */
const RESEND_AFTER_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends a request and returns the `ok` reply, or throws the reply's error as a VirtError.
 *
 * `timeoutMs` bounds the whole call, and within it a passing loss of the cluster is a wait, not an
 * error: a request in flight when its connection moved to another server, or when a server left the
 * cluster, is sent again (it or its reply may have been lost with that server); a subject nobody
 * answers is asked again for a few seconds (services reconnecting elsewhere); and a reply marked
 * retryable (a service that waited its bounded time for JetStream) is asked again, as is a request
 * sent just after a server was lost and unanswered for ten seconds, or any request unanswered for
 * `resendAfterMs` (commands: a copy may have crossed a route to a server that died unseen by this
 * connection). Earlier copies stay awaited until the deadline, so a service still working on one
 * answers the call however late the copy after it was sent. Sending again is
 * safe because every request on virtplane's subjects is idempotent: commands carry their id, reports
 * theirs, queries only read.
 */
export const call = async <T = Record<string, unknown>>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  timeoutMs = 10_000,
  opts: { resendAfterMs?: number } = {},
): Promise<T & { ok: true }> => {
  const start = Date.now();
  const deadline = start + timeoutMs;
  const data = encodeJson(body);
  // Copies sent earlier and still unanswered: a reply to any of them is the answer.
  const unanswered = new Set<Promise<Msg>>();
  const never = new Promise<never>(() => {});
  for (let attempt = 0; ; attempt++) {
    const backoff = Math.min(1000, 50 * 2 ** attempt);
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new VirtError('timeout', `no reply on ${subject} within ${timeoutMs} ms`);
    const loss = nextServerLoss(nc);
    let msg: Msg | 'lost';
    let resendTimer: NodeJS.Timeout | undefined;
    try {
      msg = await inSpan(`request ${subject}`, context.active(), (span) => {
        const h = headers();
        const tp = traceparentOf(span);
        if (tp) h.set('traceparent', tp);
        // Sent just after a server was lost, it may still have crossed a route to it: ask again soon.
        const soon = Date.now() - lastServerLossAt(nc) < 2_000;
        const resendAfter = Math.min(soon ? RESEND_AFTER_MS : Infinity, opts.resendAfterMs ?? Infinity);
        const request = nc.request(subject, data, { timeout: remaining, headers: h });
        request.catch(() => undefined);
        const resend = resendAfter < remaining ? new Promise<'lost'>((r) => (resendTimer = setTimeout(() => r('lost'), resendAfter))) : never;
        const earlier = [...unanswered];
        // Until it is answered (or the deadline) this copy may still be, whatever is sent after it.
        const copy = request.catch(() => never);
        unanswered.add(copy);
        request.then(
          () => unanswered.delete(copy),
          () => unanswered.delete(copy),
        );
        return Promise.race([request, ...earlier, loss.promise, resend]);
      });
    } catch (e) {
      if (isNoResponders(e)) {
        if (Date.now() + backoff < Math.min(deadline, start + NO_RESPONDERS_GRACE_MS)) {
          await sleep(backoff);
          continue;
        }
        throw new VirtError('operation-failed', `no service answers ${subject}: is virtplane running?`, { noResponders: subject });
      }
      if (e instanceof natsErrors.TimeoutError) {
        if (Date.now() < deadline) continue;
        throw new VirtError('timeout', `no reply on ${subject} within ${timeoutMs} ms`);
      }
      throw e;
    } finally {
      loss.cancel();
      clearTimeout(resendTimer);
    }
    if (msg === 'lost') continue;
    const reply = decodeJson(msg.data) as { ok?: boolean };
    if (reply.ok === true) return reply as T & { ok: true };
    const err = ErrorReply.safeParse(reply);
    if (!err.success) throw new VirtError('internal-error', `unexpected reply on ${subject}`);
    if (isRetryable(err.data.error) && Date.now() + backoff < deadline) {
      await sleep(backoff);
      continue;
    }
    throw new VirtError(err.data.error.code, err.data.error.message, err.data.error.details);
  }
};
