/**
 * Loaded into every worker with `--require` by the daemon. A worker's stdout and stderr are
 * pipes to the daemon; if the daemon dies (SIGKILL, an upgrade) a write gets EPIPE, and an
 * unhandled 'error' on process.stdout would kill a worker that is still serving
 * (docs/lifecycle.md#when-the-daemon-dies).
 * The output is lost until the worker is replaced; the process is not.
 */
const lostReader = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (lostReader.has(err.code ?? '')) return;
    throw err;
  });
}
