import type { CommandMeta } from '../../contracts/envelope.ts';
import { isVirtError, virtError } from '../../contracts/errors.ts';
import { isUuid, uuidFromSeed } from '../../contracts/ids.ts';
import { MAX_SECRET_VALUE_BYTES, type DefineSecretRequest, type SecretCommand, type SecretOpRequest, type SetSecretValueRequest } from '../../contracts/secret/commands.ts';
import { decideSecret, evolveSecret, initialSecretState, noSecret, secretCommandVersion, type SecretAggregate } from '../../contracts/secret/decider.ts';
import { usageKey, type SecretDefinition } from '../../contracts/secret/definition.ts';
import type { SecretEventBody } from '../../contracts/secret/events.ts';
import { parseSecretXml } from '../../contracts/xml/secret.ts';
import type { EventStore } from '../../platform/event-store.ts';
import { NameClaims } from './name-claims.ts';
import { Repository, type AggregateKind, type Outcome } from './repository.ts';
import type { SecretVault } from './secret-vault.ts';

export const secretKind: AggregateKind<SecretAggregate, SecretEventBody> = {
  type: 'secret',
  initial: initialSecretState,
  evolve: evolveSecret,
  appliedVersion: secretCommandVersion,
};

export interface SecretAccepted extends Record<string, unknown> {
  secretId: string;
  version: number;
  commandId: string;
  duplicate?: boolean;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The command side of secrets: definitions through the decider and the log, values through the
 * vault. A value is sealed and stored before the log records that it was set, under a fresh id: a
 * crash between the two leaves only an unnamed ciphertext, never a log entry without its value.
 */
export class SecretCommands {
  private readonly repo: Repository<SecretAggregate, SecretEventBody>;
  private readonly usages: NameClaims;

  constructor(
    store: EventStore,
    private readonly vault: SecretVault,
  ) {
    this.repo = new Repository(store, secretKind);
    this.usages = new NameClaims(store, 'secret');
  }

  private readonly load = (uuid: string) => this.repo.load(uuid);

  /** virsh looks secrets up by uuid only: anything else is not found, in libvirt's words. */
  private idOf(ref: string): string {
    if (!isUuid(ref)) throw noSecret(ref);
    return ref.toLowerCase();
  }

  async define(req: DefineSecretRequest, meta: CommandMeta): Promise<SecretAccepted> {
    // A secret document is bounded to 64 KiB before it is parsed, so it is parsed here rather than
    // off the request loop as the larger documents are.
    const def = parseSecretXml(req.xml, uuidFromSeed(meta.commandId));
    const command = (claimSeq: number): SecretCommand => ({ type: 'define', definition: def, claimSeq });
    // virSecretObjListAdd looks at the uuid first, then at the usage: refusals about the uuid come
    // before a claim on the usage is recorded.
    decideSecret(command(Number.MAX_SAFE_INTEGER), await this.repo.load(def.uuid), meta.now);
    const claimSeq = def.usage ? await this.claimUsage(def, meta) : 0;
    const out = await this.repo.execute(def.uuid, meta, (s) => decideSecret(command(claimSeq), s, meta.now));
    return this.accepted(out, meta);
  }

  private async claimUsage(def: SecretDefinition, meta: CommandMeta): Promise<number> {
    try {
      return await this.usages.claim(usageKey(def.usage!), def.uuid, meta, this.load);
    } catch (e) {
      const holder = isVirtError(e) && e.code === 'operation-failed' ? (e.details as { holder?: string } | undefined)?.holder : undefined;
      if (holder) throw virtError('internal-error', `a secret with UUID ${holder} already defined for use with ${def.usage!.id}`);
      throw e;
    }
  }

  async undefine(req: SecretOpRequest, meta: CommandMeta): Promise<SecretAccepted> {
    const id = this.idOf(req.secret);
    let value: SecretAggregate['value'] = null;
    const out = await this.repo.execute(id, meta, (s) => {
      value = s.value;
      return decideSecret({ type: 'undefine' }, s, meta.now);
    });
    const gone = value as SecretAggregate['value'];
    if (!out.duplicate && gone) await this.vault.purge(id, gone.valueId, gone.store);
    return this.accepted(out, meta);
  }

  async setValue(req: SetSecretValueRequest, meta: CommandMeta): Promise<SecretAccepted> {
    const id = this.idOf(req.secret);
    const value = decodeValue(req.value);
    // Refused for an unknown secret before anything is stored.
    const current = await this.repo.load(id);
    decideSecret({ type: 'set-value', valueId: '', digest: '' }, current, meta.now);
    const valueId = this.vault.newValueId();
    const store = current.definition!.ephemeral ? 'memory' : 'disk';
    const digest = await this.vault.put(id, valueId, value, store);
    value.fill(0);
    let previous: SecretAggregate['value'] = null;
    let out: Outcome<SecretAggregate>;
    try {
      out = await this.repo.execute(id, meta, (s) => {
        previous = s.value;
        const events = decideSecret({ type: 'set-value', valueId, digest }, s, meta.now);
        // The bucket was chosen from an older state: the one the log records must be where the value is.
        if (events[0]?.type === 'SecretValueSet' && events[0].data.store !== store) throw virtError('conflict', 'the secret was redefined while its value was being set; try again');
        return events;
      });
    } catch (e) {
      await this.vault.purge(id, valueId, store).catch(() => undefined);
      throw e;
    }
    const prev = previous as SecretAggregate['value'];
    if (out.duplicate || out.state.value?.valueId !== valueId) {
      // A retry of a command already recorded: the value it stored first stands, this copy goes.
      await this.vault.purge(id, valueId, store).catch(() => undefined);
    } else if (prev && prev.valueId !== valueId) {
      await this.vault.purge(id, prev.valueId, prev.store).catch(() => undefined);
    }
    return this.accepted(out, meta);
  }

  /** The value, base64: decided against the log (libvirt's refusals), then read and checked against what the log recorded. */
  async getValue(req: SecretOpRequest, meta: CommandMeta): Promise<{ secretId: string; value: string }> {
    const id = this.idOf(req.secret);
    const s = await this.repo.load(id);
    decideSecret({ type: 'get-value' }, s, meta.now);
    const v = s.value!;
    const value = await this.vault.get(id, v.valueId, v.store, v.digest);
    if (!value) throw virtError('no-secret', `Secret not found: secret '${id}' does not have a value`);
    const out = value.toString('base64');
    value.fill(0);
    return { secretId: id, value: out };
  }

  private accepted(out: Outcome<SecretAggregate>, meta: CommandMeta): SecretAccepted {
    return { secretId: out.state.id, version: out.version, commandId: meta.commandId, ...(out.duplicate ? { duplicate: true } : {}) };
  }
}

const decodeValue = (b64: string): Buffer => {
  if (!BASE64.test(b64)) throw virtError('invalid-arg', 'invalid argument: the secret value is not base64');
  const value = Buffer.from(b64, 'base64');
  if (value.length > MAX_SECRET_VALUE_BYTES) {
    throw virtError('invalid-arg', `invalid argument: secret value is too large: ${value.length} bytes (at most ${MAX_SECRET_VALUE_BYTES})`);
  }
  return value;
};
