#!/bin/sh
# Installs Docker (Debian's packages) and runs the container tests: npm run test:containers.
# Run by .ci/run after the suites. Needs root, the Debian package mirror and the npm registry; no image
# registry (the base image is built locally and cached by tag, see test/containers/base-image.sh).
set -eu
cd "$(dirname "$0")/.."

missing=
for tool in dockerd debootstrap docker-compose; do command -v "$tool" >/dev/null || missing=1; done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap docker-compose >/dev/null
fi

started=
if ! docker info >/dev/null 2>&1; then
  dockerd >/tmp/containers-ci-dockerd.log 2>&1 &
  started=$!
  tries=0
  until docker info >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 60 ] || ! kill -0 "$started" 2>/dev/null; then
      echo "containers-ci: dockerd did not start; its log:" >&2
      tail -20 /tmp/containers-ci-dockerd.log >&2
      exit 1
    fi
    sleep 1
  done
fi

status=0
npm run test:containers || status=$?
if [ -n "$started" ]; then
  kill "$started"
  wait "$started" || true
fi
exit "$status"
