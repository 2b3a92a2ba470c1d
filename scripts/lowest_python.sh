#!/usr/bin/env bash
# Print the path of an interpreter of the lowest Python that pyproject.toml's requires-python
# allows (`make test-lowest` runs the suite on it; CI calls that). Looks on PATH
# (python3.X), then in pyenv's versions. Exits 1, saying what to install, when there is none:
# CI must not skip the lowest version silently.
set -euo pipefail
cd "$(dirname "$0")/.."
lowest=$(sed -n 's/^requires-python *= *">= *\([0-9][0-9]*\.[0-9][0-9]*\)".*/\1/p' pyproject.toml)
if [ -z "$lowest" ]; then
    echo "lowest_python.sh: no requires-python = \">=3.X\" in pyproject.toml" >&2
    exit 1
fi
ok() {  # $1 runs and is Python $lowest (a pyenv shim may exist and still refuse to run)
    [ -n "$1" ] && [ -x "$1" ] &&
        [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$lowest" ]
}
candidates=()
if found=$(command -v "python$lowest" 2>/dev/null); then candidates+=("$found"); fi
root=${PYENV_ROOT:-$HOME/.pyenv}
if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null || echo "$root"); fi
# Newest patch release first.
while IFS= read -r dir; do
    candidates+=("$dir/bin/python$lowest")
done < <(ls -d "$root/versions/$lowest".* 2>/dev/null | sort -t. -k3,3nr)
for python in "${candidates[@]}"; do
    if ok "$python"; then
        echo "$python"
        exit 0
    fi
done
echo "lowest_python.sh: no Python $lowest found (the lowest version pyproject.toml supports):" \
    "install it, e.g. \`pyenv install $lowest\`, or put python$lowest on PATH" >&2
exit 1
