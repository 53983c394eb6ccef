// A promise that settles as `promise` does, or rejects with `message` after `ms`; the timer is
// always cleared, so nothing is left pending. Used for the review deadline, the kill-switch apply
// and discovery calls.

export function withDeadline<T>(promise: Promise<T>, ms: number, message = `no answer within ${ms} ms`): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
