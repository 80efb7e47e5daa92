#!/usr/bin/env bash
# Make PostgreSQL answer on 127.0.0.1:5432 with trust auth and a database `test`.
set -uo pipefail
ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q; }
if ready; then echo "postgres: already running"; exit 0; fi

if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | head -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
if ! ready; then
  echo "postgres: installing"
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || true
  version=$(ls /etc/postgresql 2>/dev/null | head -n 1)
  if [ -n "$version" ]; then
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if [ -f "$hba" ] && ! grep -q "featurestore-ci" "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust # featurestore-ci\nlocal all all trust # featurestore-ci' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main restart || true
  fi
fi
for _ in $(seq 1 30); do ready && break; sleep 1; done
if ! ready; then echo "postgres: could not start; PostgreSQL tests will fail" >&2; exit 1; fi
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" || true
echo "postgres: ready"
