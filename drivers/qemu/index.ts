export { QemuDriver, mapRunState } from './driver.ts';
export type { PreparedInterface, QemuDriverOptions, QemuStartOptions } from './driver.ts';
export { buildQemuCommand, formatCommand, defaultMac, DEFAULT_EMULATOR } from './argv.ts';
export type { NetdevBackend, QemuCommand, QemuRuntime } from './argv.ts';
export { QmpClient, QmpError, QmpClosedError, QmpTimeoutError, connectWhenReady } from './qmp.ts';
export type { QmpEvent, QmpGreeting } from './qmp.ts';
export { qemuAvailable, findQemuBinary } from './host.ts';
export type { QemuAvailability } from './host.ts';
