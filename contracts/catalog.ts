import { RestoreDomainRequest, SaveDomainRequest } from './domain/commands.ts';
import { SaveImageReply, SaveImageRequest } from './domain/save-restore.ts';
import { z } from 'zod';
import { AttachInterfaceRequest, AutostartDomainRequest, UndefineDomainRequest, CommandAccepted, CreateDomainRequest, DefineDomainRequest, DetachInterfaceRequest, DomainOpRequest, RenameDomainRequest, SetMetadataRequest, StartDomainRequest } from './domain/commands.ts';
import { DomainEventBody } from './domain/events.ts';
import { SetResourcesRequest } from './domain/resources.ts';
import { BlockResizeRequest, InjectNmiRequest, ScreenshotReadRequest, ScreenshotRequest, SendKeyRequest } from './domain/guest-actions.ts';
import { AttachDiskRequest, ChangeMediaRequest, DetachDiskRequest, DeviceXmlRequest } from './domain/devices.ts';
import { SnapshotCreateRequest, SnapshotCurrentRequest, SnapshotDeleteRequest, SnapshotRevertRequest } from './domain/snapshots.ts';
import { DomainStats, DomainStatsRequest, NodeStats, NodeStatsRequest } from './domain/stats.ts';
import { EventMeta } from './envelope.ts';
import { ErrorReply } from './errors.ts';
import { HostEvacuateRequest, HostEventBody, HostMaintenanceRequest, HostRefRequest, RegisterHostRequest } from './host/events.ts';
import { LifecycleEvent } from './lifecycle.ts';
import { NameClaimRevoked } from './name-claim.ts';
import { DefineNetworkRequest, NetworkAutostartRequest, NetworkCommandAccepted, NetworkOpRequest } from './network/commands.ts';
import { NetworkEventBody } from './network/events.ts';
import { NetworkLifecycleEvent, NetworkLiveChange } from './network/lifecycle.ts';
import { DhcpLeasesReply, DhcpLeasesRequest } from './network/leases.ts';
import { UpdateNetworkRequest } from './network/update.ts';
import { NetworkGetRequest, NetworkListRequest, NetworkView } from './network/views.ts';
import { CloneVolumeRequest, CreatePoolRequest, CreateVolumeRequest, DefinePoolRequest, DeleteVolumeRequest, PoolAutostartRequest, PoolOpRequest, ResizeVolumeRequest, StartPoolRequest, StorageAccepted } from './storage/commands.ts';
import { StorageEventBody } from './storage/events.ts';
import { StorageClaimRequest, StorageReportRequest, StorageTask } from './storage/tasks.ts';
import { VolStreamAbort, VolStreamChunk, VolStreamData, VolStreamDataAck, VolStreamFinish, VolStreamFinished, VolStreamOpened, VolStreamOpenRequest, VolStreamRead } from './storage/stream.ts';
import { PoolGetRequest, PoolListRequest, PoolView, VolGetRequest, VolListRequest, VolumeView } from './storage/views.ts';
import { ClaimRequests, DomainTask, ReportRequests } from './tasks.ts';
import { DefineSecretRequest, SecretCommandAccepted, SecretOpRequest, SecretValueReply, SetSecretValueRequest } from './secret/commands.ts';
import { SecretEventBody } from './secret/events.ts';
import { SecretGetRequest, SecretListRequest, SecretView } from './secret/views.ts';
import { ConsoleOpened, ConsoleOpenRequest } from './console.ts';
import { CommandOutcome, DomainGetQuery, DomainListRequest, DomainView, HostListRequest, HostView } from './views.ts';
import { DomainCapsReply, DomainCapsRequest } from './host/domain-caps.ts';
import { DomainTimeReply, DomainTimeRequest, MaxVcpusReply, MaxVcpusRequest, NodeCpuMapReply, NodeCpuMapRequest, NodeCpuStatsReply, NodeCpuStatsRequest, SysinfoReply, SysinfoRequest, VcpuInfoReply, VcpuInfoRequest } from './host/host-reads.ts';

/**
 * Every subject virtplane speaks on, with the zod schema of what travels there: the source of the
 * JSON Schemas under docs/schemas/ and of docs/asyncapi.yaml (`npm run schemas`), so a service in
 * another language can speak to virtplane. Addresses use AsyncAPI's `{parameter}` form; each
 * parameter is one subject token.
 */

export type MessageKind = 'command' | 'query' | 'report' | 'task' | 'event' | 'lifecycle' | 'console';

export interface Message {
  /** The schema's file name under docs/schemas/ and its AsyncAPI message id. */
  name: string;
  schema: z.ZodType;
  description: string;
}

export interface ChannelSpec {
  id: string;
  address: string;
  kind: MessageKind;
  description: string;
  /** What is sent on the subject. */
  message: Message;
  /** The answer of a request on it, when it is one. */
  reply?: Message;
  /** Who sends, who receives: `client`, `command`, `projector`, `host-agent`. */
  from: string;
  to: string;
}

