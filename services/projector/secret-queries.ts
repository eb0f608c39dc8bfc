import type { Subscription } from '@nats-io/transport-node';
import { virtError } from '../../contracts/errors.ts';
import { noSecret } from '../../contracts/secret/decider.ts';
import { SecretGetRequest, SecretListRequest, toSecretView, type SecretView } from '../../contracts/secret/views.ts';
import { QUEUES, subjects } from '../../contracts/subjects.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';
import { pageOf, replyBudget } from './paging.ts';
import type { Projector } from './projector.ts';
import { DEFAULT_WAIT_MS, reachSeq } from './queries.ts';

/**
 * query.secret.get and query.secret.list: definitions and whether a value is set. Operators and
 * auditors may ask; host agents may not (platform/security/roles.ts), and no value is here to give.
 */
export const serveSecretQueries = (n: Nats, p: Projector, log: Logger): Subscription[] => {
  const secrets = p.secrets;
  const q = QUEUES.query;
  return [
    serve(
      n.nc,
      subjects.query('secret', 'get'),
      q,
      SecretGetRequest,
      async (req) => {
        const id = req.secret.toLowerCase();
        const waitMs = req.waitMs ?? DEFAULT_WAIT_MS;
        const min = req.minVersion ?? 0;
        const ok = await p.waitFor(() => {
          const s = secrets.get(id);
          return min === 0 || (s ? s.version >= min : p.lastSeq >= min);
        }, min > 0 ? waitMs : 0);
        const s = secrets.get(id);
        if (!s) throw noSecret(req.secret);
        if (!ok && s.version < min) throw virtError('timeout', `the view of secret '${id}' has not reached version ${min} within ${waitMs} ms (it is at ${s.version})`);
        return { secret: toSecretView(s) };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.query('secret', 'list'),
      q,
      SecretListRequest,
      async (req) => {
        await reachSeq(p, req.minSeq, req.waitMs);
        const seq = p.lastSeq;
        const matching = [...secrets.values()].filter(
          (s) => (req.ephemeral === undefined || s.definition!.ephemeral === req.ephemeral) && (req.private === undefined || s.definition!.private === req.private),
        );
        // virsh sorts secrets by uuid (virshSecretSorter).
        const page = pageOf(matching, (s) => [s.id, s.id], (s): SecretView => toSecretView(s), req, replyBudget(n));
        return { secrets: page.items, seq, replica: p.replica, ...(page.next ? { next: page.next } : {}) };
      },
      log,
    ),
  ];
};
