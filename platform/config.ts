import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/**
 * The one config loader: every service and the CLI describe their settings as a zod object; values
 * come from flags first, then `VIRTPLANE_*` environment variables, then defaults. A bad value stops
 * start-up with one clear line.
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
  for (const key of Object.keys(schema.shape)) {
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

/** Settings every part shares: where NATS is and where local state lives. */
export const BaseConfig = z.object({
  /** An external NATS server or cluster (comma-separated URLs). Absent: the embedded default. */
  natsUrl: z.string().optional(),
  /** Data directory of the embedded default: its nats-server store and its address file. */
  dataDir: z.string().default(join(PROJECT_ROOT, '.data')),
  /** JetStream replicas for streams and buckets: 1 on a single server, 3 on a cluster. */
  replicas: z.coerce.number().int().min(1).max(5).default(1),
});
export type BaseConfig = z.infer<typeof BaseConfig>;

export const EmbeddedAddress = z.object({ url: z.string(), pid: z.number().int(), startedAt: z.string() });
export const embeddedAddressFile = (dataDir: string) => join(dataDir, 'embedded.json');

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * The NATS URL to use. With no URL configured, only the embedded server this project started is
 * used, found through its address file: never whatever happens to listen on 4222.
 */
export const resolveNatsUrl = (cfg: Pick<BaseConfig, 'natsUrl' | 'dataDir'>): string => {
  if (cfg.natsUrl) return cfg.natsUrl;
  const file = embeddedAddressFile(cfg.dataDir);
  if (existsSync(file)) {
    const addr = EmbeddedAddress.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (addr.success && pidAlive(addr.data.pid)) return addr.data.url;
  }
  throw new ConfigError(
    'no NATS server: start the embedded default with `npm start`, or set VIRTPLANE_NATS_URL (or --server) to use another',
  );
};
