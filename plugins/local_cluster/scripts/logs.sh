#!/usr/bin/env bash
# Say where the local cluster's logs are; with a component name, print the end
# of its log (logs.sh kubelet [LINES]).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

if [[ $# -ge 1 ]]; then
  file="$LOG_DIR/$1.log"
  if [[ ! -f "$file" ]]; then
    known=("$LOG_DIR"/*.log); known=("${known[@]##*/}")
    die "no log for '$1' in $LOG_DIR (components: ${known[*]%.log})"
  fi
  tail -n "${2:-100}" "$file"
  exit 0
fi
echo "logs directory: $LOG_DIR"
for file in "$LOG_DIR"/*.log; do
  [[ -f "$file" ]] && printf '  %-28s %8s  %s\n' "$(basename "$file" .log)" "$(du -h "$file" | cut -f1)" "$file"
done
echo "pod logs: $(kubectl_bin) --kubeconfig $KUBECONFIG_ADMIN logs -n NAMESPACE POD"
