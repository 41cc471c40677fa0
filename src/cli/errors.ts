import { SynodError } from '../core/index.js'

export type CliErrorCode =
  | 'CLI_CLUSTER_NOT_READY'
  | 'CLI_NODE_EXITED'
  | 'CLI_DATA_DIR_MISMATCH'
  | 'CLI_NODE_UNREACHABLE'

export class CliError extends SynodError<CliErrorCode> {}
