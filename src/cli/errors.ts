import { SynodError } from '../core/index.js'

export type CliErrorCode =
  | 'CLI_CLUSTER_NOT_READY'
  | 'CLI_NODE_EXITED'
  | 'CLI_DATA_DIR_MISMATCH'
  | 'CLI_NODE_UNREACHABLE'
  /** A file or argument the command cannot use. */
  | 'CLI_BAD_INPUT'

export class CliError extends SynodError<CliErrorCode> {}
