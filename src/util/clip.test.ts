import { describe, expect, it } from 'vitest';
import { clip, MAX_ECHO } from './clip.js';

describe('clip', () => {
  it('passes a short string through unchanged', () => {
    expect(clip('web-7d9c8b6f5-')).toBe('web-7d9c8b6f5-');
    expect(clip('x'.repeat(MAX_ECHO))).toBe('x'.repeat(MAX_ECHO));
  });
  it('cuts a long string and says how much was cut', () => {
    const out = clip('a'.repeat(5 * 1024 * 1024));
    expect(out).toBe(`${'a'.repeat(MAX_ECHO)}...(${5 * 1024 * 1024 - MAX_ECHO} more characters)`);
    expect(out.length).toBeLessThan(MAX_ECHO + 40);
  });
  it('never splits a surrogate pair', () => {
    const out = clip(`${'a'.repeat(9)}😀tail`, 10);
    expect(out.startsWith('a'.repeat(9) + '...')).toBe(true);
    expect(Buffer.from(out, 'utf8').toString('utf8')).toBe(out);
  });
});
