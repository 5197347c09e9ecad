import { createHash } from 'node:crypto';
import net from 'node:net';

/**
 * One daemon per app, held by the kernel: a listening socket in Linux's abstract namespace
 * named after the control socket's path. Unlike a file in tmpDir it cannot be removed with
 * tmpDir, planted by another user, or left stale by a SIGKILL: it exists exactly as long as
 * the daemon holding it. A second daemon finds the name taken and learns the holder's pid
 * by connecting. Elsewhere than Linux it holds nothing and the lock file alone guards.
 */
export class InstanceLock {
  private constructor(private readonly server: net.Server | null) {}

  static async acquire(ipcFile: string): Promise<InstanceLock> {
    if (process.platform !== 'linux') return new InstanceLock(null);
    const name = `\0nodesockd:${createHash('sha256').update(ipcFile).digest('hex').slice(0, 32)}`;
    const server = net.createServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.end(`${process.pid}\n`);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(name, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') return new InstanceLock(null);
      const holder = await holderPid(name);
      throw new Error(
        `another nodesockd daemon${holder ? ` (pid ${holder})` : ''} is already running on ${ipcFile}`,
      );
    }
    server.on('error', () => undefined);
    server.unref();
    return new InstanceLock(server);
  }

  release(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}

function holderPid(name: string): Promise<number | null> {
  return new Promise((resolve) => {
    let text = '';
    const socket = net.connect(name);
    const timer = setTimeout(() => socket.destroy(), 1000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const pid = Number.parseInt(text, 10);
      resolve(Number.isInteger(pid) && pid > 0 ? pid : null);
    });
    socket.on('error', () => undefined);
  });
}
