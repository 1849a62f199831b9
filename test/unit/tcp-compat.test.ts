/**
 * A server with a TCP listener and a client that announces protocol version 2 (deployed before
 * the TCP transport): it must never be sent config.tcp, which version 2 refuses as an unknown field.
 */
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { expect, test, vi } from 'vitest';
import { parseServerConfig } from '../../src/config/server.js';
import { Server } from '../../src/daemon/server/server.js';
import { Lab, labPerTest } from './support/daemons.js';

vi.mock('../../src/control/messages.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/control/messages.js')>()),
  PROTOCOL_VERSION: 2,
}));

let lab: Lab;
labPerTest((l) => (lab = l));

test('a version-2 client of a server with a TCP listener gets no tcp field and applies its config', async () => {
  // A listener on a specific address, which the server pushes to clients that take it.
  const text = lab.serverText('{ mtu: 1400 }') + `tcp: { listen: '127.0.0.1:${randomInt(20_000, 60_000)}' }\n`;
  lab.serverCfg = parseServerConfig(text, join(lab.dir, 'server.yaml'));
  lab.server = await Server.start(lab.serverCfg, lab.serverLog.log, { io: lab.serverIo, host: lab.serverHost });
  await lab.startClient();
  await lab.serverLogged('laptop: hello (protocol 2)');
  await lab.serverLogged('laptop applied config 1');
  expect(lab.clientLog.lines.join('\n')).not.toContain('bad control message');
  expect(lab.clientLog.lines.join('\n')).not.toContain('offers TCP');
});
