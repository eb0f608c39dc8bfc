import type { VirtplaneClient } from '../client/index.ts';
import type { CommandAccepted } from '../contracts/domain/commands.ts';
import { failing } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/**
 * Runs an operation a domain's host carries out and returns once the host has done it (its outcome
 * in the views), so the next command reads it; a failure is worded under `headline` as virsh words it.
 */
export const hostOp = (
  h: CliHelpers,
  domain: string,
  headline: string | null,
  timeoutSeconds: number,
  send: (c: VirtplaneClient, timeoutSeconds: number) => Promise<CommandAccepted>,
) =>
  failing(headline, domain, () =>
    h.withClient(async (c) => {
      const accepted = await send(c, timeoutSeconds);
      return { accepted, view: await c.outcome(accepted, timeoutSeconds * 1000) };
    }),
  );
