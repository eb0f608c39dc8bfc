import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EmbeddedAddress, embeddedAddressFile, resolveNatsUrl } from '../config.ts';
import { connectNats } from '../nats.ts';
import { AuthStore, prepareBus, reloadServer } from './principals.ts';
import type { Role } from './roles.ts';

/** Where the embedded default keeps its principals: beside its store, under the data directory. */
export const embeddedAuthDir = (dataDir: string) => join(dataDir, 'auth');

export interface EnrolOptions {
  name: string;
  role: Role;
  dataDir: string;
  /** The principals' directory; the embedded default's when absent. */
  authDir?: string;
  /** The server, when not the embedded default (or the URL in the admin's context). */
  url?: string;
  rotate?: boolean;
  /** nats-server to reload; the embedded default's own server when the directory is its. */
  reloadPid?: number;
  ackWaitMs?: number;
  replicas?: number;
}

export interface Enrolled {
  context: string;
  seed: string;
  /** False when no server was known to reload: the operator must reload it. */
  reloaded: boolean;
}

const embeddedPid = (dataDir: string): number | undefined => {
  const file = embeddedAddressFile(dataDir);
  if (!existsSync(file)) return undefined;
  const addr = EmbeddedAddress.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  return addr.success ? addr.data.pid : undefined;
};

/**
 * Gives a principal credentials and its permissions on the server: writes its seed and context,
 * regenerates the server's users, reloads the server, and for a host makes the task consumers its
 * agent will pull from (the agent itself may not make them).
 */
export const enrol = async (o: EnrolOptions): Promise<Enrolled> => {
  const dir = resolve(o.authDir ?? embeddedAuthDir(o.dataDir));
  if (!existsSync(join(dir, 'principals.json'))) throw new Error(`no principals in ${dir}: start the embedded default, or run infra/auth.ts init`);
  const store = AuthStore.open(dir);
  store.add(o.name, o.role, { rotate: o.rotate ?? false });
  // The consumers first, the reload last: while a server reloads, its JetStream API may not answer.
  if (o.role === 'host') {
    const admin = await connectNats(resolveNatsUrl({ dataDir: o.dataDir, natsContext: store.contextFile('admin'), ...(o.url ? { natsUrl: o.url } : {}) }), 'virtplane-enrol');
    try {
      await prepareBus(admin, { hosts: [o.name], ackWaitMs: o.ackWaitMs ?? 15_000, replicas: o.replicas ?? 1 });
    } finally {
      await admin.close();
    }
  }
  const pid = o.reloadPid ?? (dir === resolve(embeddedAuthDir(o.dataDir)) ? embeddedPid(o.dataDir) : undefined);
  if (pid !== undefined) reloadServer(pid);
  return { context: store.contextFile(o.name), seed: store.seedFile(o.name), reloaded: pid !== undefined };
};
