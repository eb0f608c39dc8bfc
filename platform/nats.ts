import { connect, credsAuthenticator, tokenAuthenticator, usernamePasswordAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsTarget } from './config.ts';
import { nativeNkeyAuthenticator } from './nkey-auth.ts';

/** The one NATS connection helper: every service, the client and the tests connect through it. */
export interface Nats {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kvm: Kvm;
  /** Who the server knows this connection as; absent on a server without authentication. */
  principal?: string;
  close(): Promise<void>;
}

const authenticator = (auth: NonNullable<NatsTarget['auth']>) => {
  switch (auth.kind) {
    case 'nkey':
      return nativeNkeyAuthenticator(auth.seed);
    case 'creds':
      return credsAuthenticator(auth.creds);
    case 'user':
      return usernamePasswordAuthenticator(auth.user, auth.pass);
    case 'token':
      return tokenAuthenticator(auth.token);
  }
};

/** The NATS server cannot be used: unreachable, refusing us, or without JetStream. One line says which. */
export class NatsUnavailable extends Error {
  override name = 'NatsUnavailable';
}

/**
 * Nobody subscribed to a request's subject. nats.js 3.4 reports it as a RequestError whose cause is
 * the NoRespondersError (and the JetStream API wraps it again), so the whole cause chain is read.
 */
export const isNoResponders = (e: unknown): boolean => {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (cur.name === 'NoRespondersError' || (cur as { isNoResponders?: () => boolean }).isNoResponders?.() === true) return true;
    if ((cur as { code?: unknown }).code === '503' || /\bno responders\b/i.test(cur.message)) return true;
  }
  return false;
};

/** A URL alone connects without credentials (test servers); a NatsTarget carries who we are. */
export const connectNats = async (target: string | NatsTarget, name: string): Promise<Nats> => {
  const t: NatsTarget = typeof target === 'string' ? { url: target } : target;
  const opts: ConnectionOptions = {
    servers: t.url.split(',').map((s) => s.trim()),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Otherwise every request and publish builds an Error up front for a stack trace it rarely needs
    // (about a tenth of a busy service's CPU); errors still say what failed.
    noAsyncTraces: true,
  };
  if (t.auth) opts.authenticator = authenticator(t.auth);
  if (t.tls) opts.tls = t.tls;
  if (t.inboxPrefix) opts.inboxPrefix = t.inboxPrefix;
  const where = t.url.split(',').map((u) => u.trim()).join(', ');
  const nc = await connect(opts).catch((e: Error) => {
    throw new NatsUnavailable(`cannot connect to NATS at ${where}: ${e.message}`, { cause: e });
  });
  const js = jetstream(nc, { timeout: 10_000 });
  // A server without JetStream answers this at once; one whose JetStream never answers is bounded by
  // the timeout. Either way the connection is closed, so nothing is left to keep the process alive.
  const jsm = await jetstreamManager(nc, { timeout: 10_000 }).catch(async (e: Error) => {
    await nc.close().catch(() => undefined);
    const missing = e.name === 'JetStreamNotEnabled' || /not enabled/i.test(e.message);
    throw new NatsUnavailable(
      missing ? `the NATS server at ${where} has no JetStream: virtplane needs one started with JetStream (nats-server -js)` : `JetStream at ${where} does not answer: ${e.message}`,
      { cause: e },
    );
  });
  return {
    ...(t.principal !== undefined ? { principal: t.principal } : {}),
    nc,
    js,
    jsm,
    kvm: new Kvm(js),
    async close() {
      if (nc.isClosed()) return;
      // A drain waits for every subscription to finish; one that never does must not keep a stopping
      // process alive, so after a bounded wait the connection is closed outright.
      let timer: NodeJS.Timeout | undefined;
      const bounded = new Promise<void>((resolve) => {
        timer = setTimeout(() => void nc.close().finally(resolve), 5_000);
      });
      await Promise.race([nc.drain().catch(() => nc.close()), bounded]);
      clearTimeout(timer);
    },
  };
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const encodeJson = (v: unknown): Uint8Array => encoder.encode(JSON.stringify(v));
export const decodeJson = (data: Uint8Array): unknown => JSON.parse(decoder.decode(data));
export const decodeText = (data: Uint8Array): string => decoder.decode(data);
