#!/usr/bin/env bash
# The peers `make bench` runs beside the project, installed where missing, for the bench only:
# nchan is Debian's nginx with libnginx-mod-nchan (bench/peers/nchan.ts starts its own nginx
# on a free port). As root it installs what is missing without starting nginx's service
# (Debian's policy-rc.d hook, removed again afterwards, as .ci/run does); otherwise it says what
# is missing and the bench goes on, the peer's columns saying n/a. Never fails the bench.
set -uo pipefail

need=()
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "bench: missing for the nchan peer: ${need[*]} (as root: apt-get install ${need[*]});" \
    "its figures will say n/a" >&2
  exit 0
fi

if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "bench: installing ${need[*]} for the nchan peer" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; }; then
  echo "bench: could not install ${need[*]}; nchan's figures will say n/a" >&2
fi
exit 0
