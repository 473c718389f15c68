"use strict";
/**
 * The image's entry point: Next.js's standalone server.js, with every request's
 * X-Forwarded-For set to the client this server can vouch for (see forwarded.cjs)
 * before Next.js sees it.
 */
const http = require("node:http");
const path = require("node:path");
const { forwardedClient, trustedHops } = require("./forwarded.cjs");

const hops = trustedHops(process.env.TRUSTED_PROXY_HOPS);
const createServer = http.createServer;
http.createServer = function createServerWithClient(...args) {
  const server = createServer.apply(this, args);
  // First among the request listeners: Next.js's handler runs after it.
  server.prependListener("request", (request) => {
    request.headers["x-forwarded-for"] = forwardedClient(
      request.headers["x-forwarded-for"],
      request.socket.remoteAddress,
      hops,
    );
  });
  return server;
};

// The standalone server beside the working directory (/app in the image).
require(path.resolve(process.env.LUMINA_NEXT_SERVER ?? "server.js"));
