import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** A self-signed certificate for `cn`, made by openssl, as `<name>.key` and `<name>.crt` in `dir`. */
export function makeCert(dir: string, name: string, cn: string): { key: string; cert: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
    ],
    { stdio: 'ignore' },
  );
  return { key, cert };
}
