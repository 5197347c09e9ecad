/**
 * Numbers of the control protocol that the CLI needs without loading the protocol's schema
 * (and zod): app messaging's per-worker reply timeout of `send-req`
 * (docs/cli.md#send-msg-and-send-req).
 */
export const APP_REQUEST_TIMEOUT_DEFAULT_MS = 10_000;
export const APP_REQUEST_TIMEOUT_MAX_MS = 300_000;
