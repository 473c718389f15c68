import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // The image ships only .next/standalone (server.js + traced node_modules), keeping it small.
  output: "standalone",
  // Pin the tracing root to this service, so server.js lands at .next/standalone/server.js
  // even when a lockfile exists higher up in the checkout.
  outputFileTracingRoot: __dirname,
  turbopack: { root: __dirname },
  poweredByHeader: false,
  reactStrictMode: true,
  async headers() {
    return [
      {
        source: "/:path*",
        headers: [
          { key: "X-Content-Type-Options", value: "nosniff" },
          { key: "X-Frame-Options", value: "DENY" },
          { key: "Referrer-Policy", value: "same-origin" },
        ],
      },
    ];
  },
};

export default nextConfig;
