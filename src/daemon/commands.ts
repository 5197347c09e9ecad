/**
 * The daemon's side of the control protocol: one handler per command, typed by the protocol's
 * {@link Commands} map, and the upgrade that turns a connection into an adopted worker's channel.
 * A command without a handler, or a handler whose reply no longer matches what the client
 * expects, fails to compile.
 */
import type { FrameConnection } from '../ipc/connection';
import type { CommandName, CommandRequest, Commands, WorkerHelloReply } from '../ipc/protocol';
import type { UpgradeHandler } from '../ipc/server';

export type CommandHandlers = {
  [K in CommandName]: (data: Commands[K]['data']) => Promise<Commands[K]['reply']> | Commands[K]['reply'];
};

/** Runs the handler of a validated request; what it returns (or throws) is the reply. */
export async function dispatch(
  handlers: CommandHandlers,
  request: CommandRequest,
): Promise<Commands[CommandName]['reply']> {
  // The union of requests cannot index the table and keep the pairing; the table's type did
  // the checking, this only looks the handler up.
  const handler = handlers[request.type] as (data: unknown) => Promise<unknown> | unknown;
  return (await handler('data' in request ? request.data : undefined)) as Commands[CommandName]['reply'];
}

/**
 * The worker-hello upgrade: `attach` takes the connection as the channel of the adopted worker
 * with that id and pid, or returns false when there is none (the worker is told, and retries).
 */
export function workerChannelUpgrade(
  attach: (workerId: string, pid: number, connection: FrameConnection) => boolean,
): UpgradeHandler {
  return ({ data: { workerId, pid } }, connection): WorkerHelloReply => {
    if (!attach(workerId, pid, connection)) throw new Error(`unknown worker ${workerId} (pid ${pid})`);
    return { adopted: true };
  };
}
