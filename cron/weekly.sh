#!/usr/bin/env bash
# Weekly job: email last week's digest to every subscriber, exactly once per (recipient, week).
#
# Run on Monday morning (cron/crontab.example, cron/tracker-weekly.timer): the default window is the
# last complete ISO week. A rerun sends nothing twice, and a send that failed is retried by the next
# run. SMTP settings come from auth.json (`tracker auth`) or TRACKER_SMTP_* variables; the password
# only from auth.json or TRACKER_SMTP_PASSWORD. Only the `tracker` CLI is called.
#
# Environment (all optional):
#   TRACKER_DB           database path                 (default: db/tracker.db in the repository)
#   TRACKER_LOG          log file, lines time-stamped  (default: db/weekly.log)
#   TRACKER_BIN          the tracker executable        (default: tracker on PATH)
#   TRACKER_LOCK_WAIT    seconds to wait for a running sync to finish (default: 600)
#   TRACKER_DIGEST_ARGS  extra arguments for `tracker digest`, e.g. "--skip-empty"
#
# Exit status: 0 when every digest went out (or had already); non-zero when one failed (1; the next
# run retries it), the database stayed locked for TRACKER_LOCK_WAIT seconds (75; the next run retries),
# or the settings are wrong (2: no SMTP server or sender, an auth.json others can read, a bad option;
# nothing is retried, it fails the same way until it is fixed). On failure the run's log lines also go
# to stderr, so cron mails them to MAILTO (cron/crontab.example); on success nothing is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

DB="${TRACKER_DB:-db/tracker.db}"
LOG="${TRACKER_LOG:-db/weekly.log}"
TRACKER="${TRACKER_BIN:-tracker}"
WAIT="${TRACKER_LOCK_WAIT:-600}"
read -r -a EXTRA <<< "${TRACKER_DIGEST_ARGS:-}"

mkdir -p "$(dirname "$LOG")"
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"; done >> "$LOG"; }
log() { printf '%s\n' "$*" | stamp; }

first=1  # this run's first line in the log
if [ -f "$LOG" ]; then first=$(( $(wc -l < "$LOG") + 1 )); fi
log "weekly: start (pid $$): $TRACKER digest $DB --send --wait $WAIT ${EXTRA[*]:-}"
set +e
"$TRACKER" digest "$DB" --send --wait "$WAIT" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | stamp
status=${PIPESTATUS[0]}
set -e
case "$status" in
    0) log "weekly: done" ;;
    2) log "weekly: FAILED (exit 2): a configuration or usage error; nothing is retried until it is fixed" ;;
    75) log "weekly: FAILED (exit 75): $DB stayed locked for $WAIT s; the next run retries" ;;
    *) log "weekly: FAILED (exit $status): see the lines above; a send that failed is retried by the next run" ;;
esac
# cron mails what a job prints: print this run's lines when it failed, nothing otherwise.
if [ "$status" -ne 0 ]; then tail -n "+$first" "$LOG" >&2; fi
exit "$status"
