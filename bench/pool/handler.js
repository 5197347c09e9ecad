// The one app every contender serves: GET / answers at once; GET /cpu spins for 5 ms first.
function handler(req, res) {
  if (req.url === '/cpu') {
    const end = process.hrtime.bigint() + 5_000_000n;
    while (process.hrtime.bigint() < end);
  }
  res.setHeader('content-type', 'text/plain');
  res.end('ok\n');
}
module.exports = { handler };
