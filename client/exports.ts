/**
 * The published surface of `@virtplane/client`: the typed client, the error classes it throws, and
 * the zod schemas of what crosses the wire, so a consumer can check what it sends and receives.
 */
export * from './index.ts';
export { ErrorCode, ErrorReply, VirtError, VirtErrorBody, isVirtError, virtError } from '../contracts/errors.ts';
export { ConfigError } from '../platform/config.ts';
export { DomainDefinition, DomainDefinitionRequest, type DomainDefinitionInput } from '../contracts/domain/definition.ts';
export { CommandAccepted, DefineDomainRequest, DomainOpRequest, StartDomainRequest } from '../contracts/domain/commands.ts';
export { DomainStateName, ObservedState, StateReason } from '../contracts/domain/state.ts';
export { DomainListRequest, DomainView, HostView } from '../contracts/views.ts';
export { LifecycleEvent } from '../contracts/lifecycle.ts';
export { NetworkDefinition } from '../contracts/network/definition.ts';
export { NetworkLifecycleEvent } from '../contracts/network/lifecycle.ts';
export { NetworkListRequest, NetworkView } from '../contracts/network/views.ts';
export { StoragePoolDefinition, StorageVolumeDefinition, type StoragePoolDefinitionInput, type StorageVolumeDefinitionInput } from '../contracts/storage/definition.ts';
export { PoolListRequest, PoolView, VolumeView } from '../contracts/storage/views.ts';
