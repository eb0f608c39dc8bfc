import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createUser, fromSeed } from '@nats-io/nkeys';
import { z } from 'zod';
import { ConfigError, PrincipalName } from '../config.ts';
import { durableConsumer } from '../durable-consumer.ts';
import type { Nats } from '../nats.ts';
import { provision } from '../provision.ts';
import { hostConsumers, inboxPrefix, ROLES, type Role } from './roles.ts';
import { renderAuthConf, type PrincipalEntry } from './server-config.ts';

/**
 * A directory of principals: for each one its nkey seed (`<name>.nk`, readable by its owner only) and
 * a NATS context (`<name>.json`) that services, the CLI and the `nats` CLI log in with; and for the
 * server, `auth.conf` with every principal's public key and permissions. The seeds never leave it.
 */

const Principals = z.array(z.object({ name: PrincipalName, role: z.enum(ROLES), publicKey: z.string().regex(/^U[A-Z2-7]{55}$/) }));

export const AUTH_CONF = 'auth.conf';

const writeAtomic = (path: string, data: string, mode = 0o644) => {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
};

export class AuthStore {
  private constructor(
    readonly dir: string,
    private principals: PrincipalEntry[],
    /** Written into new contexts, for setups where the address is fixed (docker-compose). */
    private readonly url: string | undefined,
  ) {}

  static open(dir: string, opts: { url?: string } = {}): AuthStore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'principals.json');
    const principals = existsSync(file) ? Principals.parse(JSON.parse(readFileSync(file, 'utf8'))) : [];
    return new AuthStore(dir, principals, opts.url);
  }

  get entries(): readonly PrincipalEntry[] {
    return this.principals;
  }

  get(name: string): PrincipalEntry | undefined {
    return this.principals.find((p) => p.name === name);
  }

  contextFile(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  seedFile(name: string): string {
    return join(this.dir, `${name}.nk`);
  }

  get authConf(): string {
    return join(this.dir, AUTH_CONF);
  }

  /**
   * Adds a principal, or keeps it as it is when it exists with the same role. `rotate` gives it a new
   * key: once the server reloads, the old seed no longer logs in and its connections are closed.
   */
  add(name: string, role: Role, opts: { rotate?: boolean } = {}): PrincipalEntry {
    const valid = PrincipalName.safeParse(name);
    if (!valid.success) throw new ConfigError(`invalid principal name '${name}': ${valid.error.issues[0]?.message}`);
    const existing = this.get(name);
    if (existing && existing.role !== role) throw new ConfigError(`principal '${name}' exists with role ${existing.role}, not ${role}`);
    if (existing && !opts.rotate && existsSync(this.seedFile(name))) {
      this.writeContext(name, role);
      return existing;
    }
    const kp = createUser();
    const seed = new TextDecoder().decode(kp.getSeed());
    writeAtomic(this.seedFile(name), `${seed}\n`, 0o600);
    const entry: PrincipalEntry = { name, role, publicKey: kp.getPublicKey() };
    this.principals = [...this.principals.filter((p) => p.name !== name), entry];
    this.writeContext(name, role);
    this.save();
    return entry;
  }

  remove(name: string): void {
    this.principals = this.principals.filter((p) => p.name !== name);
    this.save();
  }

  /** The public key in a seed file, to check a seed belongs to the principal it claims. */
  static publicKeyOf(seedFile: string): string {
    return fromSeed(new TextEncoder().encode(readFileSync(seedFile, 'utf8').trim())).getPublicKey();
  }

  private writeContext(name: string, role: Role) {
    const ctx = {
      description: `virtplane ${role} '${name}'`,
      ...(this.url ? { url: this.url } : {}),
      nkey: `${name}.nk`,
      inbox_prefix: inboxPrefix(name),
    };
    writeAtomic(this.contextFile(name), `${JSON.stringify(ctx, null, 2)}\n`, 0o600);
  }

  /** principals.json and the server's auth.conf, always together. */
  save(): void {
    writeAtomic(join(this.dir, 'principals.json'), `${JSON.stringify(this.principals, null, 2)}\n`, 0o600);
    writeAtomic(this.authConf, renderAuthConf(this.principals));
  }
}

/** The principals every deployment has: stream management, the two services. */
export const ensureServicePrincipals = (store: AuthStore): void => {
  store.add('admin', 'admin');
  store.add('command', 'command');
  store.add('projector', 'projector');
};

/**
 * What the admin does once and on every enrolment: streams and buckets exist (services may only look
 * at them), and each host has its task consumers, which its agent may pull from but not change.
 */
export const prepareBus = async (admin: Nats, opts: { replicas?: number; hosts?: string[]; ackWaitMs?: number } = {}): Promise<void> => {
  await provision(admin, opts.replicas ?? 1);
  for (const host of opts.hosts ?? []) {
    for (const c of hostConsumers(host, opts.ackWaitMs ?? 15_000)) await durableConsumer(admin, c);
  }
};

/** Tells a running nats-server to read its configuration again (new, rotated or removed principals). */
export const reloadServer = (pid: number): void => {
  process.kill(pid, 'SIGHUP');
};
