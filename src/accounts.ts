import fs from 'node:fs';

/** Users and groups by /etc/passwd and /etc/group: names for messages, gids for names. */
function table(file: string): string[][] {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.split(':'));
  } catch {
    return [];
  }
}

/** The name of a uid (`/etc/passwd`) or gid (`/etc/group`), or the number when it has none. */
export function accountName(file: '/etc/passwd' | '/etc/group', id: number): string {
  return table(file).find((f) => f[2] === String(id))?.[0] ?? String(id);
}

/** The gid of a group name, or null. */
export function groupId(name: string): number | null {
  const gid = table('/etc/group').find((f) => f[0] === name)?.[2];
  return gid === undefined ? null : Number(gid);
}
