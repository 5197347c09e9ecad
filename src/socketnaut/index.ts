/** The thread and process pool (SPEC §7): Socketnaut's API, from the package root. */

export type { ProxySocketAddressInfo } from '../net/address-info.js';
export { acceptHandoffs, HandoffSender } from '../net/handoff.js';
export type { ProxyProtocolVersion } from '../net/proxy-protocol.js';
export type { ServiceAgentOptions } from './agent.js';
export { createServiceAgent, ServiceAgent } from './agent.js';
export type { ConsoleHandler, LogHandler, LogNode, LogRecord } from './log.js';
export {
  consoleHandler,
  formatRecord,
  formatter,
  log,
  logger,
  PoolLogger,
  SyslogLevel,
  SyslogLevel as Level,
} from './log.js';
export type {
  PoolStats,
  ServiceProxyEvents,
  ServiceProxyOptions,
  ShutdownOptions,
  WorkerState,
  WorkerType,
} from './proxy.js';
export { createServiceProxy, ServiceProxy, WorkerAgent } from './proxy.js';
