import { fstatSync } from 'node:fs';
import type { Command } from 'commander';
import { decodeKey, encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../../config/keys.js';

/** Like wg(8): a secret written straight into a file others can read is exposed already. */
function warnIfStdoutExposed(): void {
  const st = fstatSync(1);
  if (st.isFile() && (st.mode & 0o077) !== 0) {
    const warning = "writing a secret key to a file others can read; run 'umask 077' first (tvpn refuses such key files)";
    process.stderr.write(`tvpn: warning: ${warning}\n`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function register(program: Command): void {
  program
    .command('genkey')
    .description('print a new private key (base64), like wg genkey')
    .action(() => {
      warnIfStdoutExposed();
      process.stdout.write(`${encodeKey(generatePrivateKey())}\n`);
    });
  program
    .command('pubkey')
    .description('read a private key on stdin and print its public key, like wg pubkey')
    .action(async () => {
      const privateKey = decodeKey(await readStdin(), 'the private key on stdin', 'private');
      process.stdout.write(`${encodeKey(publicKeyOf(privateKey))}\n`);
    });
  program
    .command('genpsk')
    .description('print a new preshared key (base64), like wg genpsk')
    .action(() => {
      warnIfStdoutExposed();
      process.stdout.write(`${encodeKey(generatePresharedKey())}\n`);
    });
}
