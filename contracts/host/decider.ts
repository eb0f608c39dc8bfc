import type { Envelope } from '../envelope.ts';
import type { HostCapabilities, HostEventBody, RegisterHostRequest } from './events.ts';

export interface HostAggregate {
  exists: boolean;
  hostId: string;
  hostname: string;
  instanceId: string;
  agentVersion: string;
  capabilities: HostCapabilities | null;
  registeredAt: string | null;
  version: number;
}

export const initialHostState = (hostId: string): HostAggregate => ({
  exists: false,
  hostId,
  hostname: '',
  instanceId: '',
  agentVersion: '',
  capabilities: null,
  registeredAt: null,
  version: 0,
});

/** Every agent start is recorded (auditors want restarts); a repeated registration of one process is not. */
export const decideRegister = (cmd: RegisterHostRequest, s: HostAggregate): HostEventBody[] =>
  s.exists && s.instanceId === cmd.instanceId && JSON.stringify(s.capabilities) === JSON.stringify(cmd.capabilities)
    ? []
    : [
        {
          type: 'HostRegistered',
          data: {
            hostname: cmd.hostname,
            instanceId: cmd.instanceId,
            agentVersion: cmd.agentVersion,
            capabilities: cmd.capabilities,
          },
        },
      ];

export const evolveHost = (s: HostAggregate, e: Envelope<HostEventBody>): HostAggregate => ({
  ...s,
  exists: true,
  hostname: e.data.hostname,
  instanceId: e.data.instanceId,
  agentVersion: e.data.agentVersion,
  capabilities: e.data.capabilities,
  registeredAt: e.time,
  version: e.version,
});
