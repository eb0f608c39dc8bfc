import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { HealthListen } from './health.ts';

/**
 * The one config loader: every service and the CLI describe their settings as a zod object; values
 * come from flags first, then `VIRTPLANE_*` environment variables, then a JSON config file named by
 * `--config` or `VIRTPLANE_CONFIG` (keys as in the schema), or else the user's own
 * `$XDG_CONFIG_HOME/virtplane/config.json` (`~/.config/...`) when there is one, then defaults. A bad
 * value stops start-up with one clear line.
 */

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const envName = (key: string) => `VIRTPLANE_${key.replace(/([A-Z])/g, '_$1').toUpperCase()}`;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const loadConfig = <S extends z.ZodObject>(
  schema: S,
  flags: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = process.env,
): z.infer<S> => {
  const raw: Record<string, unknown> = {};
  const named = flags.config ?? env.VIRTPLANE_CONFIG;
  const file = readConfigFile(named === undefined || named === '' ? userConfigFile(env) : named);
  for (const key of Object.keys(schema.shape)) {
    if (file[key] !== undefined) raw[key] = file[key];
    const fromEnv = env[envName(key)];
    if (fromEnv !== undefined && fromEnv !== '') raw[key] = fromEnv;
    if (flags[key] !== undefined) raw[key] = flags[key];
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const key = String(first?.path[0] ?? '');
    throw new ConfigError(
      `invalid configuration: ${key ? `${key} (${envName(key)})` : ''}: ${first?.message ?? 'invalid'}`.replace(' : ', ': '),
    );
  }
  return parsed.data;
};

/** The per-user settings file, read when no other is named; absent is fine. */
export const userConfigPath = (env: NodeJS.ProcessEnv = process.env): string =>
  join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'virtplane', 'config.json');
const userConfigFile = (env: NodeJS.ProcessEnv): string | undefined => {
  const path = userConfigPath(env);
  return existsSync(path) ? path : undefined;
};

