#!/usr/bin/env bash
# Installs bench/run's tools if missing: nginx, wrk, valgrind and strace (Debian packages), LiteLLM's
# proxy with its dependencies in a virtualenv at bench/.venv (BENCH_VENV overrides), and Portkey's
# gateway (npm @portkey-ai/gateway, PORTKEY_VERSION, pinned) under bench/portkey (BENCH_PORTKEY overrides).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BENCH_VENV:-$here/.venv}"
portkey="${BENCH_PORTKEY:-$here/portkey}"
portkey_version="${PORTKEY_VERSION:-1.15.2}"
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v valgrind >/dev/null || missing+=(valgrind)  # bench/run --count
command -v strace >/dev/null || missing+=(strace)      # bench/run --count
command -v node >/dev/null || missing+=(nodejs)        # Portkey's gateway
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "[bench] installing ${missing[*]}" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ ! -x "$venv/bin/litellm" ]]; then
  echo "[bench] installing litellm[proxy] into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q 'litellm[proxy]' PyJWT cryptography aiohttp
fi
pkg="$portkey/node_modules/@portkey-ai/gateway/package.json"
if ! grep -q "\"version\": \"$portkey_version\"" "$pkg" 2>/dev/null; then
  echo "[bench] installing @portkey-ai/gateway@$portkey_version into $portkey" >&2
  mkdir -p "$portkey"
  npm install --prefix "$portkey" --no-audit --no-fund --omit=dev --save-exact --silent \
    "@portkey-ai/gateway@$portkey_version"
fi
