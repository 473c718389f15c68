import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // The image ships only .next/standalone (server.js + traced node_modules), keeping it small.
  output: "standalone",
  // Pin the tracing root to this service, so server.js lands at .next/standalone/server.js
  // even when a lockfile exists higher up in the checkout.
  outputFileTracingRoot: __dirname,
  turbopack: { root: __dirname },
  // The app shows no raster images, so sharp and its ~19 MB of libvips binaries (pulled
  // into the trace by next's image optimizer) stay out of the image.
  images: { unoptimized: true },
  outputFileTracingExcludes: { "*": ["node_modules/@img/**", "node_modules/sharp/**"] },
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
