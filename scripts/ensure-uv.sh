#!/usr/bin/env bash
# Print the path of a uv binary, installing uv with pip (user site) when none is on PATH.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
for candidate in "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv"; do
  if [ -x "$candidate" ]; then echo "$candidate"; exit 0; fi
done
python3 -m pip install --quiet --user 'uv>=0.5' >&2
python3 -c 'import sysconfig, os; print(os.path.join(sysconfig.get_path("scripts", "posix_user"), "uv"))'
