// Loss at scale-down: node bench/pool/scale-down.js reuseport|relay [cycles]
// A thread pool (1..3 workers, 10 ms idle grace) under a light load of new connections (2
// clients, one request per connection, 20 ms apart) is grown to 3 by held connections and left
// to shrink back to 1, `cycles` times; prints the requests served and failed. With reusePort a thread closes its own listener on the
// front's port when it is scaled down, and the kernel resets what is still in that listener's
// accept queue unless net.ipv4.tcp_migrate_req=1.
const http = require('node:http');
const net = require('node:net');
const { createServiceProxy } = require('nodesockd');

const reusePort = process.argv[2] === 'reuseport';
const cycles = Number(process.argv[3] ?? 5);
const server = net.createServer();
const proxy = createServiceProxy({
  server,
  minWorkers: 1,
  maxWorkers: 3,
  workersCheckingInterval: 10,
  idleTimeout: 10,
  reusePort,
  workerURL: require.resolve('./pool-worker.js'),
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 1024 });

function get(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const until = async (what, fn, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

proxy.once('ready', async () => {
  const port = server.address().port;
  let stop = false;
  let ok = 0;
  const errors = new Map();
  const loops = Array.from({ length: 2 }, async () => {
    while (!stop) {
      try {
        await get(port, '/');
        ok += 1;
        await new Promise((r) => setTimeout(r, 20));
      } catch (err) {
        const key = err.code ?? err.message;
        errors.set(key, (errors.get(key) ?? 0) + 1);
      }
    }
  });
  let downs = 0;
  proxy.on('exit', () => {
    downs += 1;
  });
  for (let i = 0; i < cycles; i++) {
    // Three held connections grow the pool to 3; once they are gone, it shrinks.
    const hold = Array.from({ length: 3 }, () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      return s;
    });
    await until('three workers', () => proxy.stats().workers === 3);
    for (const s of hold) s.destroy();
    await until('back to one', () => proxy.stats().workers === 1 && proxy.stats().draining === 0);
  }
  stop = true;
  await Promise.all(loops);
  const failed = [...errors.values()].reduce((a, b) => a + b, 0);
  console.log(
    JSON.stringify({
      reusePort,
      direct: proxy.stats().direct,
      cycles,
      scaledDown: downs,
      ok,
      failed,
      errors: Object.fromEntries(errors),
    }),
  );
  await proxy.shutdown({ timeout: 2000 });
  process.exit(0);
});
