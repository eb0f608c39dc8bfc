import { createServer, type Server } from 'node:http';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import type { Logger } from './log.ts';

/**
 * A service's health over HTTP, for supervisors (Docker's HEALTHCHECK, systemd's ExecStartPost,
 * a load balancer, a monitoring probe). Off unless `VIRTPLANE_HEALTH_LISTEN` names an address:
 *
 *   GET /livez   200 while the process runs and its NATS connection is not closed;
 *   GET /readyz  200 once the service has said it is ready (it serves its subjects) and while it is
 *                connected to NATS; 503 before, during a reconnect and from the start of a shutdown.
 *
 * Both answer `{"service","ready","nats":"connected"|"reconnecting"|"closed"|"connecting"}`.
 * `platform/health-check.mjs` is the matching probe: plain Node, no dependency, so an image or a host
 * can run it without the build.
 */

/** `PORT` or `HOST:PORT` (`[v6]:PORT`); a bare port listens on loopback only. */
export const HealthListen = z
  .string()
  .regex(/^(?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?\d{1,5}$/, 'PORT or HOST:PORT')
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'a port is at most 65535');

export type NatsState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface Health {
  /** Follows the connection's state from now on. */
  watch(nc: NatsConnection): void;
  /** The service serves its subjects: readiness may pass. */
  ready(): void;
  /** Readiness fails from here on and the endpoint goes away (the start of a shutdown). */
  close(): Promise<void>;
  /** Where it listens (the port chosen when 0 was asked for); null when off. */
  address: { host: string; port: number } | null;
}

const parse = (listen: string): { host: string; port: number } => {
  const i = listen.lastIndexOf(':');
  if (i < 0) return { host: '127.0.0.1', port: Number(listen) };
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
};

export const serveHealth = async (service: string, listen: string | undefined, log: Logger): Promise<Health> => {
  let nats: NatsState = 'connecting';
  let ready = false;
  let closing = false;
  const state = () => ({ service, ready: ready && !closing && nats === 'connected', nats });
  let server: Server | null = null;
  let address: Health['address'] = null;
  if (listen !== undefined) {
    server = createServer((req, res) => {
      const s = state();
      const path = (req.url ?? '/').split('?')[0];
      const ok = path === '/readyz' ? s.ready : path === '/livez' || path === '/healthz' ? nats !== 'closed' && !closing : null;
      if (ok === null || req.method !== 'GET') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found: GET /livez or /readyz"}\n');
        return;
      }
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(s)}\n`);
    });
    const { host, port } = parse(listen);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, host, () => resolve());
    }).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`health endpoint: cannot listen on ${listen} (VIRTPLANE_HEALTH_LISTEN): ${e.code ?? e.message}`);
    });
    const a = server.address();
    address = typeof a === 'object' && a ? { host: a.address, port: a.port } : null;
    // A probe must never keep a stopping process alive.
    server.unref();
    log.info('health endpoint listening', { health: `http://${listen.includes(':') ? host : '127.0.0.1'}:${address?.port}/readyz` });
  }
  return {
    address,
    watch(nc) {
      nats = nc.isClosed() ? 'closed' : 'connected';
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'disconnect' || s.type === 'reconnecting') nats = 'reconnecting';
          else if (s.type === 'reconnect') nats = 'connected';
          else if (s.type === 'close') nats = 'closed';
        }
      })().catch(() => undefined);
      void nc.closed().then(() => {
        nats = 'closed';
      });
    },
    ready() {
      ready = true;
    },
    async close() {
      closing = true;
      if (!server) return;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    },
  };
};
