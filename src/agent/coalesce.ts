// One run at a time, and no trigger lost: a trigger that arrives while a run is in progress makes one
// more run after it (several such triggers make one). The agent's rounds: a watch event that lands
// during a round (a new pod's sandbox, a replaced gateway) must not wait for the next periodic tick.

export function coalesced(run: () => Promise<void>, onError: (err: unknown) => void = () => undefined): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  const trigger = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await run();
        } catch (err) {
          onError(err);
        }
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  return trigger;
}
