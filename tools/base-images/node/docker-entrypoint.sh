#!/bin/sh
# Same contract as the official node image's entrypoint: `docker run IMAGE
# script.js` or `docker run IMAGE --version` runs node; a real command runs as is.
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
