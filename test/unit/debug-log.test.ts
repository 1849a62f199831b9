/**
 * What --log-level debug says (src/daemon/debug.ts and the daemons' events): one handshake
 * with its control exchange, and drops summarised rather than logged per packet.
 */
import { expect, test } from 'vitest';
import { describeFrame } from '../../src/daemon/debug.js';
import { encodeFrame } from '../../src/control/frame.js';
import { Lab, labPerTest, key } from './support/daemons.js';

let lab: Lab;
labPerTest((l) => (lab = l));

const PUSH = '{ routes: [10.20.0.0/16], dns: [] }';
/** Debug lines without their timestamp and level. */
const debug = (lines: string[]): string[] => lines.filter((l) => l.includes(' debug ')).map((l) => l.slice(31));

test('one handshake: initiation, response, the control frames each way and the pushed snapshot', async () => {
  await lab.connect(PUSH);
  await lab.clientLogged('control from server: ack 2');
  const client = debug(lab.clientLog.lines);
  expect(client[0]).toBe('handshake initiation to the server at 192.0.2.1:51820');
  expect(client).toEqual(
    expect.arrayContaining([
      'control to server: data seq 0, message 0 fragment 1/1, 87 bytes', // hello
      'control from server: data seq 0, message 0 fragment 1/1, 158 bytes', // config 1
      'control to server: ack 1 sack 0x0',
    ]),
  );
  const server = debug(lab.serverLog.lines);
  expect(server[0]).toBe('handshake response to laptop (192.0.2.2:40000)');
  expect(server).toEqual(
    expect.arrayContaining([
      'control to laptop: data seq 0, message 0 fragment 1/1, 158 bytes',
      'config 1 pushed to laptop: 10.8.0.2/24, routes [10.20.0.0/16]',
      'control from laptop: data seq 0, message 0 fragment 1/1, 87 bytes',
      'laptop: hello (protocol 3)',
      'control from laptop: data seq 1, message 1 fragment 1/1, 39 bytes', // applied
    ]),
  );
});

test('drops come out as a summary of the counters that moved, at most every 5 s', async () => {
  await lab.startServer(PUSH);
  await lab.startOther('192.0.2.3', key(7)); // a key the server does not know
  await lab.advance(1000);
  await lab.serverLogged('dropped in the last');
  const drops = (): string[] => debug(lab.serverLog.lines).filter((l) => l.startsWith('dropped'));
  // The initiation is dropped when the handshake queue is worked through, a turn after it arrived.
  expect(drops()).toHaveLength(1);
  expect(drops()[0]).toMatch(/^dropped in the last [12] s: unknown-peer 1$/);
  await lab.advance(3000); // the client retries after 5 s: nothing moved, nothing said
  expect(drops()).toHaveLength(1);
  await lab.advance(10_000);
  // One initiation per 5 s retry, never summarised sooner than 5 s after the previous line.
  const later = drops().slice(1);
  expect(later.length).toBeGreaterThanOrEqual(1);
  for (const l of later) expect(l).toMatch(/^dropped in the last ([5-9]|1\d) s: unknown-peer 1$/);
});

test('frames are described by their header', () => {
  expect(describeFrame(encodeFrame({ type: 'ack', epoch: 1, ack: 4, sack: 5 }))).toBe('ack 4 sack 0x5');
  const data = encodeFrame({ type: 'data', epoch: 1, seq: 3, base: 0, msgId: 2, fragIndex: 0, fragCount: 1, payload: new Uint8Array(10) });
  expect(describeFrame(data)).toBe('data seq 3, message 2 fragment 1/1, 10 bytes');
  expect(describeFrame(new Uint8Array(3))).toBe('undecodable, 3 bytes');
});
