#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: chromium (the Swagger UI browser test),
# wrk, nginx-light and haproxy (make bench: the load generator and the reference proxies), and
# linux-perf (make bench's system-call count; its test is skipped without it).
# Installed only when missing and apt is usable (nginx and haproxy live in /usr/sbin).
set -uo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages (install them yourself): ${missing[*]}" >&2
  exit 0
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
