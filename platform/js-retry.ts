import { JetStreamApiError } from '@nats-io/jetstream';
import { errors as natsErrors, type NatsConnection } from '@nats-io/transport-node';
import { VirtError, type VirtErrorBody } from '../contracts/errors.ts';

/**
 * The one place that tells a JetStream cluster that is electing a leader from a real error, and
 * waits for it. While a stream's leader is lost, requests get no responders (which nats.js reports
 * as "jetstream is not enabled"), go unanswered until they time out, or are refused with a 503-class
 * API error; each clears once a new leader is elected. Anything else is an answer and is thrown.
 */

/** API errors a cluster gives while it elects leaders or a node catches up. */
const TRANSIENT_API_CODES = new Set([
  10004, // incomplete results
  10008, // JetStream system temporarily unavailable
  10009, // cluster can not handle request (not the leader)
  10039, // JetStream not enabled for account (a node still recovering its accounts)
  10076, // JetStream not enabled
  10118, // stream is offline
  10119, // consumer is offline
]);

/** The server refused a write conditioned on a sequence that is no longer the subject's newest. */
export const isWrongLastSequence = (e: unknown): boolean => e instanceof JetStreamApiError && e.code === 10071;

/** The JetStream API's code for a stream the server does not have (as opposed to one that does not answer now). */
const STREAM_NOT_FOUND = 10059;

/** The server has no such stream (a bucket removed), as opposed to one that does not answer now. */
export const isStreamNotFound = (e: unknown): boolean => e instanceof JetStreamApiError && e.code === STREAM_NOT_FOUND;

/**
 * A brief look at a stream, for callers that must not wait on an election: it answers, the server
 * has no such stream, or it says nothing (no leader, no server) within `timeoutMs`.
 */
export const streamAnswers = async (nc: NatsConnection, stream: string, timeoutMs: number): Promise<'answers' | 'missing' | 'silent'> => {
  try {
    const r = await nc.request(`$JS.API.STREAM.INFO.${stream}`, undefined, { timeout: timeoutMs });
    const error = r.json<{ error?: { err_code?: number } }>().error;
    if (error === undefined) return 'answers';
    return error.err_code === STREAM_NOT_FOUND ? 'missing' : 'silent';
  } catch {
    return 'silent';
  }
};

export const isTransientJsError = (e: unknown, depth = 0): boolean => {
  if (depth > 4 || !(e instanceof Error)) return false;
  // nats.js reports no responders on a JetStream subject as JetStreamNotEnabled, caused by the
  // request's no-responders error: the cause says what happened.
  if (e instanceof natsErrors.TimeoutError || e instanceof natsErrors.NoRespondersError) return true;
  if (e instanceof natsErrors.RequestError && e.isNoResponders()) return true;
  if (e instanceof JetStreamApiError) return e.status === 503 || TRANSIENT_API_CODES.has(e.code);
  return isTransientJsError(e.cause, depth + 1);
};

/** An attempt given up because a server it may have gone through left. */
class ServerLost extends natsErrors.TimeoutError {}

/**
 * How long a service waits in total for JetStream before it answers with a retryable error. With one
 * attempt's timeout on top it stays under the client's 30 s request timeout, so a service still
 * waiting answers before its caller gives up, and the caller asks again with the same command id.
 */
export const jsWaitMs = (): number => Number(process.env.VIRTPLANE_JS_WAIT_MS ?? 15_000);

/** How long one JetStream request may go unanswered before it is sent again. */
export const JS_ATTEMPT_TIMEOUT_MS = 5_000;

/**
 * A reply that says "nothing is known to have failed: send the same request again". Only requests
 * that are safe to repeat get it: commands carry their id, and a repeated id takes effect once.
 */
export const unavailable = (message: string): VirtError => new VirtError('timeout', message, { retryable: true });

export const isRetryable = (body: Pick<VirtErrorBody, 'details'>): boolean =>
  typeof body.details === 'object' && body.details !== null && (body.details as { retryable?: unknown }).retryable === true;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves when a request in flight may have been lost with a server: this connection moved to
 * another server, or a server left the cluster (its routes carried requests and replies). One
 * status reader per connection, shared by all calls.
 */
const lossWaiters = new WeakMap<NatsConnection, Set<() => void>>();
const lastLoss = new WeakMap<NatsConnection, number>();
/** When this connection last saw a server lost (0: never, or not watched yet). */
export const lastServerLossAt = (nc: NatsConnection): number => lastLoss.get(nc) ?? 0;
export const nextServerLoss = (nc: NatsConnection): { promise: Promise<'lost'>; cancel(): void } => {
  let waiters = lossWaiters.get(nc);
  if (!waiters) {
    const set = new Set<() => void>();
    waiters = set;
    lossWaiters.set(nc, set);
    void (async () => {
      // The servers this connection's server last advertised. nats.js reports a server as deleted
      // only when it learnt of it by gossip, never one of the URLs it was given, so a server leaving
      // is read from the advertised list itself: one that is no longer in it is gone.
      let advertised = new Set(nc.info?.connect_urls ?? []);
      for await (const s of nc.status()) {
        const now = new Set(nc.info?.connect_urls ?? []);
        const left = s.type === 'update' && [...advertised].some((u) => !now.has(u));
        if (s.type === 'update' || s.type === 'reconnect') advertised = now;
        if (s.type !== 'reconnect' && !left && !(s.type === 'update' && (s.deleted?.length ?? 0) > 0)) continue;
        lastLoss.set(nc, Date.now());
        for (const w of [...set]) w();
        set.clear();
      }
    })().catch(() => undefined);
  }
  const set = waiters;
  let wake = () => {};
  const promise = new Promise<'lost'>((resolve) => {
    wake = () => resolve('lost');
    set.add(wake);
  });
  return { promise, cancel: () => set.delete(wake) };
};

/**
 * Runs `op` until it gets an answer, sending it again after transient cluster unavailability with
 * backoff (100 ms doubling to 1 s, jittered) for up to `maxWaitMs` in all; then throws a retryable
 * `timeout`. `op` must be safe to repeat: a write whose outcome is unknown is sent again as it was.
 * `onRetry` hears each transient failure (a write learns that its outcome became uncertain). Given
 * the connection `nc`, an attempt in flight when a server is lost is not waited for but sent again.
 */
export const withJsRetry = async <T>(
  what: string,
  op: () => Promise<T>,
  opts: { maxWaitMs?: number; onRetry?: (e: unknown) => void; nc?: NatsConnection } = {},
): Promise<T> => {
  const maxWaitMs = opts.maxWaitMs ?? jsWaitMs();
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    const loss = opts.nc ? nextServerLoss(opts.nc) : null;
    try {
      const pending = op();
      if (!loss) return await pending;
      pending.catch(() => undefined);
      const out = await Promise.race([pending.then((v) => ({ v })), loss.promise]);
      if (out === 'lost') throw new ServerLost();
      return out.v;
    } catch (e) {
      if (!isTransientJsError(e)) throw e;
      opts.onRetry?.(e);
      const waited = Date.now() - start;
      if (waited >= maxWaitMs) {
        throw unavailable(`${what}: JetStream did not answer within ${waited} ms (${(e as Error).message}); try again with the same command id`);
      }
      if (e instanceof ServerLost) continue;
      const backoff = Math.min(1000, 100 * 2 ** attempt);
      await sleep(Math.min(maxWaitMs - waited, backoff / 2 + Math.random() * (backoff / 2)));
    } finally {
      loss?.cancel();
    }
  }
};
