/** In a fleet, which server the client tries next (fallback.ts resolves its address). */
import type { FleetServer } from '../../control/messages.js';

/** The fleet's server after the one with key `current` (base64), round the list; null without a fleet to fail over in. */
export function nextServer(fleet: readonly FleetServer[], current: string): FleetServer | null {
  if (fleet.length < 2) return null;
  return fleet[(fleet.findIndex((s) => s.publicKey === current) + 1) % fleet.length]!;
}
