import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../config/errors.js';
import { LOG_LEVELS } from '../config/fields.js';
import { VERSION } from '../version.js';
import * as addClient from './commands/add-client.js';
import * as check from './commands/check.js';
import * as daemon from './commands/daemon.js';
import * as demo from './commands/demo.js';
import * as init from './commands/init.js';
import * as keys from './commands/keys.js';
import * as listClients from './commands/list-clients.js';
import * as reload from './commands/reload.js';
import * as removeClient from './commands/remove-client.js';
import * as schema from './commands/schema.js';
import * as show from './commands/show.js';
import { errorPrefix } from '../daemon/log.js';
import { errorMessage } from '../errors.js';

/** Each command lives in commands/<name>.ts and adds itself to the program. */
const COMMANDS: ReadonlyArray<{ register(program: Command): void }> = [demo, init, daemon, show, reload, keys, check, addClient, removeClient, listClients, schema];

/**
 * Usage errors become one line like every other error, with a pointer to the command's help;
 * exitOverride makes commander throw instead of exiting, so run() decides the exit code.
 */
function oneLineUsageErrors(cmd: Command, path: string): void {
  cmd.exitOverride().configureOutput({
    outputError: (message, write) => {
      const text = message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim();
      write(`tvpn: ${text}${text.includes('Did you mean') ? '' : ` (see '${path} --help')`}\n`);
    },
  });
  for (const sub of cmd.commands) oneLineUsageErrors(sub, `${path} ${sub.name()}`);
}

/** The command tree, built afresh for each run (commander keeps parse state in it). */
function buildProgram(): Command {
  const program = new Command();
  program
    .name('tvpn')
    .description('Point-to-point encrypted TUN VPN: WireGuard wire protocol, OpenVPN-style pushed config')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .addOption(new Option('--log-level <level>', 'log verbosity of the daemons (overrides the config)').choices(LOG_LEVELS));
  for (const command of COMMANDS) command.register(program);
  oneLineUsageErrors(program, 'tvpn');
  return program;
}

/**
 * Runs the CLI and returns its exit code: 0, 2 for bad input (ConfigError, usage), 1 for
 * anything else. Errors are reported on stderr as one line `tvpn: <message>`.
 */
export async function run(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // commander printed it already
    process.stderr.write(`${errorPrefix()}tvpn: ${errorMessage(err)}\n`);
    return err instanceof ConfigError ? err.exitCode : 1;
  }
}

export async function main(argv: string[]): Promise<void> {
  const code = await run(argv);
  // Exit at once on failure even if a failed command left handles open; stderr to a pipe or file is synchronous.
  if (code !== 0) process.exit(code);
}
