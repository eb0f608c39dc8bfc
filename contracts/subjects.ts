/** Every NATS subject and stream name in one place, so services cannot drift apart. */

export const STREAMS = { events: 'EVENTS', tasks: 'TASKS', lifecycle: 'LIFECYCLE' } as const;

export const BUCKETS = {
  domains: 'views-domains',
  hosts: 'views-hosts',
  networks: 'views-networks',
  pools: 'views-pools',
  secrets: 'views-secrets',
  /** Secret values, AES-256-GCM ciphertext only, keyed `<secret uuid>.<value id>`: the command service's alone. */
  secretValues: 'secret-values',
  /** The same for ephemeral secrets, in server memory: gone with the server, as libvirt's are with the daemon. */
  secretValuesMemory: 'secret-values-memory',
  hostLiveness: 'host-liveness',
  /** How far the projectors' views have stored the log (one key per set of projections). */
  projectorPosition: 'views-position',
} as const;

export type AggregateType = 'domain' | 'host' | 'network' | 'pool' | 'secret' | 'name';

/** What a name claim keeps unique: names of domains, networks and pools, and secrets' usages. */
export type ClaimScope = 'domain' | 'network' | 'pool' | 'secret';

/** Names may hold any character but a subject token may not: encode them. */
export const nameToken = (name: string): string => Buffer.from(name, 'utf8').toString('base64url') || '_';

/**
 * The last line of defence for the undeletable log: an aggregate id that is not one plain token
 * (a wildcard, a dot, a space) would write to or read from the wrong subjects. Request schemas
 * refuse such ids first (contracts/ids.ts); reaching this is a bug, so it throws.
 */
const aggregateToken = (id: string): string => {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) throw new Error(`refusing aggregate id ${JSON.stringify(id)}: not a subject token`);
  return id;
};

/** The live readings a host's agent answers (`hostread.<host>.<kind>`). */
export type HostReadKind =
  | 'domain-stats'
  | 'node-stats'
  | 'dhcp-leases'
  | 'save-image'
  | 'domain-caps'
  | 'vcpu-info'
  | 'domain-time'
  | 'max-vcpus'
  | 'node-cpu-stats'
  | 'node-cpu-map'
  | 'sysinfo'
  | 'screenshot';

export const subjects = {
  aggregate: (type: AggregateType, id: string) => `ev.${type}.${aggregateToken(id)}`,
  allEvents: 'ev.>',
  nameClaim: (scope: ClaimScope, name: string) => `ev.name.${scope}.${nameToken(name)}`,
  /** A command on a server without authentication: the actor is only what the request claims. */
  command: (aggregate: string, verb: string) => `cmd.${aggregate}.${verb}`,
  /**
   * A command sent by an authenticated principal: the server lets each principal publish only under
   * its own name, so the name in the subject is proven and becomes the recorded actor.
   */
  commandFor: (principal: string, aggregate: string, verb: string) => `cmd.${principal}.${aggregate}.${verb}`,
  allCommands: 'cmd.>',
  agent: (hostId: string, verb: 'register' | 'heartbeat' | 'claim' | 'report') => `agent.${hostId}.${verb}`,
  query: (view: string, verb: string) => `query.${view}.${verb}`,
  /** A query a host agent asks about its own host only: the host in the subject is the one the server logged in. */
  hostQuery: (hostId: string, view: string, verb: string) => `hostquery.${hostId}.${view}.${verb}`,
  /**
   * A live reading an operator asks of one host's agent (a guest's counters, the host's memory):
   * only that host may answer it, and it is never recorded.
   */
  hostRead: (hostId: string, what: HostReadKind) => `hostread.${hostId}.${what}`,
  task: (hostId: string) => `task.${hostId}`,
  allTasks: 'task.>',
  lifecycle: (hostId: string, domainId: string) => `lifecycle.${hostId}.${domainId}`,
  allLifecycle: 'lifecycle.>',
  /**
   * Network lifecycle events, on the LIFECYCLE stream beside the domains'. Not under `lifecycle.`:
   * `lifecycle.<hostId>.<domainId>` leaves no token free to mark a network, since a host id may be any word.
   */
  networkLifecycle: (networkId: string) => `netlifecycle.${networkId}`,
  allNetworkLifecycle: 'netlifecycle.>',
  /** A running network's live definition changed (contracts/network/lifecycle.ts NetworkLiveChange): for hosts, not net-event. */
  networkLiveChange: (networkId: string) => `netlifecycle.${networkId}.live`,
  /**
   * A request to open a guest's console on its host, by the principal in the subject (the server lets
   * each publish only under its own name, so the host knows who holds the console).
   */
  consoleOpen: (hostId: string, principal: string) => `console.open.${hostId}.${principal}`,
  /** Bytes typed into a console session (and its acknowledgements and heartbeats), to the host. */
  consoleIn: (hostId: string, sessionId: string) => `console.data.${hostId}.${sessionId}.in`,
  /** What the guest writes on a console session (and the host's heartbeats and close), to the client. */
  consoleOut: (hostId: string, sessionId: string) => `console.data.${hostId}.${sessionId}.out`,
} as const;

/** The principal a `commandFor` subject names, or undefined for the unauthenticated form. */
export const commandPrincipal = (subject: string): string | undefined => {
  const t = subject.split('.');
  return t.length === 4 && t[0] === 'cmd' ? t[1] : undefined;
};

/** Queue groups: replicas of one service share the work of a subject. */
export const QUEUES = { command: 'virtplane-command', query: 'virtplane-query' } as const;
