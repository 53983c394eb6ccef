// One way to cut a user-controlled string before it is echoed into a log line, a denial or a
// warning: a pod author can make any field megabytes long (mutating webhooks run before the API
// server validates lengths), and each echo would copy it again.

/** Longest user string echoed as is; Kubernetes' own longest names (a DNS subdomain) are 253. */
export const MAX_ECHO = 256;

/** `value` if it is at most `max` UTF-16 units, else its start and how much was cut. Linear in `max`, not in `value`. */
export function clip(value: string, max = MAX_ECHO): string {
  if (value.length <= max) return value;
  let end = max;
  // Do not split a surrogate pair: a lone high surrogate is not valid UTF-8 on the wire.
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${value.slice(0, end)}...(${value.length - end} more characters)`;
}
