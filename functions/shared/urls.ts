/**
 * URL facts the model endpoints' safety rests on: credentials in a URL (`https://user:password@host/`),
 * which are never printed, stored or accepted, and loopback hosts, which are the only ones plain `http`
 * may reach (a local server such as Ollama). Works on text, so a URL that does not parse is masked too.
 */

/**
 * The user-info part of an `http(s)` URL: from `//` to the authority's last `@`. Spaces included, so
 * that a URL too broken to parse is masked as well.
 */
const USERINFO = /(https?:\/\/)[^/?#\\]*@/gi;

/** True when `text` holds an `http(s)` URL with a user name or password in it. */
export const hasUrlCredentials = (text: string): boolean => new RegExp(USERINFO.source, 'i').test(text);

/** `text` with the user-info of every `http(s)` URL in it masked: `https://***@host/v1`. */
export const redactUrlCredentials = (text: string): string => text.replace(USERINFO, '$1***@');

/** True for `localhost`, `127.0.0.0/8` and `[::1]`: hosts that never leave the machine. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}
