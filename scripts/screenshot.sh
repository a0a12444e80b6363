#!/usr/bin/env bash
# Screenshot what `tracker serve` shows, with headless Chromium, into docs/screenshots/.
#
#   scripts/screenshot.sh [DB_PATH]
#
# Without DB_PATH it builds the test database (tests/sample_db.py: the bundled real corpus with
# keyword tags) in a temporary folder. Needs Debian's chromium (`apt-get install chromium`).
# The browser only reaches loopback: every other host resolves to nothing and any other
# address goes to a dead proxy on 127.0.0.1:9. Set PYTHON to pick the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
OUT=docs/screenshots
CHROMIUM=${CHROMIUM:-chromium}
command -v "$CHROMIUM" >/dev/null || { echo "screenshot.sh: $CHROMIUM not found (apt-get install chromium)" >&2; exit 1; }

tmp=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

db=${1:-}
if [ -z "$db" ]; then
    db=$tmp/papers.db
    "$PYTHON" -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from sample_db import build_sample_db; build_sample_db(Path(sys.argv[1]))" "$db"
fi
name=$(basename "$db"); name=${name%.*}
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port/$name"

"$PYTHON" -m tracker serve "$db" --port "$port" >"$tmp/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
    if "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$base" 2>/dev/null; then break; fi
    sleep 0.3
done

shot() {  # shot FILE URL [HEIGHT]
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --disable-extensions \
        --user-data-dir="$(mktemp -d -p "$tmp")" \
        --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" --proxy-server="http://127.0.0.1:9" \
        --hide-scrollbars --window-size="1400,${3:-1400}" --screenshot="$OUT/$1" "$2" 2>>"$tmp/chromium.log"
    echo "$OUT/$1  <-  $2"
}

mkdir -p "$OUT"
shot papers.png "$base/papers?_search=multimodal+reasoning" 1900
shot papers_this_week.png "$base/papers_this_week?tag=&week_of=" 1500
shot tag_trend.png "$base/tag_trend?tag=M-CoT" 1000