const ok = <S extends z.ZodRawShape>(shape: S) => z.object({ ok: z.literal(true), ...shape });
const page = { seq: z.number().int(), replica: z.string().optional(), next: z.string().optional() };
const reportReply = z.looseObject({ ok: z.literal(true) });
const msg = (name: string, schema: z.ZodType, description: string): Message => ({ name, schema, description });
const orError = (name: string, schema: z.ZodType, description: string): Message =>
  msg(name, z.union([schema, ErrorReply]), `${description} Or \`{ok: false, error: {code, message}}\` with libvirt's error vocabulary.`);

const commandReplies = {
  domain: orError('CommandAccepted', CommandAccepted.extend({ outcome: CommandOutcome.optional() }), 'The command was recorded; `version` is the domain version to wait for; `outcome` when the command waited for it (`waitMs`).'),
  network: orError('NetworkCommandAccepted', NetworkCommandAccepted, 'The command was recorded.'),
  storage: orError('StorageAccepted', StorageAccepted, 'The command was recorded.'),
  secret: orError('SecretCommandAccepted', SecretCommandAccepted, 'The command was recorded.'),
};

const command = (aggregate: string, verb: string, name: string, schema: z.ZodType, reply: Message, what: string): ChannelSpec => ({
  id: `cmd-${aggregate}-${verb}`,
  address: `cmd.{principal}.${aggregate}.${verb}`,
  kind: 'command',
  description: `${what} Request/reply in the command services' queue group; the server lets a principal publish only under its own name, which is recorded as the actor. On a server without authentication: \`cmd.${aggregate}.${verb}\`.`,
  message: msg(name, schema, what),
  reply,
  from: 'client',
  to: 'command',
});

const query = (view: string, verb: string, name: string, schema: z.ZodType, reply: Message, what: string): ChannelSpec => ({
  id: `query-${view}-${verb}`,
  address: `query.${view}.${verb}`,
  kind: 'query',
  description: `${what} Request/reply in the projectors' queue group.`,
  message: msg(name, schema, what),
  reply,
  from: 'client',
  to: 'projector',
});

const report = (verb: string, name: string, schema: z.ZodType, what: string): ChannelSpec => ({
  id: `agent-${verb}`,
  address: `agent.{hostId}.${verb}`,
  kind: 'report',
  description: `${what} Request/reply; the subject names the reporting host, which the server lets publish only for itself.`,
  message: msg(name, schema, what),
  reply: orError('ReportAccepted', reportReply, 'Taken into account.'),
  from: 'host-agent',
  to: 'command',
});

/** A commit of one command's events on one aggregate: stored in the EVENTS stream as one message. */
const commitOf = (name: string, body: z.ZodType, what: string): Message =>
  msg(
    name,
    z.object({
      commandId: z.string(),
      previousVersion: z.number().int().nonnegative().optional(),
      events: z.array(z.intersection(body, EventMeta)),
    }),
    `${what} One message per command (its events land together); the stream sequence is the aggregate's version.`,
  );

const NameClaimed = z.object({ type: z.literal('NameClaimed'), data: z.object({ uuid: z.string() }) });

