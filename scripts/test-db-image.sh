#!/usr/bin/env bash
# Builds the test database image `difyctl-testdb:current` with no registry: PostgreSQL 15,
# Redis and their clients from Debian's packages (mmdebstrap into a tarball, imported into the
# local Docker engine), started by scripts/testdb/entrypoint.sh the way the official images
# start. Cached by content: the image is tagged with a hash of this script and the entry
# point, and built only when that tag is missing (once per machine). Needs mmdebstrap and
# network access to Debian's mirror; talks to Docker through its API (no docker CLI needed).
set -euo pipefail
cd "$(dirname "$0")/.."

recipe=$(cat scripts/test-db-image.sh scripts/testdb/entrypoint.sh | sha256sum | cut -c1-12)
repo=difyctl-testdb
sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
sock=${sock#unix://}

# docker_api METHOD PATH [FILE]: one Engine API call; prints the body, fails on >= 400.
docker_api() {
  python3 - "$sock" "$@" <<'PY'
import http.client, socket, sys
sock, method, path = sys.argv[1:4]
body = open(sys.argv[4], "rb") if len(sys.argv) > 4 else None
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sock)
c = Conn("localhost", timeout=600)
headers = {"Content-Type": "application/x-tar"} if body else {}
c.request(method, path, body=body, headers=headers)
r = c.getresponse()
data = r.read().decode(errors="replace")
if r.status >= 400 or '"error"' in data:
    sys.stderr.write(f"{method} {path}: {r.status} {data}\n")
    sys.exit(1)
print(data)
PY
}

if docker_api GET "/images/$repo:$recipe/json" >/dev/null 2>&1; then
  docker_api POST "/images/$repo:$recipe/tag?repo=$repo&tag=current" >/dev/null
  echo "test-db-image: $repo:current is up to date ($recipe)"
  exit 0
fi

command -v mmdebstrap >/dev/null || { echo "test-db-image: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
work=$(mktemp -d /tmp/difyctl-testdb.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "test-db-image: building $repo:$recipe from Debian packages (about a minute)"
mmdebstrap --quiet --variant=apt --include=postgresql-15,redis-server \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15' \
  --customize-hook='upload scripts/testdb/entrypoint.sh /usr/local/bin/docker-entrypoint' \
  --customize-hook='chmod 755 "$1"/usr/local/bin/docker-entrypoint' \
  --customize-hook='mkdir -p "$1"/data' \
  bookworm "$work/rootfs.tar"

changes=$(python3 -c 'import json,urllib.parse,sys; print("&".join("changes="+urllib.parse.quote(c) for c in sys.argv[1:]))' \
  'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  'ENTRYPOINT ["/usr/local/bin/docker-entrypoint"]' \
  'WORKDIR /data')
docker_api POST "/images/create?fromSrc=-&repo=$repo&tag=$recipe&$changes" "$work/rootfs.tar" >/dev/null
docker_api POST "/images/$repo:$recipe/tag?repo=$repo&tag=current" >/dev/null
# Older recipes' images are dead weight (400 MB each).
docker_api GET "/images/json?filter=$repo" | python3 -c '
import json, sys
for image in json.load(sys.stdin):
    for tag in image.get("RepoTags") or []:
        if tag.startswith(sys.argv[1] + ":") and tag.split(":")[1] not in (sys.argv[2], "current"):
            print(tag)' "$repo" "$recipe" | while read -r old; do docker_api DELETE "/images/$old" >/dev/null || true; done
echo "test-db-image: built $repo:current ($recipe)"
