/**
 * The Prometheus text: prom-client metrics whose collect() reads the snapshot of the scrape
 * in progress. Per-peer names follow the community WireGuard exporters (wireguard_*), with
 * labels name and public_key; the daemon's own are tvpn_*. Every series carries `interface`.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Status } from '../status.js';
import type { MetricsSnapshot } from './snapshot.js';

type Labels = Record<string, string>;
type Series = (s: MetricsSnapshot) => Array<[Labels, number]>;

const PEER_LABELS = ['name', 'public_key'];

/** One value per peer. */
const perPeer =
  (value: (p: MetricsSnapshot['status']['peers'][number], s: MetricsSnapshot) => number): Series =>
  (s) =>
    s.status.peers.map((p) => [{ name: p.name, public_key: p.publicKey }, value(p, s)]);

const single =
  (value: (s: MetricsSnapshot) => number): Series =>
  (s) => [[{}, value(s)]];

interface Definition {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels: string[];
  series: Series;
  serverOnly?: true;
}

const DEFINITIONS: Definition[] = [
  { name: 'wireguard_received_bytes_total', help: 'Bytes received from the peer since the daemon started', type: 'counter', labels: PEER_LABELS, series: perPeer((p) => p.rxBytes) },
  { name: 'wireguard_sent_bytes_total', help: 'Bytes sent to the peer since the daemon started', type: 'counter', labels: PEER_LABELS, series: perPeer((p) => p.txBytes) },
  { name: 'wireguard_latest_handshake_seconds', help: 'Unix time of the latest completed handshake with the peer, 0 for never', type: 'gauge', labels: PEER_LABELS, series: perPeer((p) => p.latestHandshake) },
  { name: 'tvpn_handshakes_total', help: 'Handshakes completed with the peer', type: 'counter', labels: PEER_LABELS, series: perPeer((p, s) => s.events.get(p.publicKey)?.handshakes ?? 0) },
  { name: 'tvpn_endpoint_changes_total', help: "Times the peer's endpoint changed (roaming)", type: 'counter', labels: PEER_LABELS, series: perPeer((p, s) => s.events.get(p.publicKey)?.endpointChanges ?? 0) },
  { name: 'tvpn_sessions', help: 'Peers with a usable session', type: 'gauge', labels: [], series: single((s) => s.sessions) },
  { name: 'tvpn_leases', help: 'Addresses leased from the pool (server)', type: 'gauge', labels: [], series: single((s) => s.leases ?? 0), serverOnly: true },
  { name: 'tvpn_control_retransmits_total', help: 'Control channel frames sent again for want of an acknowledgement', type: 'counter', labels: [], series: single((s) => s.controlRetransmits) },
  { name: 'tvpn_handshake_queue_length', help: 'Handshake messages waiting to be processed', type: 'gauge', labels: [], series: single((s) => s.handshakeQueue.length) },
  { name: 'tvpn_handshake_queue_capacity', help: 'Size of the handshake queue; from 1/8 full on, the daemon is under load', type: 'gauge', labels: [], series: single((s) => s.handshakeQueue.capacity) },
  { name: 'tvpn_under_load', help: '1 while handshakes are answered with cookie replies (flood protection)', type: 'gauge', labels: [], series: single((s) => (s.underLoad ? 1 : 0)) },
  {
    name: 'tvpn_dropped_packets_total',
    help: 'Packets dropped, by reason (source-limit and queue-full: handshakes refused admission)',
    type: 'counter',
    labels: ['reason'],
    series: (s) => Object.entries(s.drops).map(([reason, n]) => [{ reason }, n]),
  },
  {
    name: 'tvpn_peer_dropped_packets_total',
    help: "Of those, the ones that came authenticated as the peer or were on their way to it (e.g. replay, source-not-allowed), by reason",
    type: 'counter',
    labels: [...PEER_LABELS, 'reason'],
    series: (s) =>
      s.status.peers.flatMap((p) => Object.entries(s.peerDrops.get(p.publicKey) ?? {}).map(([reason, n]): [Labels, number] => [{ name: p.name, public_key: p.publicKey, reason }, n])),
  },
];

export class MetricsText {
  private readonly registry = new Registry();
  private snapshot: MetricsSnapshot | null = null;

  constructor(interfaceName: string, role: Status['role']) {
    this.registry.setDefaultLabels({ interface: interfaceName });
    const read = (series: Series): Array<[Labels, number]> => (this.snapshot ? series(this.snapshot) : []);
    for (const d of DEFINITIONS) {
      if (d.serverOnly && role !== 'server') continue;
      const base = { name: d.name, help: d.help, labelNames: d.labels, registers: [this.registry] };
      // Each scrape starts from nothing, so peers that are gone leave no stale series.
      if (d.type === 'counter') {
        new Counter({
          ...base,
          collect() {
            this.reset();
            for (const [labels, v] of read(d.series)) this.inc(labels, v);
          },
        });
      } else {
        new Gauge({
          ...base,
          collect() {
            this.reset();
            for (const [labels, v] of read(d.series)) this.set(labels, v);
          },
        });
      }
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of this snapshot (the collectors run synchronously inside metrics()). */
  render(s: MetricsSnapshot): Promise<string> {
    this.snapshot = s;
    return this.registry.metrics();
  }
}
