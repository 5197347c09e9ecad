// node:cluster as a manager of the bench app (bench:front): a primary that forks WORKERS workers
// of APP_SCRIPT, all listening on 127.0.0.1:$PORT (round robin, the default on Linux: the
// primary accepts and hands each connection to a worker, as nodesockd's `listen` front does).
// A restart is a worker swap, one worker at a time: fork a new one, wait for its 'listening',
// disconnect the old one (it closes its server and exits once its connections are gone), and
// kill it if it is still there SWAP_GRACE_MS later: kept-alive connections under load never go
// idle, so a disconnected worker would otherwise serve them for ever.
// The bench asks with the IPC message 'swap' and gets { swapped: n } back; 'listening <port>' on
// stdout says the first generation is up.
const cluster = require('node:cluster');

const script = process.env.APP_SCRIPT;
const workers = Number(process.env.WORKERS) || 2;
const grace = Number(process.env.SWAP_GRACE_MS) || 5000;
cluster.setupPrimary({ exec: script, silent: false });

const fork = () =>
  new Promise((resolve, reject) => {
    const worker = cluster.fork({ PORT: process.env.PORT });
    worker.once('listening', () => resolve(worker));
    worker.once('exit', (code, signal) =>
      reject(new Error(`worker exited (${signal ?? code}) before listening`)),
    );
  });

let current = [];

async function swap() {
  for (let i = 0; i < current.length; i++) {
    const old = current[i];
    current[i] = await fork();
    const timer = setTimeout(() => old.process.kill('SIGKILL'), grace);
    old.once('exit', () => clearTimeout(timer));
    old.disconnect();
  }
  return current.length;
}

process.on('message', (message) => {
  if (message !== 'swap') return;
  swap().then(
    (n) => process.send({ swapped: n }),
    (err) => process.send({ error: err.message }),
  );
});

Promise.all(Array.from({ length: workers }, fork)).then(
  (started) => {
    current = started;
    console.log(`listening ${process.env.PORT}`);
  },
  (err) => {
    console.error(err.message);
    process.exit(1);
  },
);
