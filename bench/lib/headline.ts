/**
 * The markers around the part of a result file that bench/results/README.md (the index that
 * `npm run bench` regenerates) quotes as that benchmark's headline numbers.
 */
export const HEADLINE_START = '<!-- headline -->';
export const HEADLINE_END = '<!-- /headline -->';
