import { Command } from 'commander';
import { VERSION } from '../version.js';

/** Builds the command tree; exported apart from main() so tests can inspect it. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tvpn')
    .description('Point-to-point encrypted TUN VPN: WireGuard wire protocol, OpenVPN-style pushed config')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .showHelpAfterError();
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
