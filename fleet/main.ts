/**
 * A simulated fleet against the real services: `npm run fleet -- --hosts 1000 --domains 100000 --kill 5`.
 * Many real host agents on the test driver in this one process, each with its own host id, lease and
 * NATS connection; the command service and the projector run as their own processes on a nats-server
 * this command starts. Exits 1 when a lost host's HA guests did not come back exactly once.
 */
import { fleetCommand, toRunOptions } from './options.ts';
import { formatResult } from './report.ts';
import { runFleet } from './run.ts';

const cmd = fleetCommand('fleet', { hosts: 100, domains: 1000, kill: 2, duration: 0 }).parse();
const opts = toRunOptions(cmd.opts(), (line) => process.stderr.write(`${line}\n`));
const result = await runFleet(opts);
process.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : formatResult(result));
process.exit(result.passed ? 0 : 1);
