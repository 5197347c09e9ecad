/** The source of problems found on the command line. */
export const COMMAND_LINE = 'command line';

/**
 * A configuration that cannot be used. `problems` holds one line per problem, each of the
 * form `<file or 'command line'>: <key>: <message>` (file-level problems such as "file not
 * found" have no key); `message` is those lines joined by newlines, ready to print as is.
 */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string | string[]) {
    const list = typeof problems === 'string' ? [problems] : [...problems];
    super(list.join('\n'));
    this.name = 'ConfigError';
    this.problems = list;
  }
}
