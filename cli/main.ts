import { Command, CommanderError } from 'commander';
import type { VirtplaneClient } from '../client/index.ts';
import { hostInfo, hostList, parsePageSize } from './format.ts';
import { installPropagator, tracesExported } from '../platform/telemetry.ts';
import { registerNetworkCommands } from './network-commands.ts';
import { registerSecretCommands } from './secret-commands.ts';
import { registerPoolAutostart } from './pool-autostart-command.ts';
import { registerNetUpdate } from './net-update-command.ts';
import { registerDomainCommands } from './domain-commands.ts';
import { registerDeviceCommands } from './device-commands.ts';
import { registerDomainInfoCommands } from './domain-info-commands.ts';
import { registerDomainStateCommands } from './domain-state-commands.ts';
import { registerGuestCommands } from './guest-commands.ts';
import { registerSaveCommands } from './save-commands.ts';
import { registerMetadataCommands } from './metadata-commands.ts';
import { registerSnapshotCommands } from './snapshot-commands.ts';
import { registerNodeCommands } from './node-commands.ts';
import { registerMonitorCommands } from './monitor-commands.ts';
import { registerHostReadCommands } from './host-read-commands.ts';
import { registerResourceCommands } from './resource-commands.ts';
import { registerLookupCommands } from './lookup-commands.ts';
import { registerConsoleCommands } from './console-commands.ts';
import { causeOf, describeFailure, errorLines, Exit, EXIT, UsageError } from './errors.ts';
import { registerCompletion, setUpProgram } from './program.ts';
import { registerEmbeddedCommands } from './embedded-commands.ts';
import { registerHostCommands } from './host-commands.ts';
import { registerStorageCommands } from './storage-commands.ts';
import { registerEditCommands } from './edit-commands.ts';
import { registerAuthCommands } from './auth-commands.ts';

interface Globals {
  server?: string;
  json?: boolean;
  actor?: string;
  settings?: string;
  context?: string;
  creds?: string;
  nkey?: string;
  user?: string;
  password?: string;
  token?: string;
  tlsca?: string;
  tlscert?: string;
  tlskey?: string;
  principal?: string;
}

class Output {
  constructor(private readonly json: boolean) {}
  result(human: string, data: unknown) {
    process.stdout.write(`${this.json ? JSON.stringify(data, null, 2) : human}\n`);
  }
}

