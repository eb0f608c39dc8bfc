/**
 * Host network driver: Linux bridges, nftables, dnsmasq, tap and macvtap/macvlan devices for one
 * host. Plain async code over iproute2/nft/dnsmasq; no NATS, no events.
 *
 *   const host = await NetworkHost.open({ stateDir, netns? });
 *
 *   host.ensureNetwork(def)             realise a NetworkDefinition on this host (idempotent):
 *                                       isolated/nat/route/open → our bridge + nft tables
 *                                       `virtplane_<uuid>` (inet, bridge) + ip_forward + dnsmasq if
 *                                       it has DHCP ranges; bridge → an existing host bridge;
 *                                       bridge(with dev)/vepa/private/passthrough → macvtap parent
 *   host.releaseNetwork(name)           remove it if no interface uses it → whether it is gone
 *   host.destroyNetwork(name)           remove it regardless; guests' devices stay, detached
 *   host.updateDhcpHosts(def)           net-update --live: the running dnsmasq re-reads the fixed
 *                                       hosts from `<uuid>.hostsfile` (SIGHUP, same pid, leases kept)
 *   host.plugInterface(domainUuid, iface, lookup, {direct?})
 *                                       create and attach the device for one InterfaceModel;
 *                                       type network realises the network on first use (lookup
 *                                       resolves names); → PluggedInterface {ifname, mac, bridge?, …}
 *   host.unplugInterface(domainUuid, ifname)
 *                                       clean up everything keyed by the name, delete the device,
 *                                       then release the name; the last user removes the network
 *   host.listInterfaces() / listNetworks()
 *   host.reseed(namesInUse)             names of running guests' devices after a restart
 *   host.close()                        flush state; devices and networks stay
 *
 * Device names: no `<target dev>` gives vnetN / macvtapN / macvlanN from per-host counters that
 * only grow (wrapping at INT_MAX or when the name would exceed 15 characters), skip names that
 * exist, are held, or were released recently, and persist in `<stateDir>/ifnames.json`. A `%d`
 * template is expanded from its own counter, never by the kernel. A fixed name is used as is; one
 * shaped like a generated name is rejected. A device that already exists is an error, never shared.
 * Errors are VirtError (contracts/errors.ts).
 */
export {
  NetworkHost,
  type NetworkHostOptions,
  type NetworkLookup,
  type PlugOptions,
  type PluggedInterface,
  type RealisedNetwork,
  type DhcpLease,
  type NetworkKind,
  type DirectMode,
} from './host.ts';
export {
  NameAllocator,
  AllocatorState,
  classifyRequest,
  isReservedName,
  isTemplate,
  maxIdFor,
  validateIfname,
  INT_MAX,
  MAX_ATTEMPTS,
  MAX_IFNAME_LENGTH,
  NAME_KINDS,
  type NameKind,
  type AllocatorOptions,
  type ExistsCheck,
} from './names.ts';
export { tableName } from './nft.ts';
