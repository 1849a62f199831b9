/**
 * A wg-quick profile as a QR code, for the WireGuard apps' "scan from QR code" (as wg-easy
 * shows it): in the terminal, and as a PNG. Both hold the client's private key.
 */
import { writeFileSync } from 'node:fs';
import { ConfigError, fsReason } from '../config/errors.js';

/** M: 15% of the code may be misread, as qrcode's default; a full profile still fits 80 columns. */
const QR = { errorCorrectionLevel: 'M' } as const;

/** Loaded when a QR code is asked for: every other command (the daemons too) starts without it. */
const qrcode = async (): Promise<typeof import('qrcode')> => (await import('qrcode')).default;

/** Black on white half blocks, two modules per character cell: about 37 rows of 73 columns. */
export async function qrTerminal(text: string): Promise<string> {
  return (await qrcode()).toString(text, { ...QR, type: 'terminal', small: true });
}

/** A PNG (8 pixels a module, the standard 4-module margin), mode 0600, never over an existing file. */
export async function writeQrPng(file: string, text: string): Promise<void> {
  const png = await (await qrcode()).toBuffer(text, { ...QR, type: 'png', scale: 8, margin: 4 });
  try {
    writeFileSync(file, png, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new ConfigError(`cannot write ${file}: ${fsReason(err)}`);
  }
}