export const buildProgram = (): Command => {
  const program = new Command('virtplane')
    .description('virsh verbs for a fleet: domains, hosts and lifecycle events over NATS')
    .option('-s, --server <url>', 'NATS URL (default: the embedded server started by `npm start`; env VIRTPLANE_NATS_URL)')
    .option('--json', 'print JSON instead of tables')
    .option('--actor <name>', 'a note beside your name in the audit trail (the recorded actor is who you logged in as)')
    .option('--settings <file>', 'a JSON file of settings (env VIRTPLANE_CONFIG)')
    .option('--context <name|file>', 'a NATS context to log in with (env VIRTPLANE_NATS_CONTEXT; default: the embedded default\'s operator)')
    .option('--creds <file>', 'a NATS creds file (env VIRTPLANE_NATS_CREDS)')
    .option('--nkey <file>', 'a file holding an nkey seed (env VIRTPLANE_NATS_NKEY)')
    .option('--user <name>', 'NATS user (env VIRTPLANE_NATS_USER)')
    .option('--password <password>', 'NATS password (env VIRTPLANE_NATS_PASSWORD)')
    .option('--token <token>', 'NATS token (env VIRTPLANE_NATS_TOKEN)')
    .option('--tlsca <file>', 'CA of the server certificate (env VIRTPLANE_NATS_CA)')
    .option('--tlscert <file>', 'client certificate (env VIRTPLANE_NATS_CERT)')
    .option('--tlskey <file>', 'client key (env VIRTPLANE_NATS_KEY)')
    .option('--principal <name>', 'the principal these credentials belong to, when their file does not say (env VIRTPLANE_PRINCIPAL)');
  setUpProgram(program);

  const globals = () => program.opts<Globals>();
  const out = () => new Output(Boolean(globals().json));
  const withClient = async <T>(fn: (c: VirtplaneClient) => Promise<T>): Promise<T> => {
    const g = globals();
    const given = {
      config: g.settings,
      natsContext: g.context,
      natsCreds: g.creds,
      natsNkey: g.nkey,
      natsUser: g.user,
      natsPassword: g.password,
      natsToken: g.token,
      natsCa: g.tlsca,
      natsCert: g.tlscert,
      natsKey: g.tlskey,
      principal: g.principal,
    };
    const credentials = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
    const { VirtplaneClient } = await import('../client/index.ts');
    const c = await VirtplaneClient.connect({ readYourWrites: true, credentials, ...(g.server ? { url: g.server } : {}), ...(g.actor ? { actor: g.actor } : {}) });
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  };

  program
    .command('validate')
    .description('check libvirt XML documents offline, as virt-xml-validate does (the root element tells the kind)')
    .argument('<files...>', 'domain, network, pool or volume XML')
    .option('--format', 'print each document as virtplane stores it (what dumpxml returns after a define)')
    .action(async (files: string[], o: { format?: boolean }) => {
      const { validateFiles } = await import('./validate.ts');
      const code = await validateFiles(files, { format: Boolean(o.format) }, (line) => process.stdout.write(`${line}\n`));
      if (code !== 0) throw new ValidationFailed(code);
    });

  program
    .command('host-list')
    .description('list hosts and their agents')
    .option('--page-size <n>', 'hosts per request', parsePageSize)
    .action(async (o: { pageSize?: number }) => {
      const hosts = await withClient((c) => c.hosts(o.pageSize ? { pageSize: o.pageSize } : {}));
      out().result(hostList(hosts), hosts);
    });

  program
    .command('host-info')
    .description('one host: its state, lease, capabilities, domains and free memory')
    .argument('<host>', 'host id')
    .action(async (host: string) => {
      const h = await withClient((c) => c.host(host));
      out().result(hostInfo(h), h);
    });

  program
    .command('host-maintenance')
    .description('take a host out of placement (on) or give it back (off); its domains stay where they are')
    .argument('<host>', 'host id')
    .argument('<on|off>', 'on or off')
    .action(async (host: string, mode: string) => {
      if (mode !== 'on' && mode !== 'off') throw new UsageError("host-maintenance takes 'on' or 'off'");
      const r = await withClient((c) => c.hostMaintenance(host, mode === 'on'));
      out().result(`Host '${r.hostId}' maintenance ${r.maintenance ? 'on: no new domains are placed on it' : 'off'}`, r);
    });

  const helpers = { out, withClient, json: () => Boolean(globals().json), usageError: (m: string) => new UsageError(m) };
  registerDomainCommands(program, helpers);
  registerDeviceCommands(program, helpers);
  registerDomainInfoCommands(program, helpers);
  registerDomainStateCommands(program, helpers);
  registerGuestCommands(program, helpers);
  registerSaveCommands(program, helpers);
  registerMetadataCommands(program, helpers);
  registerSnapshotCommands(program, helpers);
  registerNodeCommands(program, helpers);
  registerMonitorCommands(program, helpers);
  registerHostReadCommands(program, helpers);
  registerResourceCommands(program, helpers);
  registerLookupCommands(program, helpers);
  registerConsoleCommands(program, helpers);
  registerNetworkCommands(program, { out, withClient, json: () => Boolean(globals().json), usageError: (m) => new UsageError(m) });
  registerStorageCommands(program, { out, withClient, json: () => Boolean(globals().json), usageError: (m) => new UsageError(m) });
  registerSecretCommands(program, helpers);
  registerPoolAutostart(program, helpers);
  registerNetUpdate(program, helpers);
  registerEditCommands(program, helpers);
  registerHostCommands(program, { out, withClient, json: () => Boolean(globals().json) });
  registerAuthCommands(program, { out, server: () => globals().server, withClient });
  registerEmbeddedCommands(program, { out, withClient, json: () => Boolean(globals().json), usageError: (m) => new UsageError(m), settings: () => globals().settings });
  registerCompletion(program);

  return program;
};


/** validate already printed its verdict per file; only the exit code is left to give. */
class ValidationFailed extends Error {
  constructor(readonly code: number) {
    super('validation failed');
  }
}

/** Runs the CLI and returns the exit code: 0 on success, 1 on an error reply, 2 on a usage error. */
export const main = async (argv: string[]): Promise<number> => {
  installPropagator();
  if (tracesExported()) (await import('../platform/tracing.ts')).initTelemetry();
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof ValidationFailed) return e.code;
    // Commander printed its own message (or the help, or the version) already.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT.usage;
    if (e instanceof Exit) {
      if (e.message) process.stderr.write(`error: ${e.message}\n`);
      return e.code;
    }
    const cause = causeOf(e);
    const { body, exit } = describeFailure(cause);
    if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: body }, null, 2)}\n`);
    else process.stderr.write(`${errorLines(e).join('\n')}\n`);
    if (body.code === 'internal-error' && !(cause instanceof Error && 'code' in cause) && process.env.VIRTPLANE_DEBUG) process.stderr.write(`${(cause as Error).stack}\n`);
    return exit;
  }
};
