"use strict";
/**
 * Whose request this is, as the X-Forwarded-For the app passes on to the backend (which
 * limits sign-in attempts per client by it).
 *
 * Next.js keeps a client-sent X-Forwarded-For as it is (it only fills one in when the
 * request has none), so any caller could pick the address it is limited by. Here the
 * header becomes one address: with `hops` trusted proxies in front of this server (0,
 * the default: browsers reach it directly, through the NodePort), the entry `hops`
 * places from the right of [what the request said..., the socket's peer]. A client can
 * prepend what it likes; it cannot change what the last trusted hop saw.
 *
 * @param {string | string[] | undefined} header the request's X-Forwarded-For
 * @param {string | undefined} peer the socket's remote address
 * @param {number} hops trusted proxies in front of this server
 * @returns {string}
 */
function forwardedClient(header, peer, hops) {
  const said = hops > 0 ? [header ?? ""].flat().join(",").split(",") : [];
  const chain = [...said.map((entry) => entry.trim()).filter(Boolean), peer || "unknown"];
  return chain[Math.max(0, chain.length - 1 - Math.max(0, hops))];
}

/** TRUSTED_PROXY_HOPS as a count: anything but a small whole number is 0 (trust nobody). */
function trustedHops(text) {
  const value = Number(text ?? "0");
  return Number.isInteger(value) && value >= 0 && value <= 10 ? value : 0;
}

module.exports = { forwardedClient, trustedHops };
