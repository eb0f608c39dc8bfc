import type { Envelope } from '../envelope.ts';
import { virtError } from '../errors.ts';
import { applyRevocation, requireLiveClaim, type ClaimFence } from '../name-claim.ts';
import type { SecretCommand } from './commands.ts';
import { usageKey, type SecretDefinition } from './definition.ts';
import type { SecretEventBody } from './events.ts';
import { rememberCommand, versionOfCommand } from '../recent-commands.ts';

/**
 * The secret decider: pure, with the checks and messages of libvirt's secret driver
 * (src/secret/secret_driver.c, src/conf/virsecretobj.c). The command service and the projector
 * share `evolve`. A usage (type and id) is unique among secrets through a name claim on the usage,
 * as names are for domains, networks and pools; the aggregate's `name` is that usage key.
 */

export interface SecretValueRecord {
  valueId: string;
  digest: string;
  store: 'disk' | 'memory';
  setAt: string;
  setBy: string;
}

export interface SecretAggregate extends ClaimFence {
  exists: boolean;
  removed: boolean;
  id: string;
  /** The usage key (`<type>:<id>`) the secret holds a claim on; '' for a secret without usage. */
  name: string;
  definition: SecretDefinition | null;
  /** Where the current value's ciphertext is and who set it when; null while it has none. */
  value: SecretValueRecord | null;
  version: number;
  recentCommands: Array<[string, number]>;
}

export const initialSecretState = (id: string): SecretAggregate => ({
  exists: false,
  removed: false,
  id,
  name: '',
  definition: null,
  value: null,
  version: 0,
  recentCommands: [],
  revokedClaimsUpTo: 0,
});

export const secretCommandVersion = (s: SecretAggregate, commandId: string): number | undefined => versionOfCommand(s, commandId);

export const noSecret = (uuid: string) => virtError('no-secret', `Secret not found: no secret with matching uuid '${uuid}'`);

/** libvirt formats a missing usage id with printf's `%s`, which glibc prints as "(null)". */
const usageIdOf = (d: SecretDefinition | null) => d?.usage?.id ?? '(null)';

const requireSecret = (s: SecretAggregate): SecretDefinition => {
  if (!s.exists || !s.definition) throw noSecret(s.id);
  return s.definition;
};

export const decideSecret = (cmd: SecretCommand, s: SecretAggregate, _now: Date): SecretEventBody[] => {
  switch (cmd.type) {
    case 'define': {
      const old = s.exists ? s.definition : null;
      if (old) {
        // virSecretObjListAdd: a uuid keeps its usage id, and a private secret stays private.
        if ((old.usage?.id ?? null) !== (cmd.definition.usage?.id ?? null)) {
          throw virtError('internal-error', `a secret with UUID ${s.id} is already defined for use with ${usageIdOf(old)}`);
        }
        if (old.private && !cmd.definition.private) throw virtError('internal-error', 'cannot change private flag on existing secret');
      }
      if (cmd.definition.usage) requireLiveClaim(s, cmd.claimSeq, 'secret usage', usageKey(cmd.definition.usage));
      return [{ type: 'SecretDefined', data: { definition: cmd.definition } }];
    }
    case 'undefine':
      requireSecret(s);
      return [{ type: 'SecretUndefined', data: {} }];
    case 'set-value':
      requireSecret(s);
      return [{ type: 'SecretValueSet', data: { valueId: cmd.valueId, digest: cmd.digest, store: s.definition!.ephemeral ? 'memory' : 'disk' } }];
    case 'get-value': {
      const def = requireSecret(s);
      // secretGetValue refuses a private secret before it looks for a value.
      if (def.private) throw virtError('invalid-secret', 'Invalid secret: secret is private');
      if (!s.value) throw virtError('no-secret', `Secret not found: secret '${s.id}' does not have a value`);
      return [];
    }
  }
};

export const evolveSecret = (s: SecretAggregate, e: Envelope<SecretEventBody>): SecretAggregate => {
  const recentCommands = rememberCommand(s.recentCommands, e.commandId, e.version);
  const base = { ...s, version: e.version, recentCommands };
  switch (e.type) {
    case 'NameClaimRevoked':
      return applyRevocation({ ...s, version: e.version }, e);
    case 'SecretDefined': {
      const def = e.data.definition;
      // A redefinition keeps the value, as libvirt's does; a new secret (or one defined again after
      // removal) starts without one.
      return { ...base, exists: true, removed: false, name: def.usage ? usageKey(def.usage) : '', definition: def, value: s.exists ? s.value : null };
    }
    case 'SecretUndefined':
      return { ...base, exists: false, removed: true, value: null };
    case 'SecretValueSet':
      return { ...base, value: { valueId: e.data.valueId, digest: e.data.digest, store: e.data.store, setAt: e.time, setBy: e.actor } };
    default:
      return base;
  }
};

