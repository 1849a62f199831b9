/**
 * `tvpn server -c FILE` and `tvpn client -c FILE`: run until SIGINT/SIGTERM, then undo
 * everything and exit 0. SIGHUP makes the server re-read its clients list.
 */
import type { Command } from 'commander';
import { loadClientConfig } from '../../config/client.js';
import { ConfigError } from '../../config/errors.js';
import type { LogLevel } from '../../config/load.js';
import { loadServerConfig } from '../../config/server.js';
import { Client } from '../../daemon/client.js';
import { Logger } from '../../daemon/log.js';
import { Server } from '../../daemon/server.js';

interface Daemon {
  stop(): Promise<void>;
}

export function register(program: Command): void {
  program
    .command('server')
    .description('run the VPN server: tun device, UDP listener, pushed client configs')
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .action(async (opts: { config: string }, cmd: Command) => {
      const cfg = loadServerConfig(opts.config);
      const log = new Logger(logLevel(cmd) ?? cfg.logLevel);
      for (const w of cfg.warnings) log.warn(w);
      const server = await start(() => Server.start(cfg, log));
      process.on('SIGHUP', () => {
        try {
          server.reload(loadServerConfig(opts.config));
        } catch (err) {
          log.error(`reload failed, keeping the running config: ${err instanceof Error ? err.message : String(err)}`);
        }
      });
      await runUntilSignal(server, log);
    });

  program
    .command('client')
    .description('run the VPN client: connect, apply what the server pushes, reconnect as needed')
    .requiredOption('-c, --config <file>', 'client config (YAML)')
    .action(async (opts: { config: string }, cmd: Command) => {
      const cfg = loadClientConfig(opts.config);
      const log = new Logger(logLevel(cmd) ?? cfg.logLevel);
      for (const w of cfg.warnings) log.warn(w);
      await runUntilSignal(await start(() => Client.start(cfg, log)), log);
    });
}

const logLevel = (cmd: Command): LogLevel | undefined => (cmd.optsWithGlobals() as { logLevel?: LogLevel }).logLevel;

/** Start-up failures (no permission for tun, port in use...) are bad input too: exit code 2. */
async function start<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
}

function runUntilSignal(daemon: Daemon, log: Logger): Promise<void> {
  // A bug must not take the tunnel down for everyone: log it and carry on.
  process.on('uncaughtException', (err) => log.error(`internal error (please report): ${err.stack ?? String(err)}`));
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${signal}: shutting down`);
      daemon.stop().then(resolve, (err: unknown) => {
        log.error(`shutdown: ${err instanceof Error ? err.message : String(err)}`);
        resolve();
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}
