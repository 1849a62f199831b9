/**
 * `tvpn server -c FILE` and `tvpn client -c FILE`: run until SIGINT/SIGTERM, then undo
 * everything and exit 0. SIGHUP makes the server reload its config (as `tvpn reload` does).
 *
 * Exit codes, for supervisors (systemd's RestartPreventExitStatus=2): 2 when the config or
 * the command line is wrong (restarting cannot help); 1 for every other failure, at start-up
 * (no permission for tun, port in use) or at run time (the tun was deleted, a bug), after undoing
 * what it can, so systemd's Restart=on-failure starts a fresh instance.
 */
import type { Command } from 'commander';
import { loadClientConfig } from '../../config/client.js';
import type { LogFormat, LogLevel } from '../../config/fields.js';
import { loadServerConfig } from '../../config/server.js';
import { Client } from '../../daemon/client/client.js';
import { detectStyle, Logger } from '../../daemon/log.js';
import { Server } from '../../daemon/server/server.js';
import { errorMessage } from '../../errors.js';

interface Daemon {
  stop(): Promise<void>;
  onFatal: () => void;
}

export function register(program: Command): void {
  program
    .command('server')
    .description('run the VPN server: tun device, UDP listener, pushed client configs')
    .requiredOption('-c, --config <file>', 'server config (YAML)')
    .action(async (opts: { config: string }, cmd: Command) => {
      const cfg = loadServerConfig(opts.config);
      const log = daemonLog(cmd, cfg);
      for (const w of cfg.warnings) log.warn(w);
      const server = await Server.start(cfg, log);
      server.logLevelPinned = logLevel(cmd) !== undefined;
      process.on('SIGHUP', () => {
        try {
          server.reloadFile();
        } catch {
          // logged by reloadFile; the running config stays
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
      const log = daemonLog(cmd, cfg);
      for (const w of cfg.warnings) log.warn(w);
      await runUntilSignal(await Client.start(cfg, log), log);
    });
}

/** --log-level over the config's; the format as configured, shaped for journald or a container when under one. */
/** --log-level, which pins the level against the config's (and its reloads). */
const logLevel = (cmd: Command): LogLevel | undefined => (cmd.optsWithGlobals() as { logLevel?: LogLevel }).logLevel;

function daemonLog(cmd: Command, cfg: { logLevel: LogLevel; logFormat: LogFormat }): Logger {
  return new Logger(logLevel(cmd) ?? cfg.logLevel, undefined, detectStyle(cfg.logFormat));
}

/** Runs until a signal (exit 0) or a bug (exit 1); either way routes, tun and leases are undone first. */
function runUntilSignal(daemon: Daemon, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (why: string, code: number): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${why}: shutting down`);
      const done = (): void => {
        if (code === 0) resolve();
        else process.exit(code);
      };
      daemon.stop().then(done, (err: unknown) => {
        log.error(`shutdown: ${errorMessage(err)}`);
        done();
      });
    };
    // State after an unexpected exception cannot be trusted: undo and exit 1 so the supervisor restarts us.
    process.on('uncaughtException', (err) => {
      log.error(`internal error (please report): ${err.stack ?? String(err)}`);
      stop('internal error', 1);
    });
    // The tun was deleted (or the socket broke): already logged; the supervisor starts a new instance.
    daemon.onFatal = () => stop('I/O failure', 1);
    process.on('SIGINT', () => stop('SIGINT', 0));
    process.on('SIGTERM', () => stop('SIGTERM', 0));
  });
}
