/** `synod pow ...`: proof-of-work tools. `verify-headers FILE` checks headers against a network's rules. */
import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { z } from 'zod'
import { errorMessage } from '../core/index.js'
import { POW_NETWORKS, VERIFY_HEADERS_MAX, verifyHeaders } from '../ledger/index.js'
import { CliError } from './errors.js'

/** Header files larger than this are refused before they are read. */
export const HEADER_FILE_BYTES_MAX = 512 * 1024 * 1024

const headerFileSchema = z.object({
  network: z.string(),
  headers: z.array(z.looseObject({ height: z.number(), hex: z.string() })).max(VERIFY_HEADERS_MAX)
})

export function powCommand (program: Command, print: (line: string) => void): void {
  const pow = program.command('pow').description('proof-of-work tools')
  pow.command('verify-headers')
    .description(`check proof of work, bits, parent links, median time past and retargets of the headers in FILE ({"network": "bitcoin-mainnet", "headers": [{"height", "hex"}]}); networks: ${Object.keys(POW_NETWORKS).join(', ')}`)
    .argument('<file>', 'JSON file of headers')
    .action((file: string) => {
      const input = readHeaderFile(file)
      const network = POW_NETWORKS[input.network]
      if (network === undefined) throw new CliError('CLI_BAD_INPUT', `unknown network ${input.network}; known: ${Object.keys(POW_NETWORKS).join(', ')}`)
      const summary = verifyHeaders(network, input.headers, Math.floor(Date.now() / 1_000))
      print(JSON.stringify(summary, null, 2))
      if (summary.invalid.length > 0) process.exitCode = 1
    })
}

function readHeaderFile (file: string): z.infer<typeof headerFileSchema> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new CliError('CLI_BAD_INPUT', `cannot read ${file}: ${errorMessage(error)}`)
  }
  if (text.length > HEADER_FILE_BYTES_MAX) throw new CliError('CLI_BAD_INPUT', `${file} is over ${HEADER_FILE_BYTES_MAX} bytes`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new CliError('CLI_BAD_INPUT', `${file} is not JSON: ${errorMessage(error)}`)
  }
  const parsed = headerFileSchema.safeParse(json)
  if (!parsed.success) throw new CliError('CLI_BAD_INPUT', `${file} is not a header file: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 5).join('; ')}`)
  return parsed.data
}
