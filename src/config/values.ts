/** Settings as read from a file or the command line, before validation: key -> raw value. */
export type Values = Record<string, unknown>;

/** A plain `{…}` object (what JSON and YAML mappings give), not an array, class instance or null. */
export function isPlainObject(v: unknown): v is Values {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
