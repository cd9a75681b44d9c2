import type { Engine } from '../../src/engine/engine.js';
import { FanOut } from '../../src/hub/hub.js';

const fanOuts = new WeakMap<Engine, FanOut>();

/**
 * The hub's part for tests that drive an engine directly: the hub's own fan-out, registered
 * as the engine's live event handler on first use (once per engine, as a hub does), through
 * which recorder listeners listen to topics and receive their live events and resyncs.
 */
export function fanOut(engine: Engine): FanOut {
  let fan = fanOuts.get(engine);
  if (!fan) fanOuts.set(engine, (fan = new FanOut(engine)));
  return fan;
}
