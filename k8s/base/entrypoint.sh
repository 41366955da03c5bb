#!/bin/sh
# Starts one kappa process of the cluster: its index is the pod's ordinal
# (kappa-2 -> 2); every peer is reached through the headless Service.
set -eu
ordinal="${HOSTNAME##*-}"
processes="${KAPPA_PROCESSES:-1}"
hosts=/etc/kappa/cluster/hosts
: > "$hosts"
i=0
while [ "$i" -lt "$processes" ]; do
  echo "${KAPPA_STATEFULSET}-${i}.${KAPPA_PEERS_SERVICE}.${KAPPA_NAMESPACE}.svc:${KAPPA_TIMELY_PORT}" >> "$hosts"
  i=$((i + 1))
done
set -- /etc/kappa/pipelines/*.sql
if [ "$processes" -gt 1 ]; then
  exec kappa serve "$@" --listen 0.0.0.0:8080 --workers "${KAPPA_WORKERS:-1}" \
    --processes "$processes" --process "$ordinal" --hosts "$hosts"
fi
exec kappa serve "$@" --listen 0.0.0.0:8080 --workers "${KAPPA_WORKERS:-1}"
