import { describe, expect, it } from 'vitest';
import { withDeadline } from './deadline.js';

describe('withDeadline', () => {
  it('passes a prompt result through', async () => {
    await expect(withDeadline(Promise.resolve(7), 50)).resolves.toBe(7);
  });
  it('rejects with the message when the promise is too slow', async () => {
    await expect(withDeadline(new Promise(() => undefined), 20, 'too slow')).rejects.toThrow('too slow');
  });
  it('keeps the original rejection', async () => {
    await expect(withDeadline(Promise.reject(new Error('refused')), 50)).rejects.toThrow('refused');
  });
});
