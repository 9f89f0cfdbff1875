#!/usr/bin/env bash
# Vendor Swagger UI's distribution files (the npm package swagger-ui-dist, Apache-2.0) into the package, so the
# server's /docs page works offline and under its Content-Security-Policy (no CDN). Usage:
#   scripts/vendor_swagger_ui.sh 5.35.0
# Only what /docs loads is kept (the bundle and its CSS), byte for byte as published, with the licence, the notice,
# the bundle's third-party licences, and VERSION (version and sha256 of each file).
set -euo pipefail
version="${1:?give the swagger-ui-dist version, e.g. 5.35.0}"
dest="$(cd "$(dirname "$0")/.." && pwd)/src/imagemachines/serve/static/swagger-ui"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf "swagger-ui-dist-$version.tgz")
files=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)
rm -rf "$dest" && mkdir -p "$dest"
for f in "${files[@]}"; do cp "$work/package/$f" "$dest/$f"; done
{
  echo "swagger-ui-dist $version (Apache-2.0), from the npm registry, by scripts/vendor_swagger_ui.sh"
  (cd "$dest" && sha256sum "${files[@]}")
} > "$dest/VERSION"
echo "vendored swagger-ui-dist $version into $dest"
