/**
 * After add-client or remove-client edited server.yaml: the running server reloads it at once
 * (as wg-easy applies a change), unless --no-reload; with no server running the file is read
 * at its start anyway.
 */
import { describeStatusSocket } from '../config/load.js';
import type { ServerConfig } from '../config/server.js';
import type { ReloadResult } from '../daemon/server/reload.js';
import { NoDaemonError, request } from '../daemon/status.js';
import { errorMessage } from '../errors.js';

/** Asks the server behind the config's status socket to reload its config, which must be this one. */
export async function reloadServer(cfg: ServerConfig): Promise<ReloadResult> {
  const result = await request<ReloadResult>(cfg.statusSocket, 'reload');
  // One socket per interface name: it may be another config's server.
  if (result.file !== cfg.file) {
    throw new Error(`the server at ${describeStatusSocket(cfg.statusSocket)} runs ${result.file}, not ${cfg.file}; it reloaded its own config`);
  }
  return result;
}

/** Reload lines for the user: what changed, and the keys that wait for a restart. */
export function describeReload(r: ReloadResult): string[] {
  return [
    `reloaded ${r.file}: ${r.clients} client(s)${r.changes.length === 0 ? ', nothing changed' : ''}`,
    ...r.changes.map((c) => `  ${c}`),
    ...(r.restart.length > 0 ? [`${r.restart.join(', ')} changed: restart the server to apply ${r.restart.length > 1 ? 'them' : 'it'}`] : []),
  ];
}

/** Tells how the change reached the running server (stdout), or how to make it (a note on stderr). */
export async function applyChange(cfg: ServerConfig, reload: boolean): Promise<void> {
  const how = `run 'tvpn reload -c ${cfg.file}' (or send the server SIGHUP) to apply it`;
  const note = (text: string): void => void process.stderr.write(`tvpn: note: ${text}\n`);
  if (!reload) return note(`not applied to a running server: ${how}`);
  try {
    process.stdout.write(describeReload(await reloadServer(cfg)).map((l) => `${l}\n`).join(''));
  } catch (err) {
    if (err instanceof NoDaemonError) return note('no server runs with this config here: it applies the change when it starts');
    note(`the running server was not reloaded (${errorMessage(err)}): ${how}`);
  }
}