const readConfigFile = (path: unknown): Record<string, unknown> => {
  if (path === undefined || path === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(String(path), 'utf8'));
  } catch (e) {
    throw new ConfigError(`invalid configuration: config file ${String(path)} (VIRTPLANE_CONFIG): ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`invalid configuration: config file ${String(path)} (VIRTPLANE_CONFIG): not a JSON object`);
  }
  return parsed as Record<string, unknown>;
};

/**
 * A principal's name: the prefix of the subjects it may send commands on and of its reply inboxes,
 * so it must be one subject token. No `:` either, which keeps the names virtplane gives itself
 * (`host:<id>`, `virtplane:deadline`) out of any principal's reach.
 */
export const PrincipalName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a principal name is 1-64 letters, digits, - or _');

/** Settings every part shares: where NATS is, who we are on it, and where local state lives. */
export const BaseConfig = z.object({
  /** An external NATS server or cluster (comma-separated URLs). Absent: the embedded default. */
  natsUrl: z.string().optional(),
  /** Data directory of the embedded default: its nats-server store and its address file. */
  dataDir: z.string().default(join(PROJECT_ROOT, '.data')),
  /** JetStream replicas for streams and buckets: 1 on a single server, 3 on a cluster. */
  replicas: z.coerce.number().int().min(1).max(5).default(1),
  /** A NATS context (`nats context` JSON): a file, or a name under ~/.config/nats/context. */
  natsContext: z.string().optional(),
  /** A creds file (JWT and seed), as `nsc` writes it. */
  natsCreds: z.string().optional(),
  /** A file holding an nkey seed (SU...), as `virtplane host-enroll` writes it. */
  natsNkey: z.string().optional(),
  natsUser: z.string().optional(),
  natsPassword: z.string().optional(),
  natsToken: z.string().optional(),
  /** TLS: the CA that signed the server's certificate, and a client certificate and key. */
  natsCa: z.string().optional(),
  natsCert: z.string().optional(),
  natsKey: z.string().optional(),
  /** Who the server knows us as; absent: the context's name, the user name or the seed file's name. */
  principal: PrincipalName.optional(),
  /** A service's health endpoint (`PORT` or `HOST:PORT`, platform/health.ts); none when absent. */
  healthListen: HealthListen.optional(),
});
export type BaseConfig = z.infer<typeof BaseConfig>;

/** What the embedded default leaves for the CLI: its address and the operator context to log in with. */
export const EmbeddedAddress = z.object({
  url: z.string(),
  /** The nats-server's pid. */
  pid: z.number().int(),
  startedAt: z.string(),
  context: z.string().optional(),
  /** The process that started everything and stops it on SIGTERM (`virtplane down`). */
  supervisor: z.number().int().optional(),
  services: z.array(z.object({ name: z.string(), pid: z.number().int() })).optional(),
  operator: z.string().optional(),
});
export type EmbeddedAddress = z.infer<typeof EmbeddedAddress>;
export const embeddedAddressFile = (dataDir: string) => join(dataDir, 'embedded.json');

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Everything needed to reach NATS as one principal: checked at start-up, used by connectNats. */
export interface NatsTarget {
  url: string;
  /** Present when the target authenticates: the principal the server will know us as. */
  principal?: string;
  auth?:
    | { kind: 'nkey'; seed: Uint8Array }
    | { kind: 'creds'; creds: Uint8Array }
    | { kind: 'user'; user: string; pass: string }
    | { kind: 'token'; token: string };
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Reply subjects live under this prefix, which only this principal may subscribe to. */
  inboxPrefix?: string;
}

/** The fields of a NATS context file that a client uses (the `nats` CLI writes more). */
const NatsContextFile = z.looseObject({
  url: z.string().optional(),
  user: z.string().optional(),
  password: z.string().optional(),
  token: z.string().optional(),
  creds: z.string().optional(),
  nkey: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  ca: z.string().optional(),
  inbox_prefix: z.string().optional(),
});

type Credentials = Pick<BaseConfig, 'natsContext' | 'natsCreds' | 'natsNkey' | 'natsUser' | 'natsPassword' | 'natsToken' | 'natsCa' | 'natsCert' | 'natsKey' | 'principal'>;

const readable = (what: string, path: string): string => {
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new ConfigError(`invalid configuration: ${what}: cannot read ${path}`);
  }
  return path;
};

const loadContext = (ref: string): { name: string; fields: Partial<Credentials> & { natsUrl?: string; inboxPrefix?: string } } => {
  const path = ref.endsWith('.json') || ref.includes('/') ? ref : join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'nats', 'context', `${ref}.json`);
  readable('natsContext (VIRTPLANE_NATS_CONTEXT)', path);
  const parsed = NatsContextFile.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new ConfigError(`invalid configuration: natsContext (VIRTPLANE_NATS_CONTEXT): ${path} is not a NATS context`);
  const c = parsed.data;
  // Paths in a context are relative to it, so a directory of contexts and seeds can move as a whole.
  const rel = (p: string | undefined) => (p === undefined || p === '' ? undefined : isAbsolute(p) ? p : resolve(dirname(path), p));
  const none = (v: string | undefined) => (v === '' ? undefined : v);
  const fields = {
    natsUrl: none(c.url),
    natsUser: none(c.user),
    natsPassword: none(c.password),
    natsToken: none(c.token),
    natsCreds: rel(c.creds),
    natsNkey: rel(c.nkey),
    natsCert: rel(c.cert),
    natsKey: rel(c.key),
    natsCa: rel(c.ca),
    inboxPrefix: none(c.inbox_prefix),
  };
  return { name: basename(path, '.json'), fields: Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) };
};

const seedFrom = (path: string): Uint8Array => {
  // A seed file may hold comments or be a creds file's seed section: take the first user seed.
  const seed = readFileSync(readable('natsNkey (VIRTPLANE_NATS_NKEY)', path), 'utf8').match(/SU[A-Z2-7]{56}/)?.[0];
  if (!seed) throw new ConfigError(`invalid configuration: natsNkey (VIRTPLANE_NATS_NKEY): ${path} holds no user nkey seed (SU...)`);
  return new TextEncoder().encode(seed);
};

/**
 * Turns the credential settings into a NatsTarget, refusing contradictions (two ways to log in, a
 * user without a password, a certificate without its key) and unreadable files at start-up rather
 * than at the first reconnect.
 */
export const natsTarget = (url: string, given: Credentials, contextName?: string, contextInbox?: string): NatsTarget => {
  const c = given;
  const ways = [c.natsCreds && 'natsCreds', c.natsNkey && 'natsNkey', c.natsUser && 'natsUser', c.natsToken && 'natsToken'].filter(Boolean);
  if (ways.length > 1) throw new ConfigError(`invalid configuration: ${ways.join(' and ')}: choose one way to log in`);
  if (c.natsUser && !c.natsPassword) throw new ConfigError('invalid configuration: natsPassword (VIRTPLANE_NATS_PASSWORD): natsUser needs a password');
  if (Boolean(c.natsCert) !== Boolean(c.natsKey)) throw new ConfigError('invalid configuration: natsCert (VIRTPLANE_NATS_CERT): a client certificate needs its key (natsKey), and a key its certificate');
  const target: NatsTarget = { url };
  if (c.natsNkey) target.auth = { kind: 'nkey', seed: seedFrom(c.natsNkey) };
  else if (c.natsCreds) target.auth = { kind: 'creds', creds: readFileSync(readable('natsCreds (VIRTPLANE_NATS_CREDS)', c.natsCreds)) };
  else if (c.natsUser) target.auth = { kind: 'user', user: c.natsUser, pass: c.natsPassword ?? '' };
  else if (c.natsToken) target.auth = { kind: 'token', token: c.natsToken };
  if (c.natsCa || c.natsCert) {
    target.tls = {
      ...(c.natsCa ? { caFile: readable('natsCa (VIRTPLANE_NATS_CA)', c.natsCa) } : {}),
      ...(c.natsCert ? { certFile: readable('natsCert (VIRTPLANE_NATS_CERT)', c.natsCert) } : {}),
      ...(c.natsKey ? { keyFile: readable('natsKey (VIRTPLANE_NATS_KEY)', c.natsKey) } : {}),
    };
  }
  if (target.auth || target.tls) {
    const fromSeedFile = c.natsNkey ? basename(c.natsNkey).replace(/\.(nk|seed|creds)$/, '') : undefined;
    const fromInbox = contextInbox?.startsWith('_INBOX.') ? contextInbox.slice('_INBOX.'.length) : undefined;
    const candidate = c.principal ?? (c.natsUser || fromInbox || contextName || fromSeedFile);
    const principal = candidate === undefined ? undefined : PrincipalName.safeParse(candidate);
    if (principal?.success) {
      target.principal = principal.data;
      target.inboxPrefix = contextInbox ?? `_INBOX.${principal.data}`;
    } else if (target.auth) {
      throw new ConfigError('invalid configuration: principal (VIRTPLANE_PRINCIPAL): name the principal these credentials belong to');
    }
  }
  return target;
};

/**
 * The NATS URL to use. With no URL configured, only the embedded server this project started is
 * used, found through its address file: never whatever happens to listen on 4222.
 */
export const resolveNatsUrl = (cfg: Pick<BaseConfig, 'natsUrl' | 'dataDir'> & Partial<Credentials>): NatsTarget => {
  const ctx = cfg.natsContext ? loadContext(cfg.natsContext) : undefined;
  // Explicit settings win over the context's, as with the nats CLI's flags.
  const merged: Credentials = { ...ctx?.fields, ...Object.fromEntries(Object.entries(cfg).filter(([, v]) => v !== undefined)) };
  const explicitAuth = Boolean(merged.natsCreds || merged.natsNkey || merged.natsUser || merged.natsToken);
  const url = cfg.natsUrl ?? ctx?.fields.natsUrl;
  if (url) return natsTarget(url, merged, ctx?.name, ctx?.fields.inboxPrefix);
  const file = embeddedAddressFile(cfg.dataDir);
  if (existsSync(file)) {
    const addr = EmbeddedAddress.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (addr.success && pidAlive(addr.data.pid)) {
      // The embedded default runs with authentication: its operator context logs us in, unless told otherwise.
      if (explicitAuth || ctx || !addr.data.context) return natsTarget(addr.data.url, merged, ctx?.name, ctx?.fields.inboxPrefix);
      const own = loadContext(addr.data.context);
      return natsTarget(addr.data.url, { ...own.fields, ...merged }, own.name, own.fields.inboxPrefix);
    }
  }
  throw new ConfigError(
    'no NATS server: start the embedded default with `virtplane up` (or `npm start`), or set VIRTPLANE_NATS_URL (or --server) to use another',
  );
};
