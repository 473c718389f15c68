#!/usr/bin/env bash
# One entry point: cluster.sh up|down|wipe|status|logs|build|load-image [ARGS].
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command="${1:-}"
case "$command" in
  up|down|wipe|status|logs|build|load-image) shift; exec "$here/$command.sh" "$@" ;;
  *) echo "usage: $0 up|down|wipe [--dry-run]|status|logs [COMPONENT]|build|load-image IMAGE..." >&2; exit 2 ;;
esac