export const CATALOG: ChannelSpec[] = [
  command('domain', 'define', 'DefineDomainRequest', DefineDomainRequest, commandReplies.domain, 'Define a domain from JSON or libvirt XML (virsh define).'),
  command('domain', 'undefine', 'UndefineDomainRequest', UndefineDomainRequest, commandReplies.domain, 'Undefine a domain, with its managed save image and snapshot metadata when asked (virsh undefine [--managed-save] [--snapshots-metadata]).'),
  command('domain', 'autostart', 'AutostartDomainRequest', AutostartDomainRequest, commandReplies.domain, "Start a domain when its host's agent starts, or no longer (virsh autostart [--disable])."),
  command('domain', 'reset', 'DomainOpRequest', DomainOpRequest, commandReplies.domain, 'Reset a running domain (virsh reset).'),
  command('domain', 'send-key', 'SendKeyRequest', SendKeyRequest, commandReplies.domain, 'Press keys on a running guest, recorded with who asked (virsh send-key [--codeset] [--holdtime]).'),
  command('domain', 'blockresize', 'BlockResizeRequest', BlockResizeRequest, commandReplies.domain, "Grow (or shrink) a running guest's disk image, its definition unchanged (virsh blockresize)."),
  command('domain', 'screenshot', 'ScreenshotRequest', ScreenshotRequest, commandReplies.domain, "Take a picture of a running guest's screen on its host, recorded with who asked; read it with hostread.<host>.screenshot (virsh screenshot)."),
  command('domain', 'inject-nmi', 'InjectNmiRequest', InjectNmiRequest, commandReplies.domain, 'Inject an NMI into a running guest, recorded with who asked (virsh inject-nmi).'),
  command('domain', 'managedsave', 'DomainOpRequest', DomainOpRequest, commandReplies.domain, "Save a running domain's state on its host and stop it; the next start resumes it (virsh managedsave)."),
  command('domain', 'save', 'SaveDomainRequest', SaveDomainRequest, commandReplies.domain, "Save a running domain's state to a file on its host and stop it (virsh save); the host writes only inside its image directories."),
  command('domain', 'restore', 'RestoreDomainRequest', RestoreDomainRequest, commandReplies.domain, 'Start a domain from a saved image on a host, recreating it from the definition the image records (virsh restore [--paused|--running]).'),
  command('domain', 'managedsave-remove', 'DomainOpRequest', DomainOpRequest, commandReplies.domain, "Remove a domain's managed save image (virsh managedsave-remove)."),
  command('domain', 'snapshot-create', 'SnapshotCreateRequest', SnapshotCreateRequest, commandReplies.domain, 'Take a snapshot of a domain, by name and description or from a <domainsnapshot> document (virsh snapshot-create-as, snapshot-create); diskOnly (--disk-only) takes an external one, each disk on a new qcow2 overlay.'),
  command('domain', 'snapshot-revert', 'SnapshotRevertRequest', SnapshotRevertRequest, commandReplies.domain, 'Revert a domain to a snapshot, or to its current one (virsh snapshot-revert [--running|--paused]).'),
  command('domain', 'snapshot-current', 'SnapshotCurrentRequest', SnapshotCurrentRequest, commandReplies.domain, 'Make a snapshot the current one, the parent of the next (virsh snapshot-current <name>).'),
  command('domain', 'snapshot-delete', 'SnapshotDeleteRequest', SnapshotDeleteRequest, commandReplies.domain, 'Delete a snapshot, with or only its children, or only its metadata (virsh snapshot-delete [--children|--children-only] [--metadata]).'),
  command('domain', 'start', 'StartDomainRequest', StartDomainRequest, commandReplies.domain, 'Start a domain (virsh start).'),
  ...(['shutdown', 'destroy', 'suspend', 'resume', 'reboot'] as const).map((op) =>
    command('domain', op, 'DomainOpRequest', DomainOpRequest, commandReplies.domain, `virsh ${op}.`),
  ),
  command('domain', 'create', 'CreateDomainRequest', CreateDomainRequest, commandReplies.domain, 'Create and start a transient domain, or start a defined inactive one with this definition (virsh create).'),
  command('domain', 'rename', 'RenameDomainRequest', RenameDomainRequest, commandReplies.domain, 'Rename an inactive domain (virsh domrename).'),
  command('domain', 'desc', 'SetMetadataRequest', SetMetadataRequest, commandReplies.domain, "Set a domain's title or description (virsh desc), or an application's element under a namespace URI in its <metadata> (virsh metadata: field 'metadata', uri, key; '' removes it)."),
  command('domain', 'set-resources', 'SetResourcesRequest', SetResourcesRequest, commandReplies.domain, "Change a domain's memory or vCPU counts (virsh setmem, setmaxmem, setvcpus)."),
  command('domain', 'attach-interface', 'AttachInterfaceRequest', AttachInterfaceRequest, commandReplies.domain, 'Attach a network interface (virsh attach-interface).'),
  command('domain', 'detach-interface', 'DetachInterfaceRequest', DetachInterfaceRequest, commandReplies.domain, 'Detach a network interface by MAC (virsh detach-interface).'),
  command('domain', 'attach-disk', 'AttachDiskRequest', AttachDiskRequest, commandReplies.domain, 'Attach a disk, live on the running guest or to the definition (virsh attach-disk).'),
  command('domain', 'detach-disk', 'DetachDiskRequest', DetachDiskRequest, commandReplies.domain, 'Detach a disk by target or source path (virsh detach-disk).'),
  command('domain', 'attach-device', 'DeviceXmlRequest', DeviceXmlRequest, commandReplies.domain, 'Attach a <disk> or <interface> given as XML (virsh attach-device).'),
  command('domain', 'detach-device', 'DeviceXmlRequest', DeviceXmlRequest, commandReplies.domain, 'Detach a <disk> or <interface> given as XML (virsh detach-device).'),
  command('domain', 'update-device', 'DeviceXmlRequest', DeviceXmlRequest, commandReplies.domain, "Update a <disk> given as XML: a cdrom's media on the running guest, any setting in the definition (virsh update-device)."),
  command('domain', 'change-media', 'ChangeMediaRequest', ChangeMediaRequest, commandReplies.domain, "Eject, insert or update a cdrom's or floppy's media (virsh change-media)."),
  command('network', 'define', 'DefineNetworkRequest', DefineNetworkRequest, commandReplies.network, 'Define a network (virsh net-define).'),
  command('network', 'create', 'DefineNetworkRequest', DefineNetworkRequest, commandReplies.network, 'Create and start a network; a new one is transient (virsh net-create).'),
  ...(['undefine', 'start', 'destroy'] as const).map((verb) => command('network', verb, 'NetworkOpRequest', NetworkOpRequest, commandReplies.network, `virsh net-${verb}.`)),
  command('network', 'autostart', 'NetworkAutostartRequest', NetworkAutostartRequest, commandReplies.network, 'virsh net-autostart.'),
  command('network', 'update', 'UpdateNetworkRequest', UpdateNetworkRequest, commandReplies.network, "Add, delete or modify one ip-dhcp-host or dns-host entry of a network's persistent config (virsh net-update --config; --live is refused)."),
  command('pool', 'define', 'DefinePoolRequest', DefinePoolRequest, commandReplies.storage, 'Define a storage pool (virsh pool-define).'),
  ...(['undefine', 'build', 'destroy'] as const).map((verb) => command('pool', verb, 'PoolOpRequest', PoolOpRequest, commandReplies.storage, `virsh pool-${verb}.`)),
  command('pool', 'start', 'StartPoolRequest', StartPoolRequest, commandReplies.storage, 'virsh pool-start (with `build`: --build).'),
  command('pool', 'autostart', 'PoolAutostartRequest', PoolAutostartRequest, commandReplies.storage, "Start a pool when its host's agent starts, or no longer (virsh pool-autostart [--disable])."),
  command('vol', 'create', 'CreateVolumeRequest', CreateVolumeRequest, commandReplies.storage, 'Create a volume in a pool (virsh vol-create).'),
  command('vol', 'delete', 'DeleteVolumeRequest', DeleteVolumeRequest, commandReplies.storage, 'Delete a volume (virsh vol-delete).'),
  command('pool', 'create', 'CreatePoolRequest', CreatePoolRequest, commandReplies.storage, 'Create and start a pool; a new one is transient (virsh pool-create).'),
  command('pool', 'refresh', 'PoolOpRequest', PoolOpRequest, commandReplies.storage, 'Look at what the pool holds again (virsh pool-refresh).'),
  command('pool', 'delete', 'PoolOpRequest', PoolOpRequest, commandReplies.storage, "Remove an inactive pool's directory; the pool stays defined (virsh pool-delete)."),
  command('vol', 'resize', 'ResizeVolumeRequest', ResizeVolumeRequest, commandReplies.storage, "Change a volume's capacity (virsh vol-resize)."),
  command('vol', 'wipe', 'DeleteVolumeRequest', DeleteVolumeRequest, commandReplies.storage, "Overwrite a volume's content with zeros (virsh vol-wipe)."),
  command('vol', 'clone', 'CloneVolumeRequest', CloneVolumeRequest, commandReplies.storage, 'Copy a volume to a new one in the same pool (virsh vol-clone).'),
  command('secret', 'define', 'DefineSecretRequest', DefineSecretRequest, commandReplies.secret, 'Define or modify a secret from libvirt secret XML (virsh secret-define).'),
  command('secret', 'undefine', 'SecretOpRequest', SecretOpRequest, commandReplies.secret, 'Undefine a secret; its value is destroyed (virsh secret-undefine).'),
  command(
    'secret',
    'set-value',
    'SetSecretValueRequest',
    SetSecretValueRequest,
    commandReplies.secret,
    "Set a secret's value, base64, at most 64 KiB (virsh secret-set-value). The command service seals it with AES-256-GCM under a key it alone holds; the log records only that it was set. Use TLS: the request carries the value.",
  ),
  command(
    'secret',
    'get-value',
    'SecretOpRequest',
    SecretOpRequest,
    orError('SecretValueReply', SecretValueReply, "The secret's value, base64."),
    "A secret's value (virsh secret-get-value); refused for a private secret. Records nothing; only principals that may send commands (operators) can ask.",
  ),
  command(
    'host',
    'maintenance',
    'HostMaintenanceRequest',
    HostMaintenanceRequest,
    orError('HostMaintenanceReply', ok({ hostId: z.string(), maintenance: z.boolean(), version: z.number().int() }), 'The host is (or is no longer) in maintenance.'),
    'Put a host in maintenance (no new placements) or take it out.',
  ),
  command(
    'host',
    'evacuate',
    'HostEvacuateRequest',
    HostEvacuateRequest,
    orError(
      'HostEvacuateReply',
      ok({
        hostId: z.string(),
        maintenance: z.literal(true),
        domains: z.array(z.object({ domainId: z.string(), name: z.string(), hostId: z.string(), status: z.enum(['moving', 'moved', 'refused']), error: z.string().optional() })),
      }),
      'The host is in maintenance; each of its domains is moving, moved already, or refused with why.',
    ),
    'Move every domain of a host to other hosts: each guest is stopped there first, then started elsewhere if it ran (virtplane host-evacuate).',
  ),
  command(
    'host',
    'remove',
    'HostRefRequest',
    HostRefRequest,
    orError('HostRemoveReply', ok({ hostId: z.string(), removed: z.literal(true), version: z.number().int() }), 'The host is removed; its agent is refused until readmitted.'),
    'Remove a host that has no domains (virtplane host-remove).',
  ),
  command(
    'host',
    'readmit',
    'HostRefRequest',
    HostRefRequest,
    orError('HostReadmitReply', ok({ hostId: z.string(), readmitted: z.boolean(), version: z.number().int() }), 'The removed host may register again.'),
    'Let a removed host register again (done by host-enroll).',
  ),

  query('domain', 'get', 'DomainGetQuery', DomainGetQuery, orError('DomainGetReply', ok({ domain: DomainView, settled: z.boolean(), seq: z.number().int() }), 'One domain.'), 'One domain by uuid or name.'),
  query('domain', 'list', 'DomainListRequest', DomainListRequest, orError('DomainListReply', ok({ domains: z.array(DomainView), ...page }), 'A page of domains.'), 'Domains, paged.'),
  query('host', 'list', 'HostListRequest', HostListRequest, orError('HostListReply', ok({ hosts: z.array(HostView), ...page }), 'A page of hosts.'), 'Hosts, paged.'),
  query('network', 'get', 'NetworkGetRequest', NetworkGetRequest, orError('NetworkGetReply', z.looseObject({ ok: z.literal(true), network: NetworkView }), 'One network.'), 'One network by uuid or name.'),
  query('network', 'list', 'NetworkListRequest', NetworkListRequest, orError('NetworkListReply', ok({ networks: z.array(NetworkView), ...page }), 'A page of networks.'), 'Networks, paged.'),
  query('pool', 'get', 'PoolGetRequest', PoolGetRequest, orError('PoolGetReply', z.looseObject({ ok: z.literal(true), pool: PoolView }), 'One pool.'), 'One storage pool by uuid or name.'),
  query('pool', 'list', 'PoolListRequest', PoolListRequest, orError('PoolListReply', z.looseObject({ ok: z.literal(true), pools: z.array(PoolView), next: z.string().optional() }), 'A page of pools.'), 'Storage pools, paged.'),
  query('vol', 'get', 'VolGetRequest', VolGetRequest, orError('VolGetReply', z.looseObject({ ok: z.literal(true), volume: VolumeView }), 'One volume.'), 'One volume of a pool.'),
  query('vol', 'list', 'VolListRequest', VolListRequest, orError('VolListReply', z.looseObject({ ok: z.literal(true), volumes: z.array(VolumeView), next: z.string().optional() }), 'A page of volumes.'), 'The volumes of a pool, paged.'),
  query('secret', 'get', 'SecretGetRequest', SecretGetRequest, orError('SecretGetReply', ok({ secret: SecretView }), 'One secret: its definition and when a value was set; never the value.'), 'One secret by uuid.'),
  query('secret', 'list', 'SecretListRequest', SecretListRequest, orError('SecretListReply', ok({ secrets: z.array(SecretView), ...page }), 'A page of secrets, by uuid.'), 'Secrets, paged; host agents may not ask.'),
  {
    id: 'hostquery-domain-list',
    address: 'hostquery.{hostId}.domain.list',
    kind: 'query',
    description: "A host agent's view of its own guests: query.domain.list narrowed to the host the subject names, which the server lets only that host ask.",
    message: msg('HostDomainListRequest', DomainListRequest.omit({ host: true }), "The host's domains, paged."),
    reply: orError('HostDomainListReply', ok({ domains: z.array(DomainView), ...page }), 'A page of the host’s domains.'),
    from: 'host-agent',
    to: 'projector',
  },

  // Live readings an operator asks of one host's agent (services/host-agent/live-reads.ts).
  {
    id: 'hostread-domain-stats',
    address: 'hostread.{hostId}.domain-stats',
    kind: 'query',
    description: "A running guest's counters now, asked of the agent of the host that runs it (domstats, domblkstat, domifstat, dommemstat, domblkinfo, cpu-stats). Only operators may ask; only that host may answer, and only for guests it runs.",
    message: msg('DomainStatsRequest', DomainStatsRequest, 'The domain and the definition the control plane holds for it.'),
    reply: orError('DomainStatsReply', ok({ stats: DomainStats }), "The guest's CPU, balloon, vCPU, disk and interface numbers."),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-node-stats',
    address: 'hostread.{hostId}.node-stats',
    kind: 'query',
    description: "A host's memory now and each NUMA cell's free memory (nodememstats, freecell), asked of that host's agent.",
    message: msg('NodeStatsRequest', NodeStatsRequest, 'Nothing: the subject names the host.'),
    reply: orError('NodeStatsReply', ok({ stats: NodeStats }), 'Total, free, buffers and cached memory, and free memory by cell.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-domain-caps',
    address: 'hostread.{hostId}.domain-caps',
    kind: 'query',
    description: "What the host's hypervisor offers a domain (virsh domcapabilities): machine, vCPU limit, CPU models, devices, probed from qemu when asked. A test-driver host answers libvirt's 'not supported'.",
    message: msg('DomainCapsRequest', DomainCapsRequest, 'Optionally the domain type, emulator, architecture and machine.'),
    reply: orError('DomainCapsReply', ok(DomainCapsReply.shape), "libvirt's domain capabilities XML."),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-vcpu-info',
    address: 'hostread.{hostId}.vcpu-info',
    kind: 'query',
    description: "A running guest's vCPUs (virsh vcpuinfo): the host CPU each last ran on, its state, CPU time and affinity, read from the vCPU threads qemu names; the host's CPU count for the maps. Only operators may ask; only the host that runs the guest answers.",
    message: msg('VcpuInfoRequest', VcpuInfoRequest, 'The domain and the definition the control plane holds for it.'),
    reply: orError('VcpuInfoReply', ok(VcpuInfoReply.shape), 'Each online vCPU, and how many CPUs the host has.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-domain-time',
    address: 'hostread.{hostId}.domain-time',
    kind: 'query',
    description: "A running guest's clock (virsh domtime), which only its guest agent can read: a qemu guest without one answers libvirt's 'QEMU guest agent is not configured'.",
    message: msg('DomainTimeRequest', DomainTimeRequest, 'The domain and the definition the control plane holds for it.'),
    reply: orError('DomainTimeReply', ok(DomainTimeReply.shape), 'Seconds and nanoseconds since the epoch.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-max-vcpus',
    address: 'hostread.{hostId}.max-vcpus',
    kind: 'query',
    description: "The most vCPUs a guest may have on the host (virsh maxvcpus): for qemu the domain capabilities' vCPU limit of the default machine.",
    message: msg('MaxVcpusRequest', MaxVcpusRequest, 'Optionally the domain type (kvm, qemu).'),
    reply: orError('MaxVcpusReply', ok(MaxVcpusReply.shape), 'The limit.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-node-cpu-stats',
    address: 'hostread.{hostId}.node-cpu-stats',
    kind: 'query',
    description: "The host's CPU times since boot in ns (virsh nodecpustats), from /proc/stat: all CPUs or one. A CPU the host lacks is libvirt's 'Invalid cpuNum'.",
    message: msg('NodeCpuStatsRequest', NodeCpuStatsRequest, 'Optionally one CPU (-1 or none: all).'),
    reply: orError('NodeCpuStatsReply', ok(NodeCpuStatsReply.shape), 'User, system, idle and iowait time.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-node-cpu-map',
    address: 'hostread.{hostId}.node-cpu-map',
    kind: 'query',
    description: "The host's CPUs (virsh nodecpumap): how many are present and which are online, from /sys/devices/system/cpu.",
    message: msg('NodeCpuMapRequest', NodeCpuMapRequest, 'Nothing: the subject names the host.'),
    reply: orError('NodeCpuMapReply', ok(NodeCpuMapReply.shape), 'The count of CPUs present and the online ones.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-sysinfo',
    address: 'hostread.{hostId}.sysinfo',
    kind: 'query',
    description: "The host's SMBIOS (virsh sysinfo) from /sys/class/dmi/id, as libvirt's sysinfo XML; a machine whose firmware gives none answers libvirt's 'Host SMBIOS information is not available'.",
    message: msg('SysinfoRequest', SysinfoRequest, 'Nothing: the subject names the host.'),
    reply: orError('SysinfoReply', ok(SysinfoReply.shape), "libvirt's sysinfo XML."),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-dhcp-leases',
    address: 'hostread.{hostId}.dhcp-leases',
    kind: 'query',
    description: "A network's DHCP leases as this host's dnsmasq holds them now (virsh net-dhcp-leases asks every live host). Only operators may ask; only that host answers; nothing is recorded.",
    message: msg('DhcpLeasesRequest', DhcpLeasesRequest, 'The network, and optionally one MAC address.'),
    reply: orError('DhcpLeasesReply', ok(DhcpLeasesReply.shape), "The host's leases of the network."),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-save-image',
    address: 'hostread.{hostId}.save-image',
    kind: 'query',
    description: 'The definition a saved image on the host records, and whether its guest ran (virsh save-image-dumpxml; restore asks it too). Only inside the host\'s image directories.',
    message: msg('SaveImageRequest', SaveImageRequest, 'The absolute path of the image on the host.'),
    reply: orError('SaveImageReply', ok(SaveImageReply.shape), 'The domain XML, whether the guest ran, and the image layout (test or qemu).'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostread-screenshot',
    address: 'hostread.{hostId}.screenshot',
    kind: 'query',
    description: "A piece of the picture a finished screenshot task left on the host (virsh screenshot reads it whole, piece by piece). Only principals allowed the host's live readings (operators, who may use guests' consoles) may ask; pictures are kept ten minutes.",
    message: msg('ScreenshotReadRequest', ScreenshotReadRequest, 'The screenshot task, and the offset to read from.'),
    reply: orError('ScreenshotReadReply', ok({ size: z.number().int().nonnegative(), data: z.string() }), 'The whole picture\'s size and up to 256 KiB of it from the offset, in base64.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'hostquery-pool-list',
    address: 'hostquery.{hostId}.pool.list',
    kind: 'query',
    description: "A host agent's own pools (to ask for its autostart pools' start when it starts): query.pool.list narrowed to the host the subject names.",
    message: msg('HostPoolListRequest', PoolListRequest.omit({ host: true }), "The host's pools, paged."),
    reply: orError('HostPoolListReply', z.looseObject({ ok: z.literal(true), pools: z.array(PoolView), next: z.string().optional() }), "A page of the host's pools."),
    from: 'host-agent',
    to: 'projector',
  },
  {
    id: 'hostquery-vol-get',
    address: 'hostquery.{hostId}.vol.get',
    kind: 'query',
    description: "A volume of one of the host's own pools, with its pool: what a host agent checks before streaming it. Another host's pool is not found.",
    message: msg('HostVolGetRequest', z.object({ pool: z.string(), volume: z.string() }), 'The pool (uuid or name) and the volume name.'),
    reply: orError('HostVolGetReply', z.looseObject({ ok: z.literal(true), pool: PoolView, volume: VolumeView }), 'The volume and its pool.'),
    from: 'host-agent',
    to: 'projector',
  },
  ...(
    [
      ['open', 'VolStreamOpenRequest', VolStreamOpenRequest, 'VolStreamOpened', VolStreamOpened, 'Opens a vol-upload or vol-download session on the host that owns the pool; refused while the volume has work pending or another stream.'],
      ['data', 'VolStreamData', VolStreamData, 'VolStreamDataAck', VolStreamDataAck, 'One chunk of an upload, numbered from 0; answered once written, so the sender keeps only a few unanswered.'],
      ['read', 'VolStreamRead', VolStreamRead, 'VolStreamChunk', VolStreamChunk, 'Asks for chunk `seq` of a download, in order.'],
      ['finish', 'VolStreamFinish', VolStreamFinish, 'VolStreamFinished', VolStreamFinished, "Ends a session: the host's count and sha256 of the bytes; an upload whose sender's differ is refused."],
      ['abort', 'VolStreamAbort', VolStreamAbort, 'VolStreamAborted', z.object({}), 'Ends a session early (a session silent for its idle time ends by itself).'],
    ] as const
  ).map(
    ([verb, name, schema, replyName, reply, description]): ChannelSpec => ({
      id: `volstream-${verb}`,
      address: `volstream.{hostId}.${verb}`,
      kind: 'query',
      description: `${description} Chunks are base64 in JSON and sized to the server's max_payload; the bytes never enter the event log.`,
      message: msg(name, schema, description),
      reply: orError(`${replyName}Reply`, z.looseObject({ ok: z.literal(true), ...reply.shape }), 'The answer.'),
      from: 'client',
      to: 'host-agent',
    }),
  ),

  report('register', 'RegisterHostRequest', RegisterHostRequest, 'A host agent registers its host and capabilities (and takes its lease).'),
  report('claim', 'ClaimRequests', ClaimRequests, 'A host agent claims a domain task before acting on it, or several at once (`claims`, answered `results` in order, each entry as a reply of its own).'),
  report('report', 'ReportRequests', ReportRequests, 'What a host did or saw: a task outcome, an observed state, runtime interfaces; or several at once (`reports`, answered `results` in order, each entry as a reply of its own).'),
  report('storage-claim', 'StorageClaimRequest', StorageClaimRequest, 'A host agent claims a storage task.'),
  report('storage-report', 'StorageReportRequest', StorageReportRequest, "The outcome of a storage task, or (kind `autostart`) a starting agent's ask for the start of one of its autostart pools."),

  {
    id: 'task-domain',
    address: 'task.{hostId}',
    kind: 'task',
    description: "Domain work for one host on the TASKS stream (a work queue), pulled through the host's own durable consumer `agent-<hostId>`.",
    message: msg('DomainTask', DomainTask, 'Start, stop, change a guest.'),
    from: 'command',
    to: 'host-agent',
  },
  {
    id: 'task-storage',
    address: 'task.{hostId}.storage',
    kind: 'task',
    description: "Storage work for one host on the TASKS stream, pulled through `agent-<hostId>-storage`.",
    message: msg('StorageTask', StorageTask, 'Build or start a pool, create or delete a volume.'),
    from: 'command',
    to: 'host-agent',
  },

  ...(
    [
      ['domain', 'DomainCommit', z.union([DomainEventBody, NameClaimRevoked]), 'Events of one domain.'],
      ['network', 'NetworkCommit', z.union([NetworkEventBody, NameClaimRevoked]), 'Events of one network.'],
      ['pool', 'PoolCommit', z.union([StorageEventBody, NameClaimRevoked]), 'Events of one storage pool and its volumes.'],
      ['host', 'HostCommit', HostEventBody, 'Events of one host.'],
      ['secret', 'SecretCommit', SecretEventBody, 'Events of one secret: its definition, and that a value was set (an id and a keyed digest, never the value).'],
    ] as const
  ).map(
    ([type, name, body, what]): ChannelSpec => ({
      id: `events-${type}`,
      address: `ev.${type}.{aggregateId}`,
      kind: 'event',
      description: `The audit log: ${what.toLowerCase()} Only the command service appends to the EVENTS stream; read it with an ordered consumer.`,
      message: commitOf(name, body, what),
      from: 'command',
      to: 'projector',
    }),
  ),
  {
    id: 'events-name',
    address: 'ev.name.{scope}.{nameToken}',
    kind: 'event',
    description: "Name claims that keep domain, network and pool names, and secrets' usages, unique across the fleet: scope is domain, network, pool or secret (a usage `<type>:<id>`), the token the name in unpadded base64url.",
    message: commitOf('NameClaimCommit', NameClaimed, 'A name claimed for a uuid.'),
    from: 'command',
    to: 'command',
  },

  {
    id: 'console-open',
    address: 'console.open.{hostId}.{principal}',
    kind: 'console',
    description:
      "Opens a running guest's serial console on its host (virsh console), for the principal in the subject. The client subscribes first to `console.data.{hostId}.{sessionId}.out`, where the host sends what the guest writes (raw bytes, each chunk with a `Console-Offset` header: where it ends), and sends typed bytes on `console.data.{hostId}.{sessionId}.in`. Control messages on both carry a `Console-Control` header and no data: `ack` (with `Console-Offset`, what the client has written out; the host sends at most `windowBytes` beyond it), `ping` (every `heartbeatMs`; a side silent for `idleMs` is gone) and `close` (from the host, a JSON body `{reason, message}`). See contracts/console.ts.",
    message: msg('ConsoleOpenRequest', ConsoleOpenRequest, 'The domain, a session id of the client\'s choosing, the device, and whether to take the console from a session that holds it.'),
    reply: orError('ConsoleOpenReply', ok(ConsoleOpened.shape), 'The session is open: the device it is attached to and its timings.'),
    from: 'client',
    to: 'host-agent',
  },
  {
    id: 'lifecycle-domain',
    address: 'lifecycle.{hostId}.{domainId}',
    kind: 'lifecycle',
    description: "Domain lifecycle events in libvirt's vocabulary on the LIFECYCLE stream, each once, in log order.",
    message: msg('LifecycleEvent', LifecycleEvent, 'Started Booted, Stopped Shutdown, ...'),
    from: 'projector',
    to: 'client',
  },
  {
    id: 'lifecycle-network',
    address: 'netlifecycle.{networkId}',
    kind: 'lifecycle',
    description: 'Network lifecycle events (DEFINED, UNDEFINED, STARTED, STOPPED) on the LIFECYCLE stream.',
    message: msg('NetworkLifecycleEvent', NetworkLifecycleEvent, 'A network was defined, undefined, started or stopped.'),
    from: 'projector',
    to: 'client',
  },
  {
    id: 'network-live-change',
    address: 'netlifecycle.{networkId}.live',
    kind: 'lifecycle',
    description: "A running network's live definition changed (net-update --live): every host running it converges its DHCP to the view. Not a libvirt event; net-event does not show it.",
    message: msg('NetworkLiveChange', NetworkLiveChange, 'The version of the network view to read at least.'),
    from: 'projector',
    to: 'host-agent',
  },
];

export const PARAMETERS: Record<string, string> = {
  principal: 'The sending principal (SECURITY.md): one subject token.',
  hostId: 'A host id: one subject token.',
  aggregateId: 'The aggregate uuid.',
  domainId: 'The domain uuid.',
  networkId: 'The network uuid.',
  scope: 'domain, network, pool or secret.',
  nameToken: 'The name in unpadded base64url.',
};

/** A channel's address as a NATS subscription subject: each parameter a `*`. */
export const subjectPattern = (address: string): string => address.replace(/\{[A-Za-z]+\}/g, '*');
