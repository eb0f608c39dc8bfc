import { join } from 'node:path';
import type { Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { DefineSecretRequest, SecretOpRequest, SetSecretValueRequest } from '../../contracts/secret/commands.ts';
import type { EventStore } from '../../platform/event-store.ts';
import type { Nats } from '../../platform/nats.ts';
import type { CommandApi } from './command-api.ts';
import { SecretCommands } from './secret-commands.ts';
import { SecretVault } from './secret-vault.ts';

export const SecretKeyConfig = z.object({
  /** The 32-byte key (base64) secret values are sealed under; made on first start when missing. */
  secretKeyFile: z.string().optional(),
});

export const secretKeyPath = (cfg: { secretKeyFile?: string | undefined; dataDir: string }): string => cfg.secretKeyFile ?? join(cfg.dataDir, 'secret.key');

/** `cmd.<principal>.secret.<verb>`: only operators may send commands; get-value is one, so auditors and hosts cannot ask. */
export const serveSecretCommands = async (n: Nats, store: EventStore, key: Buffer, api: CommandApi): Promise<Subscription[]> => {
  const secrets = new SecretCommands(store, await SecretVault.open(n, key));
  return [
    ...api.serve('secret', 'define', DefineSecretRequest, (r, meta) => secrets.define(r, meta)),
    ...api.serve('secret', 'undefine', SecretOpRequest, (r, meta) => secrets.undefine(r, meta)),
    ...api.serve('secret', 'set-value', SetSecretValueRequest, (r, meta) => secrets.setValue(r, meta)),
    ...api.serve('secret', 'get-value', SecretOpRequest, (r, meta) => secrets.getValue(r, meta)),
  ];
};
