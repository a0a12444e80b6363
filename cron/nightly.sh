#!/usr/bin/env bash
# Nightly job: pull the evening's arXiv announcements into the database (`tracker sync` also tags them).
#
# arXiv announces at 20:00 US/Eastern, Sunday to Thursday; run this an hour or two later
# (cron/crontab.example, cron/tracker-nightly.timer). Only the `tracker` CLI is called.
#
# Environment (all optional):
#   TRACKER_DB          database path                  (default: db/tracker.db in the repository)
#   TRACKER_LOG         log file, lines time-stamped   (default: db/nightly.log)
#   TRACKER_BIN         the tracker executable         (default: tracker on PATH)
#   TRACKER_LOCK_WAIT   seconds to wait for another writer before skipping this run (default: 0)
#   TRACKER_SYNC_ARGS   extra arguments for `tracker sync`, e.g. "--category cs.CV --category cs.CL"
#
# Exit status: 0 on success, also when nothing was new and when another tracker process holds the
# database (this run is skipped, the next one catches up); non-zero only when the sync really failed:
# 2 for a configuration or usage error (it fails the same way every night until it is fixed), 1 for
# anything else (network, malformed data). On failure the run's log lines also go to stderr, so cron
# mails them to MAILTO (cron/crontab.example); on success nothing is printed. docs/operations.md says
# what to do when a night fails.
set -euo pipefail
cd "$(dirname "$0")/.."

DB="${TRACKER_DB:-db/tracker.db}"
LOG="${TRACKER_LOG:-db/nightly.log}"
TRACKER="${TRACKER_BIN:-tracker}"
WAIT="${TRACKER_LOCK_WAIT:-0}"
read -r -a EXTRA <<< "${TRACKER_SYNC_ARGS:-}"

mkdir -p "$(dirname "$LOG")" "$(dirname "$DB")"
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"; done >> "$LOG"; }
log() { printf '%s\n' "$*" | stamp; }

first=1  # this run's first line in the log
if [ -f "$LOG" ]; then first=$(( $(wc -l < "$LOG") + 1 )); fi
log "nightly: start (pid $$): $TRACKER sync $DB --wait $WAIT ${EXTRA[*]:-}"
set +e
"$TRACKER" sync "$DB" --wait "$WAIT" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | stamp
status=${PIPESTATUS[0]}
set -e
case "$status" in
    0) log "nightly: done" ;;
    75) log "nightly: another tracker process holds $DB; skipped, the next run catches up"; status=0 ;;
    2) log "nightly: FAILED (exit 2): a configuration or usage error; every run fails the same way until it is fixed" ;;
    *) log "nightly: FAILED (exit $status)" ;;
esac
# cron mails what a job prints: print this run's lines when it failed, nothing otherwise.
if [ "$status" -ne 0 ]; then tail -n "+$first" "$LOG" >&2; fi
exit "$status"
