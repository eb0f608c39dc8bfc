import { readFile, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { isVirtError } from '../contracts/errors.ts';
import type { SecretView } from '../contracts/secret/views.ts';
import { VerbFailed } from './errors.ts';
import { table } from './format.ts';
import type { CliHelpers } from './network-commands.ts';

/** virsh reads a secret value file of at most 1024 bytes (virFileReadAll in cmdSecretSetValue). */
const VALUE_FILE_MAX = 1024;
/** virsh's own limit on an XML file it reads (VSH_MAX_XML_FILE). */
const XML_FILE_MAX = 10 * 1024 * 1024;

/**
 * virsh's secret verbs. virshCommandOptSecret looks a secret up by uuid and, when that fails, says
 * "failed to get secret" above libvirt's own message; each verb then puts its own line over a
 * failure of the call itself.
 */
const lookupFailed = (ref: string, e: unknown): never => {
  if (isVirtError(e) && e.code === 'no-secret' && e.message.includes('no secret with matching uuid')) throw new VerbFailed(`failed to get secret '${ref}'`, e);
  throw e;
};

/** A failure after the look-up: the lookup's own lines if it was that, else `headline` over libvirt's message. */
const failing = async <T>(ref: string, headline: string | null, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof VerbFailed || !isVirtError(e)) throw e;
    lookupFailed(ref, e);
    throw new VerbFailed(headline, e);
  }
};

const usage = (s: SecretView): string => (s.definition.usage ? `${s.definition.usage.type} ${s.definition.usage.id}` : 'Unused');

export const secretList = (secrets: SecretView[]): string => table(['UUID', 'Usage'], secrets.map((s) => [s.id, usage(s)]));

/** virFileReadAll: a file larger than its limit is E2BIG. */
const readLimited = async (file: string, max: number): Promise<Buffer> => {
  const st = await stat(file);
  if (st.isFile() && st.size > max) throw new VerbFailed(null, Object.assign(new Error(`Failed to read file '${file}': Argument list too long`), {}));
  return readFile(file);
};

/** g_base64_decode: characters outside the alphabet are skipped, as glib does. */
const glibBase64 = (text: string): Buffer => Buffer.from(text.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');

export const registerSecretCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('secret-define')
    .description('define or modify a secret from an XML file')
    .argument('<file>', 'file containing secret attributes in XML')
    .option('--validate', 'validate the XML against the schema (always done)')
    .action(async (file: string) => {
      const xml = (await readLimited(file, XML_FILE_MAX)).toString('utf8');
      const r = await h.withClient(async (c) => {
        try {
          return await c.secretDefine(xml);
        } catch (e) {
          if (isVirtError(e)) throw new VerbFailed(`Failed to set attributes from ${file}`, e);
          throw e;
        }
      });
      h.out().result(`Secret ${r.secretId} created`, r);
    });

  program
    .command('secret-undefine')
    .description('undefine a secret')
    .argument('<secret>', 'secret UUID')
    .action(async (secret: string) => {
      const r = await h.withClient((c) => failing(secret, `Failed to delete secret ${secret}`, () => c.secretUndefine(secret)));
      h.out().result(`Secret ${secret} deleted`, r);
    });

  program
    .command('secret-dumpxml')
    .description('secret attributes in XML')
    .argument('<secret>', 'secret UUID')
    .action(async (secret: string) => {
      const s = await h.withClient((c) => failing(secret, null, () => c.secretGet(secret)));
      const { formatSecretXml } = await import('../contracts/xml/secret.ts');
      h.out().result(formatSecretXml(s.definition).trimEnd(), s);
    });

  program
    .command('secret-list')
    .description('list secrets')
    .option('--ephemeral', 'list ephemeral secrets')
    .option('--no-ephemeral', 'list non-ephemeral secrets')
    .option('--private', 'list private secrets')
    .option('--no-private', 'list non-private secrets')
    .action(async (o: { ephemeral?: boolean; private?: boolean }) => {
      const filter = { ...optional('ephemeral', o.ephemeral), ...optional('private', o.private) };
      const secrets = await h.withClient((c) => c.secretList(filter));
      h.out().result(secretList(secrets), secrets);
    });

  program
    .command('secret-set-value')
    .description('set a secret value')
    .argument('<secret>', 'secret UUID')
    .option('--file <file>', 'read secret from file')
    .option('--plain', 'read the secret from file without converting from base64')
    .option('--base64 <value>', 'base64-encoded secret value')
    .action(async (secret: string, o: { file?: string; plain?: boolean; base64?: string }) => {
      if (o.file !== undefined && o.base64 !== undefined) throw h.usageError('Options --file and --base64 are mutually exclusive');
      if (o.plain && o.base64 !== undefined) throw h.usageError('Options --plain and --base64 are mutually exclusive');
      const r = await h.withClient(async (c) => {
        // virsh looks the secret up before it reads the value.
        await c.secretGet(secret).catch((e: unknown) => lookupFailed(secret, e));
        let value: Buffer;
        if (o.base64 !== undefined) {
          process.stderr.write('error: Passing secret value as command-line argument is insecure!\n');
          value = glibBase64(o.base64);
        } else if (o.file !== undefined) {
          const raw = await readLimited(o.file, VALUE_FILE_MAX);
          value = o.plain ? raw : glibBase64(raw.toString('latin1'));
        } else {
          throw new VerbFailed(null, new Error('Input secret value is missing'));
        }
        try {
          return await failing(secret, 'Failed to set secret value', () => c.secretSetValue(secret, value));
        } finally {
          value.fill(0);
        }
      });
      h.out().result('Secret value set', r);
    });

  program
    .command('secret-get-value')
    .description('Output a secret value')
    .argument('<secret>', 'secret UUID')
    .option('--plain', 'get value without converting to base64')
    .action(async (secret: string, o: { plain?: boolean }) => {
      const value = await h.withClient((c) => failing(secret, null, () => c.secretGetValue(secret)));
      if (o.plain && !h.json()) process.stdout.write(value);
      else h.out().result(value.toString('base64'), { secretId: secret, value: value.toString('base64') });
      value.fill(0);
    });
};

const optional = <K extends string>(key: K, v: boolean | undefined): Partial<Record<K, boolean>> => (v === undefined ? {} : ({ [key]: v } as Record<K, boolean>));
