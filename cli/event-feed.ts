import type { Command } from 'commander';
import { virtError } from '../contracts/errors.ts';
import { VerbFailed } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/**
 * What `event` and `net-event` share, as virsh has them: --event, --all (every type), --list,
 * --loop, --timeout, --timestamp, and virtplane's --history (start from the oldest stored event).
 */
export interface FeedOptions {
  event?: string;
  all?: boolean;
  list?: boolean;
  loop?: boolean;
  timeout?: string;
  timestamp?: boolean;
  history?: boolean;
}

/** The event types virtplane records for domains and networks. */
const EVENT_TYPES = ['lifecycle'];

export const feedOptions = (cmd: Command): Command =>
  cmd
    .option('--event <type>', "the event type to wait for (virtplane records 'lifecycle')")
    .option('--all', 'every event type')
    .option('--list', 'list the event types')
    .option('--loop', 'keep printing events until interrupted or --timeout')
    .option('--timeout <seconds>', 'stop after this many seconds')
    .option('--timestamp', 'print the time of each event')
    .option('--history', 'start from the oldest stored event instead of new ones');

/** virsh --timestamp: `2024-01-01 12:00:00.000+0000`. */
export const virshTimestamp = (iso: string): string => `${iso.replace('T', ' ').replace(/Z$/, '')}+0000`;

/**
 * Prints events as virsh does: the first, or all with --loop, then `events received: N` (after
 * `event loop timed out` when --timeout ended it). `open` gives the feed, from the start of history
 * or from now, and may first resolve what the command names (failing as virsh does).
 */
export const runFeed = async <E extends { time: string }>(
  h: CliHelpers,
  o: FeedOptions,
  open: (from: 'all' | 'new', signal: AbortSignal) => Promise<AsyncIterable<E>>,
  line: (e: E) => string,
): Promise<void> => {
  if (o.list) {
    h.out().result(EVENT_TYPES.join('\n'), EVENT_TYPES);
    return;
  }
  if (o.event !== undefined && o.all) throw h.usageError('--event and --all are exclusive');
  if (o.event !== undefined && !EVENT_TYPES.includes(o.event)) {
    throw new VerbFailed(null, virtError('operation-unsupported', `event type '${o.event}' is not recorded by virtplane (see --list)`));
  }
  const ac = new AbortController();
  let timedOut = false;
  const timer = o.timeout
    ? setTimeout(() => {
        timedOut = true;
        ac.abort();
      }, Number(o.timeout) * 1000)
    : null;
  process.once('SIGINT', () => ac.abort());
  const output = h.out();
  let count = 0;
  try {
    for await (const e of await open(o.history ? 'all' : 'new', ac.signal)) {
      output.result(o.timestamp ? `${virshTimestamp(e.time)}: ${line(e)}` : line(e), e);
      count++;
      if (!o.loop) break;
    }
  } finally {
    if (timer) clearTimeout(timer);
  }
  if (!h.json()) process.stdout.write(`${timedOut ? 'event loop timed out\n' : ''}events received: ${count}\n`);
};
