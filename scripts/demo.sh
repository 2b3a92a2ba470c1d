#!/usr/bin/env bash
# The README demo: a demo hub on 127.0.0.1, then search and a download with the official hf CLI.
# Run it with `make demo` (which puts .venv/bin first on PATH).
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/hfa-demo.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
# Nothing the demo runs (hf download, hfa pin) may write into the real home or cache.
export HOME="$work/home" XDG_CACHE_HOME="$work/home/.cache" HF_HOME="$work/hf-home"
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_TOKEN
mkdir -p "$HOME"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Building the demo hub (generated repos + the real all-MiniLM-L6-v2 snapshot)"
python -m hfa.demo "$work/hub"

step "hfa serve --cache-dir $work/hub --port 0"
hfa serve --cache-dir "$work/hub" --port 0 --auth "$work/hub/.hfa-demo-auth.toml" >"$work/url" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(head -n 1 "$work/url")
[ -n "$url" ] || { echo "hfa serve did not start:"; cat "$work/serve.log"; exit 1; }
echo "serving at $url"
export HF_ENDPOINT="$url" HF_HUB_DISABLE_TELEMETRY=1

step "hfa search --sort downloads"
hfa search --sort downloads --endpoint "$url"

step "hfa search tiny --library transformers --json"
hfa search tiny --library transformers --json --endpoint "$url"

step "hf download sentence-transformers/all-MiniLM-L6-v2 (the official client, from hfa serve)"
HF_HUB_CACHE="$work/client-cache" hf download sentence-transformers/all-MiniLM-L6-v2 --quiet
find "$work/client-cache" -maxdepth 4 -path '*snapshots*' | head -n 20

step "hfa info hfa-demo/tiny-sharded (card facts, files, what pull would take and why)"
hfa info hfa-demo/tiny-sharded --endpoint "$url" --cache-dir "$work/hfa-cache"

step "hfa pull sentence-transformers/all-MiniLM-L6-v2 (lazy, verified while streaming)"
hfa pull sentence-transformers/all-MiniLM-L6-v2 --endpoint "$url" --cache-dir "$work/hfa-cache"

step "hfa pin: record exact commits and every file's hash in hfa.lock"
(cd "$work" && hfa pin sentence-transformers/all-MiniLM-L6-v2 hfa-demo/tiny-sharded@v1.0 --endpoint "$url" && sed -n '1,20p' hfa.lock)

step "hfa pull (from the lock; zero requests when everything is cached)"
(cd "$work" && hfa pull --endpoint "$url" --cache-dir "$work/hfa-cache" && hfa pull --endpoint "$url" --cache-dir "$work/hfa-cache" --json | python -c "import json,sys; print('requests made on the second run:', json.load(sys.stdin)['requests'])")

step "hfa verify --lock hfa.lock (offline: every hash, every link, the content scan)"
(cd "$work" && hfa verify --lock hfa.lock --cache-dir "$work/hfa-cache")

step "hfa pull hfa-demo/lfs-stub: a Git-LFS pointer stub where weights should be is refused"
if hfa pull hfa-demo/lfs-stub --endpoint "$url" --cache-dir "$work/hfa-cache" -q >/dev/null 2>"$work/err"; then
  echo "unexpected: the stub was published"; exit 1
else
  echo "refused, as it must be (exit $?): $(cat "$work/err")"
fi

step "hfa pull --allow-unsafe, then hfa scan: the stub, published on request, is a finding"
hfa pull hfa-demo/lfs-stub --allow-unsafe --endpoint "$url" --cache-dir "$work/hfa-cache" -q >/dev/null 2>&1
if hfa scan hfa-demo/lfs-stub --cache-dir "$work/hfa-cache"; then
  echo "unexpected: the scan found nothing"; exit 1
else
  echo "(exit $?: the stub is a finding, as it must be)"
fi

step "hfa pin --check (CI: has upstream moved?)"
(cd "$work" && hfa pin --check --endpoint "$url")

step "hfa pull hfa-demo/tiny-sharded --dry-run (only the shards the index references)"
hfa pull hfa-demo/tiny-sharded --dry-run --endpoint "$url" --cache-dir "$work/hfa-cache"

step "hfa pull --offline: from the cache alone, after stopping the server"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
hfa pull sentence-transformers/all-MiniLM-L6-v2 --offline --cache-dir "$work/hfa-cache"
if hfa pull hfa-demo/tiny-sharded --offline --cache-dir "$work/hfa-cache" 2>"$work/err"; then
  echo "unexpected: offline pull of an uncached repo succeeded"; exit 1
else
  echo "refused, as it must be: $(cat "$work/err")"
fi
python - "$work/hfa-cache" <<'PY'
import sys
from huggingface_hub import snapshot_download
path = snapshot_download("sentence-transformers/all-MiniLM-L6-v2", cache_dir=sys.argv[1], local_files_only=True)
print("huggingface_hub loads it with local_files_only=True:", path)
PY

step "Restarting the server for the gated-repo demo"
: >"$work/url"
hfa serve --cache-dir "$work/hub" --port 0 --auth "$work/hub/.hfa-demo-auth.toml" >"$work/url" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(head -n 1 "$work/url"); export HF_ENDPOINT="$url"

step "A gated repo: refused without a token, served with the demo token"
if HF_HUB_CACHE="$work/client-cache" hf download hfa-demo/gated-model --quiet 2>/dev/null; then
  echo "unexpected: gated repo served without a token"; exit 1
else
  echo "refused without a token (as the Hub does)"
fi
HF_HUB_CACHE="$work/client-cache" HF_TOKEN=hfa_demo_token_0123456789 hf download hfa-demo/gated-model --quiet

step "Done: the server stops and the demo files are removed"
