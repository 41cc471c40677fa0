import { SynodError } from '../core/index.js'

export type CliErrorCode =
  | 'CLI_CLUSTER_NOT_READY'
  | 'CLI_NODE_EXITED'
  | 'CLI_DATA_DIR_MISMATCH'
  | 'CLI_NODE_UNREACHABLE'
  /** A file or argument the command cannot use. */
  | 'CLI_BAD_INPUT'
  /** A node answered a request with an error. */
  | 'CLI_REQUEST_FAILED'

export class CliError extends SynodError<CliErrorCode> {}
