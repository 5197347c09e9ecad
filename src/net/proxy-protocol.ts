/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): the header a pool writes in front of a
 * connection's bytes when `proxyProtocol` is set, so the worker's server learns the client's
 * address in band, as it would behind HAProxy or nginx's `proxy_protocol`.
 */
import net from 'node:net';
import type { ProxySocketAddressInfo } from './address-info.js';

export type ProxyProtocolVersion = 'v1' | 'v2';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** The 16 bytes of an IPv6 address in any textual form (`::`, an embedded IPv4 tail). */
export function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  let text = address.split('%')[0];
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (net.isIPv4(text.slice(lastColon + 1))) {
    const v4 = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    text = `${text.slice(0, lastColon + 1)}x`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => (g === 'x' ? Number.NaN : Number.parseInt(g, 16)));
  const clean = (groups: number[]): number[] => groups.filter((g) => !Number.isNaN(g));
  const left = clean(parse(head));
  const right = rest === undefined ? [] : clean(parse(rest));
  const groups =
    rest === undefined
      ? [...left, ...tail]
      : [...left, ...new Array(8 - left.length - right.length - tail.length).fill(0), ...right, ...tail];
  if (groups.length !== 8) throw new Error(`not an IPv6 address: ${address}`);
  groups.forEach((g, i) => {
    out.writeUInt16BE(g, i * 2);
  });
  return out;
}

function family(info: ProxySocketAddressInfo): 4 | 6 | 0 {
  const { local, remote } = info;
  if (net.isIPv4(remote.address) && net.isIPv4(local.address)) return 4;
  if (net.isIPv6(remote.address) && net.isIPv6(local.address)) return 6;
  return 0;
}

/** `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `PROXY UNKNOWN\r\n` when the addresses are not IP). */
export function proxyHeaderV1(info: ProxySocketAddressInfo): Buffer {
  const f = family(info);
  if (f === 0) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const { local, remote } = info;
  return Buffer.from(
    `PROXY TCP${f} ${remote.address} ${local.address} ${remote.port} ${local.port}\r\n`,
    'latin1',
  );
}

/** The binary v2 header: PROXY command over TCP, or a LOCAL command when the addresses are not IP. */
export function proxyHeaderV2(info: ProxySocketAddressInfo): Buffer {
  const f = family(info);
  const { local, remote } = info;
  let body: Buffer;
  let famByte: number;
  if (f === 4) {
    famByte = 0x11;
    body = Buffer.alloc(12);
    Buffer.from(remote.address.split('.').map(Number)).copy(body, 0);
    Buffer.from(local.address.split('.').map(Number)).copy(body, 4);
    body.writeUInt16BE(remote.port, 8);
    body.writeUInt16BE(local.port, 10);
  } else if (f === 6) {
    famByte = 0x21;
    body = Buffer.alloc(36);
    ipv6Bytes(remote.address).copy(body, 0);
    ipv6Bytes(local.address).copy(body, 16);
    body.writeUInt16BE(remote.port, 32);
    body.writeUInt16BE(local.port, 34);
  } else {
    famByte = 0x00;
    body = Buffer.alloc(0);
  }
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head, 0);
  head[12] = f === 0 ? 0x20 : 0x21;
  head[13] = famByte;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

export function proxyHeader(version: ProxyProtocolVersion, info: ProxySocketAddressInfo): Buffer {
  return version === 'v1' ? proxyHeaderV1(info) : proxyHeaderV2(info);
}
