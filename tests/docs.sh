#!/usr/bin/env bash
# tests/docs.sh LSO: the documentation pages in a real browser. Starts an lso
# whose LSO_DOCS_ASSETS_URL points at Swagger UI and ReDoc from npm
# (swagger-ui-dist, redoc; installed into $LSO_NPM_DIR/docs, default
# tests/.npm/docs), served locally by python3's http.server, loads /api/doc
# and /api/redoc in headless Chromium (Debian's chromium, installed here when
# missing) and checks that the rendered page shows every operation of the
# OpenAPI document. Also: the pages' HTML with the default (FastAPI's CDN)
# URLs, and that a page whose assets cannot load shows nothing (the check can
# fail). Ends with "N passed, M failed"; exits non-zero on failure.
#
# tests/docs.sh --install: only install chromium and the npm packages
# (tests/deps.sh does, so that make test finds them); exits non-zero with the
# reason when it cannot.
set -u
if [ $# -lt 1 ]; then
	echo "usage: tests/docs.sh LSO | --install" >&2
	exit 2
fi
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
LSO_BIN=
[ "$1" = --install ] || LSO_BIN=$(realpath "$1")
NPM_DIR=${LSO_NPM_DIR:-$TOP/tests/.npm}/docs
# Pinned, within the majors FastAPI's CDN URLs name (swagger-ui-dist@5, redoc@2).
NPM_PACKAGES=(swagger-ui-dist@5.35.0 redoc@2.5.4)
TMP=$(mktemp -d /tmp/lso-docs.XXXXXX)
passed=0 failed=0 skipped=0
pids=()

cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. tests/lib.sh

# serve_lso NAME VAR=VALUE...: an lso on a free port; sets BASE.
serve_lso() {
	local name=$1 port args=()
	shift
	port=$(free_port)
	for kv in PATH=/usr/bin:/bin EXECUTABLES_ROOT_DIR="$TOP/tests/programs" \
		LSO_STATE_DIR="$TMP/state" "$@"; do args+=(-E "$kv"); done
	systemd-socket-activate -a --inetd "${args[@]}" -l "127.0.0.1:$port" "$LSO_BIN" \
		>"$TMP/$name.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do grep -q "Listening on" "$TMP/$name.log" && break; sleep 0.05; done
	BASE=http://127.0.0.1:$port
}

# chromium (Debian's) and the pinned npm packages, when missing.
browser_ready() {
	command -v chromium >/dev/null || apt_install chromium >/dev/null || {
		echo "chromium is not installed and could not be"; return 1; }
	npm_install "$NPM_DIR" "${NPM_PACKAGES[@]}"
}

if [ -z "$LSO_BIN" ]; then
	why=$(browser_ready) || { echo "tests/docs.sh --install: $why" >&2; exit 1; }
	exit 0
fi

# --- the pages' HTML, as FastAPI writes it, with its CDN defaults ---

echo "== the pages' HTML"
serve_lso default
curl -sS -D "$TMP/doc.headers" -o "$TMP/doc.html" "$BASE/api/doc"
check "/api/doc is text/html" grep -qi '^Content-Type: text/html; charset=utf-8' "$TMP/doc.headers"
check "/api/doc: Swagger UI's script from FastAPI's CDN" grep -qF \
	'<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>' "$TMP/doc.html"
check "/api/doc: its style from FastAPI's CDN" grep -qF \
	'href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"' "$TMP/doc.html"
check "/api/doc: loads /api/openapi.json" grep -qF "url: '/api/openapi.json'," "$TMP/doc.html"
check "/api/doc: FastAPI's parameters" grep -qF '"deepLinking": true,' "$TMP/doc.html"
curl -sS -o "$TMP/redoc.html" "$BASE/api/redoc"
check "/api/redoc: ReDoc's script from FastAPI's CDN" grep -qF \
	'<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"> </script>' "$TMP/redoc.html"
check "/api/redoc: loads /api/openapi.json" grep -qF '<redoc spec-url="/api/openapi.json"></redoc>' "$TMP/redoc.html"
serve_lso attribute LSO_DOCS_ASSETS_URL='http://x/"><script>alert(1)</script>/'
curl -sS -o "$TMP/escaped.html" "$BASE/api/doc"
check "the asset URL is escaped in the HTML" bash -c "! grep -qF '<script>alert' '$TMP/escaped.html' &&
	grep -qF 'http://x/&quot;&gt;&lt;script&gt;' '$TMP/escaped.html'"

# --- in a browser, with the assets served locally ---

echo "== rendered in headless Chromium"

# render URL OUT: the DOM after the page's scripts ran.
render() {
	timeout 120 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
		--no-first-run --user-data-dir="$TMP/chromium" --virtual-time-budget=20000 \
		--dump-dom "$1" >"$2" 2>"$TMP/chromium.log"
}

# Every operation of the document: "METHOD PATH OPERATIONID TAG".
operations() {
	jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[]
		| select(.key | IN("get","put","post","delete","patch")) 
		| "\(.key) \($p) \(.value.operationId) \(.value.tags[0])"' "$TOP/openapi.json"
}

if why=$(browser_ready); then
	# The CDN's layout: <base>/swagger-ui-dist@5/..., <base>/redoc@2/bundles/...
	mkdir -p "$TMP/assets"
	ln -s "$NPM_DIR/node_modules/swagger-ui-dist" "$TMP/assets/swagger-ui-dist@5"
	ln -s "$NPM_DIR/node_modules/redoc" "$TMP/assets/redoc@2"
	APORT=$(free_port)
	python3 -m http.server --bind 127.0.0.1 --directory "$TMP/assets" "$APORT" >"$TMP/assets.log" 2>&1 &
	pids+=($!)
	wait_for 5 curl -sf -o /dev/null "http://127.0.0.1:$APORT/redoc@2/bundles/redoc.standalone.js"
	serve_lso local LSO_DOCS_ASSETS_URL="http://127.0.0.1:$APORT/"
	render "$BASE/api/doc" "$TMP/doc.dom"
	check "Swagger UI rendered (its info block)" grep -q 'class="info"' "$TMP/doc.dom"
	while read -r method path id tag; do
		# Swagger UI: one block per operation, id operations-TAG-OPERATIONID, its path shown.
		check "Swagger UI shows $method $path" grep -q "id=\"operations-$tag-$id\"" "$TMP/doc.dom"
	done < <(operations)
	expect "Swagger UI shows every path" \
		"$(grep -o 'data-path="[^"]*"' "$TMP/doc.dom" | sort -u | sed 's/data-path="//; s/"$//' | paste -sd ' ')" \
		"$(jq -r '.paths | keys[]' "$TOP/openapi.json" | sort -u | paste -sd ' ')"
	render "$BASE/api/redoc" "$TMP/redoc.dom"
	check "ReDoc rendered (the document's title)" grep -q '<h1[^>]*>lso' "$TMP/redoc.dom"
	while read -r method path id tag; do
		# ReDoc: a section per operation, id operation/OPERATIONID, with its path.
		check "ReDoc shows $method $path" grep -q "id=\"operation/$id\"" "$TMP/redoc.dom"
		check "ReDoc shows the path $path" grep -qF "$path" "$TMP/redoc.dom"
	done < <(operations)
	# The control: with assets that do not load, no operation is shown.
	serve_lso dead LSO_DOCS_ASSETS_URL="http://127.0.0.1:$(free_port)"
	render "$BASE/api/doc" "$TMP/dead.dom"
	check "control: without its assets Swagger UI shows nothing" bash -c "! grep -q 'id=\"operations-' '$TMP/dead.dom'"
else
	skip "pages in a browser" "$why"
fi

check "every lso exited 0" bash -c "! grep -hE 'died with (code [1-9]|signal)' $TMP/*.log"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
