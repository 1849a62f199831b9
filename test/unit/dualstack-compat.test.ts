/**
 * A dual-stack server and a client that announces protocol version 1 (deployed before dual
 * stack): it must never be sent address6, which version 1 refuses as an unknown field.
 */
import { expect, test, vi } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { Lab, labPerTest } from './support/daemons.js';

vi.mock('../../src/control/messages.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/control/messages.js')>()),
  PROTOCOL_VERSION: 1,
}));

let lab: Lab;
labPerTest((l) => (lab = l));

test('a version-1 client of a dual-stack server gets its IPv4 address only', async () => {
  lab.serverAddress = "[10.8.0.1/24, 'fd00:8::1/64']";
  lab.serverLog.log.level = 'debug';
  await lab.startServer('{ mtu: 1400 }');
  await lab.startClient();
  await waitFor('the hello', () => lab.serverLog.lines.some((l) => l.includes('laptop: hello (protocol 1)')));
  await lab.serverLogged('laptop applied config 1');
  expect([...lab.clientHost.addresses]).toEqual(['10.8.0.2/24 tun0']);
  expect(lab.serverLog.lines.filter((l) => l.includes('config 1 pushed')).join('\n')).not.toContain('fd00');
  expect(lab.clientLog.lines.join('\n')).not.toContain('bad control message');
});
