/** Moved to the floor (src/net/raw-accept.ts): the pool takes its connections the same way. */
export { Accepted, acceptRaw, type TcpHandle } from '../net/raw-accept.js';
