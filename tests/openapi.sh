#!/usr/bin/env bash
# tests/openapi.sh PORT [LSO]: openapi.json against itself and against a
# running lso on 127.0.0.1:PORT (test.sh starts one with
# EXECUTABLES_ROOT_DIR=tests/programs).
#
#  1. the served GET /api/openapi.json is openapi.json with @VERSION@ replaced
#     by the Makefile's VERSION, byte for byte;
#  2. the document is valid OpenAPI 3.1: the official JSON Schema
#     (@seriousme/openapi-schema-validator) and Redocly's linter (recommended
#     rules, examples checked against their schemas), both from npm, installed
#     into $LSO_NPM_DIR (default tests/.npm, gitignored);
#  3. every documented path and method answers (not 404/405); every route lso
#     serves is documented; every other method gets 405 with the documented
#     methods in Allow;
#  4. real responses (success and error, of every route) have a status the
#     operation documents and a body its schema accepts.
# With LSO (the binary), it also starts an lso of its own with auth on
# (LSO_OAUTH2_ACTIVE, LSO_API_KEY) and checks the 401s and the public routes. Without node, or when npm cannot
# install the validators, those checks print SKIP with the reason and the
# others still run. Ends with "N passed, M failed"; exits non-zero on failure.
#
# tests/openapi.sh --install: only install the validators (tests/deps.sh does,
# so that make test finds them); exits non-zero with the reason when it cannot.
set -u
if [ $# -lt 1 ]; then
	echo "usage: tests/openapi.sh PORT [LSO] | --install" >&2
	exit 2
fi
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
NPM_DIR=${LSO_NPM_DIR:-$TOP/tests/.npm}
# Pinned: a new release of a linter must not turn CI red on its own.
NPM_PACKAGES=(@redocly/cli@2.77.0 @seriousme/openapi-schema-validator@2.11.0
	ajv@8.20.0 ajv-formats@3.0.1)
TMP=$(mktemp -d /tmp/lso-openapi.XXXXXX)
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

# install_validators: the pinned NPM_PACKAGES in NPM_DIR, from the npm
# registry unless already there; on failure prints why and returns 1.
install_validators() {
	command -v node >/dev/null || { echo "node is not installed (tests/deps.sh installs nodejs)"; return 1; }
	npm_install "$NPM_DIR" "${NPM_PACKAGES[@]}"
}

if [ "$1" = --install ]; then
	why=$(install_validators) && exit 0
	echo "tests/openapi.sh --install: $why" >&2
	exit 1
fi
PORT=$1
LSO_BIN=${2:+$(realpath "$2")}
BASE=http://127.0.0.1:$PORT

# request METHOD URL-PATH [curl args...]: sets CODE and N; the body is in
# $TMP/r$N.body, the headers in $TMP/r$N.headers.
N=0
request() {
	local method=$1 path=$2
	shift 2
	N=$((N + 1))
	CODE=$(curl -sS -X "$method" -o "$TMP/r$N.body" -D "$TMP/r$N.headers" -w '%{http_code}' \
		--max-time 20 "$@" "$BASE$path" 2>"$TMP/r$N.err")
}

# sample TEMPLATE METHOD: the last response, to check against the document (part 4).
sample() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$CODE" "$TMP/r$N.body" >>"$TMP/samples.tsv"; }

header() { tr -d '\r' <"$TMP/r$N.headers" | sed -n "s/^$1: *//Ip" | head -n 1; }

json_post() { # PATH JSON: POST with a JSON body
	request POST "$1" -H 'Content-Type: application/json' --data-binary "$2"
}

# --- 1. the document lso serves is openapi.json ---

echo "== served document"
VERSION=$(sed -n 's/^VERSION[[:space:]]*=[[:space:]]*//p' Makefile | head -n 1)
[ -n "$VERSION" ] || { fail "VERSION in the Makefile"; echo "$passed passed, $failed failed"; exit 1; }
DOC=$TMP/openapi.json
sed "s/@VERSION@/$VERSION/g" openapi.json >"$DOC"
if ! jq -e . "$DOC" >/dev/null 2>&1; then
	fail "openapi.json is JSON" "$(jq . "$DOC" 2>&1 | head -n 3)"
	echo "$passed passed, $failed failed"
	exit 1
fi
request GET /api/openapi.json
expect "GET /api/openapi.json status" "$CODE" 200
sample /api/openapi.json get
expect "GET /api/openapi.json Content-Type" "$(header Content-Type)" application/json
if cmp -s "$DOC" "$TMP/r$N.body"; then
	pass "served document is openapi.json with @VERSION@ = $VERSION, byte for byte"
elif jq -e --slurpfile a "$DOC" '. == $a[0]' "$TMP/r$N.body" >/dev/null 2>&1; then
	fail "served document is openapi.json byte for byte" "same JSON, other bytes"
else
	fail "served document is openapi.json" \
		"differs (a stale build? make rebuilds openapi.h): $(diff <(jq -S . "$DOC") <(jq -S . "$TMP/r$N.body" 2>&1) | head -n 6 | tr '\n' ' ')"
fi
expect "info.version is the Makefile's VERSION" "$(jq -r .info.version "$DOC")" "$VERSION"
expect "openapi is 3.1.x" "$(jq -r '.openapi | test("^3\\.1\\.[0-9]+$")' "$DOC")" true
request GET /api/version
expect "GET /api/version module is the Makefile's VERSION" "$(jq -r .module "$TMP/r$N.body" 2>/dev/null)" "$VERSION"
sample /api/version get

# --- 2. a valid OpenAPI 3.1 document ---

echo "== validators"
VALIDATORS=""
if why=$(install_validators); then
	VALIDATORS=1
else
	skip "OpenAPI validators" "$why"
fi

if [ -n "$VALIDATORS" ]; then
	cat >"$TMP/schema-check.cjs" <<'EOF'
// The document against the official OpenAPI 3.1 JSON Schema.
const { pathToFileURL } = require("url");
(async () => {
	// An ES module: import() it (require() of one needs Node.js 20.19; Debian 12 has 18).
	const { Validator } = await import(pathToFileURL(require.resolve("@seriousme/openapi-schema-validator")).href);
	const v = new Validator();
	const r = await v.validate(process.argv[2]);
	if (r.valid && v.version && v.version.startsWith("3.1")) {
		console.log("valid OpenAPI " + v.version);
		process.exit(0);
	}
	console.log(JSON.stringify(r.errors || r).slice(0, 2000) + " version " + v.version);
	process.exit(1);
})();
EOF
	if out=$(NODE_PATH="$NPM_DIR/node_modules" node "$TMP/schema-check.cjs" "$DOC" 2>&1); then
		pass "OpenAPI 3.1 JSON Schema ($out)"
	else
		fail "OpenAPI 3.1 JSON Schema" "$out"
	fi

	# Redocly's recommended rules; examples must match their schemas. Trailing
	# slashes are the contract (upstream's /api/execute/), not a style slip.
	cat >"$TMP/redocly.yaml" <<'EOF'
extends:
  - recommended
rules:
  no-path-trailing-slash: off
  no-invalid-media-type-examples: error
  no-invalid-schema-examples: error
EOF
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		"$NPM_DIR/node_modules/.bin/redocly" lint --config "$TMP/redocly.yaml" \
		--format=stylish "$DOC" >"$TMP/redocly.log" 2>&1
	rc=$?
	grep -E '^ +[0-9]+:[0-9]+ +(error|warning)' "$TMP/redocly.log" | sed 's/^ */     redocly: /'
	if [ "$rc" = 0 ]; then pass "redocly lint: no errors"
	else fail "redocly lint" "$(grep -E 'error|Error' "$TMP/redocly.log" | head -n 10 | tr '\n' ' ')"; fi
fi

# --- 3. document and server agree on the routes ---

echo "== routes"
# "PATH METHOD" (upper case), one a line, as documented.
jq -r '.paths | to_entries[] | .key as $p | .value | keys[]
	| select(IN("get","put","post","delete","options","head","patch","trace"))
	| "\($p) \(ascii_upcase)"' "$DOC" | sort >"$TMP/documented"
echo "     documented: $(tr '\n' ';' <"$TMP/documented")"

# A real job, for the {job_id} routes.
json_post /api/execute/ '{"executable_name":"echo-args","args":["openapi"]}'
JOB=$(jq -r .job_id "$TMP/r$N.body" 2>/dev/null)
expect "an async job to look at" "$CODE" 201
sample /api/execute/ post
for _ in $(seq 50); do
	curl -s "$BASE/api/jobs/$JOB" | jq -e '.finished_at != null' >/dev/null 2>&1 && break
	sleep 0.1
done

# The job's folder gets a file when test.sh says where JOB_FILES_ROOT_DIR is
# (again before each request: DELETE .../delete removes it).
report() {
	[ -n "${OPENAPI_FILES_ROOT:-}" ] && [ -n "$JOB" ] || return 0
	mkdir -p "$OPENAPI_FILES_ROOT/$JOB"
	printf 'a report\n' >"$OPENAPI_FILES_ROOT/$JOB/report.txt"
}

concrete() { local p=${1//\{job_id\}/$JOB}; echo "${p//\{filename\}/report.txt}"; }

while read -r path method; do
	[ -n "$path" ] || continue
	report
	case $method in
	POST) json_post "$(concrete "$path")" '{}' ;;
	*) request "$method" "$(concrete "$path")" ;;
	esac
	if [ "$CODE" != 404 ] && [ "$CODE" != 405 ] && [ "$CODE" != 000 ]; then
		pass "documented $method $path answers ($CODE)"
	else
		fail "documented $method $path answers" "got $CODE: $(head -c 200 "$TMP/r$N.body")"
	fi
	sample "$path" "${method,,}"
done <"$TMP/documented"

# What lso.c routes: each must be documented.
for route in "POST /api/execute" "POST /api/execute/" "POST /api/playbook" "POST /api/playbook/" \
	"GET /api/jobs/{job_id}" "DELETE /api/jobs/{job_id}" "GET /api/version" "GET /api/version/" \
	"GET /api/openapi.json" "GET /api/doc" "GET /api/redoc" "GET /api/files/{job_id}" \
	"GET /api/files/{job_id}/{filename}" "DELETE /api/files/{job_id}/delete"; do
	if grep -qxF "${route#* } ${route%% *}" "$TMP/documented"; then pass "served $route is documented"
	else fail "served $route is documented"; fi
done

# Every other method: 405, Allow listing the documented ones, HEAD wherever
# GET is (served for every GET route), and GET on .../delete (a file named so).
for path in $(cut -d ' ' -f 1 "$TMP/documented" | sort -u); do
	allow=$( (grep "^$path " "$TMP/documented" | cut -d ' ' -f 2
		grep -qxF "$path GET" "$TMP/documented" && echo HEAD
		[ "$path" != "/api/files/{job_id}/delete" ] || printf 'GET\nHEAD\n') | sort | paste -sd ' ')
	for method in GET POST PUT DELETE PATCH OPTIONS; do
		grep -qxF "$path $method" "$TMP/documented" && continue
		# GET .../delete is a download of a file named "delete" (as in FastAPI's routing).
		[ "$path $method" = "/api/files/{job_id}/delete GET" ] && continue
		request "$method" "$(concrete "$path")"
		got_allow=$(header Allow | tr -d ' ' | tr ',' '\n' | sort | paste -sd ' ')
		if [ "$CODE" = 405 ] && [ "$got_allow" = "$allow" ]; then
			pass "undocumented $method $path: 405, Allow: $allow"
		else
			fail "undocumented $method $path: 405, Allow: $allow" "got $CODE, Allow: $got_allow"
		fi
		sample "$path" "${method,,}"
	done
done

request GET /api/nowhere
expect "unknown path: 404" "$CODE" 404
expect "unknown path: FastAPI's body" "$(cat "$TMP/r$N.body")" '{"detail":"Not Found"}'

# --- 4. real responses match the operations' documented responses ---

echo "== responses against the document"
# Each status the document names for execute, where tests/programs can make it.
json_post /api/execute/ '{"executable_name":"echo-args","args":["a","b"],"is_async":false}'
sample /api/execute/ post
json_post /api/execute '{"executable_name":"echo-args","is_async":"no"}'
sample /api/execute post
json_post /api/execute/ '{"executable_name":"no-such-program","is_async":false}'
sample /api/execute/ post
json_post /api/execute/ '{"executable_name":"outside-link","is_async":false}'
sample /api/execute/ post
json_post /api/execute/ '{"executable_name":"not-executable","is_async":false}'
sample /api/execute/ post
json_post /api/execute/ '{"executable_name":"adir","is_async":false}'
sample /api/execute/ post
json_post /api/execute/ '{"args":[1],"callback":"ftp://x","is_async":"maybe"}'
sample /api/execute/ post
json_post /api/execute/ '{"executable_name":'
sample /api/execute/ post
request POST /api/execute/ -H 'Content-Type: text/plain' --data-binary '{"executable_name":"echo-args"}'
sample /api/execute/ post
json_post /api/playbook '{"playbook_name":"pass.yml","inventory":"localhost"}'
sample /api/playbook post
json_post /api/playbook/ '{"playbook_name":1,"inventory":5,"progress_is_incremental":[]}'
sample /api/playbook/ post
json_post /api/playbook '{"playbook_name":"pass.yml","inventory":"h1\n[bad group]\n"}'
sample /api/playbook post
# Jobs: 200 and 409 (finished), 202 (running), 404.
request GET "/api/jobs/$JOB"
sample "/api/jobs/{job_id}" get
request DELETE "/api/jobs/$JOB"
sample "/api/jobs/{job_id}" delete
json_post /api/execute/ '{"executable_name":"sleep-echo","args":["5"],"callback":"http://127.0.0.1:9/x"}'
sample /api/execute/ post
RUNNING=$(jq -r .job_id "$TMP/r$N.body" 2>/dev/null)
request DELETE "/api/jobs/$RUNNING"
sample "/api/jobs/{job_id}" delete
request GET "/api/jobs/$RUNNING"
sample "/api/jobs/{job_id}" get
request GET /api/jobs/00000000-0000-4000-8000-000000000000
sample "/api/jobs/{job_id}" get
# Safe names (422) and outside the root (400).
json_post /api/execute/ '{"executable_name":"a b","is_async":false}'
sample /api/execute/ post
json_post /api/execute/ '{"executable_name":"../x","is_async":false}'
sample /api/execute/ post
json_post /api/playbook '{"playbook_name":"../x.yml","inventory":"localhost"}'
sample /api/playbook post
# A job's files: 200 (list, file), 400, 404, 422, 204.
report
request GET "/api/files/$JOB"
sample "/api/files/{job_id}" get
request GET /api/files/not-a-uuid
sample "/api/files/{job_id}" get
request GET "/api/files/$JOB/report.txt"
sample "/api/files/{job_id}/{filename}" get
request GET "/api/files/$JOB/..%2Fx"
sample "/api/files/{job_id}/{filename}" get
request GET "/api/files/$JOB/no-such-file"
sample "/api/files/{job_id}/{filename}" get
request GET "/api/files/$JOB/a%20b"
sample "/api/files/{job_id}/{filename}" get
request DELETE "/api/files/$JOB/delete"
sample "/api/files/{job_id}/delete" delete
request DELETE /api/files/x/delete
sample "/api/files/{job_id}/delete" delete
request GET /api/version/
sample /api/version/ get
# HTTP-level errors: 413, 431, 400.
head -c 1100000 /dev/zero | tr '\0' ' ' >"$TMP/big"
request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/big"
sample /api/execute/ post
request GET /api/version -H "X-Filler: $(head -c 70000 /dev/zero | tr '\0' a)"
sample /api/version get
request GET /api/version -H 'Content-Length: x'
sample /api/version get

if [ -n "$VALIDATORS" ]; then
	cat >"$TMP/responses.cjs" <<'EOF'
// Each sample (TEMPLATE METHOD STATUS BODYFILE): a status the operation
// documents, and a body the documented schema accepts.
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default || require("ajv-formats");
const doc = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const samples = fs.readFileSync(process.argv[3], "utf8").split("\n").filter(Boolean);
const deref = (o) => {
	while (o && o.$ref) {
		o = o.$ref.slice(2).split("/").reduce((x, k) => x[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
	}
	return o;
};
const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const root = { $id: "urn:lso:openapi", components: { schemas: doc.components.schemas }, $defs: {} };
const checks = [];
for (const line of samples) {
	const [template, method, status, file] = line.split("\t");
	const name = `${method.toUpperCase()} ${template} ${status}`;
	const item = doc.paths[template];
	// An undocumented method's 405 is documented on the path's operations.
	const op = item && (item[method] || (status === "405" && methods.map((m) => item[m]).find(Boolean)));
	if (!op) { checks.push({ name, why: "no such operation" }); continue; }
	const resp = deref(op.responses[status] || op.responses[status[0] + "XX"] || op.responses.default);
	if (!resp) { checks.push({ name, why: `status ${status} is not documented` }); continue; }
	// 204: no content; the HTML pages and file downloads: a body of another type.
	if (!resp.content) {
		if (fs.readFileSync(file).length === 0) console.log(`PASS ${name}: no body, as documented`);
		else checks.push({ name, why: "a body where the document has none" });
		continue;
	}
	const media = resp.content["application/json"];
	if (!media && Object.keys(resp.content).length) {
		console.log(`PASS ${name}: documented as ${Object.keys(resp.content).join(", ")}`);
		continue;
	}
	if (!media || !media.schema) { checks.push({ name, why: "no application/json schema" }); continue; }
	let body;
	try { body = JSON.parse(fs.readFileSync(file, "utf8")); }
	catch (e) { checks.push({ name, why: "body is not JSON" }); continue; }
	const key = "s" + checks.length;
	root.$defs[key] = media.schema;
	checks.push({ name, key, body });
}
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema(root);
let bad = 0;
for (const c of checks) {
	if (c.key) {
		const validate = ajv.getSchema(`urn:lso:openapi#/$defs/${c.key}`);
		if (validate(c.body)) { console.log(`PASS ${c.name}: body matches its schema`); continue; }
		c.why = ajv.errorsText(validate.errors) + " in " + JSON.stringify(c.body).slice(0, 300);
	}
	bad++;
	console.log(`FAIL ${c.name}: ${c.why}`);
}
process.exit(bad ? 1 : 0);
EOF
	NODE_PATH="$NPM_DIR/node_modules" node "$TMP/responses.cjs" "$DOC" "$TMP/samples.tsv" \
		>"$TMP/responses.log" 2>&1
	while IFS= read -r line; do
		case $line in
		"PASS "*) pass "${line#PASS }" ;;
		"FAIL "*) fail "${line#FAIL }" ;;
		*) fail "response check" "$line" ;;
		esac
	done <"$TMP/responses.log"
else
	skip "responses against their schemas" "no validators (above)"
fi

# --- auth on: 401 on every route but the public ones ---

PUBLIC="/api/openapi.json /api/doc /api/redoc"
if [ -n "$LSO_BIN" ]; then
	echo "== auth (an lso of our own with LSO_OAUTH2_ACTIVE=true and LSO_API_KEY)"
	TPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	systemd-socket-activate -a --inetd -l "127.0.0.1:$TPORT" -E PATH=/usr/bin:/bin \
		-E LSO_OAUTH2_ACTIVE=true -E LSO_API_KEY=s3cret -E LSO_STATE_DIR="$TMP/token-state" \
		-E EXECUTABLES_ROOT_DIR="$TOP/tests/programs" "$LSO_BIN" >"$TMP/token.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do grep -q "Listening on" "$TMP/token.log" && break; sleep 0.05; done
	SAVED_BASE=$BASE
	BASE=http://127.0.0.1:$TPORT
	: >"$TMP/samples.tsv"
	while read -r path method; do
		if [[ " $PUBLIC " == *" $path "* ]]; then
			request "$method" "$(concrete "$path")"
			expect "$method $path needs no key" "$CODE" 200
			continue
		fi
		case $method in
		POST) json_post "$(concrete "$path")" '{}' ;;
		*) request "$method" "$(concrete "$path")" ;;
		esac
		if [ "$CODE" = 401 ] && [ "$(header WWW-Authenticate)" = Bearer ]; then
			pass "$method $path without the key: 401, WWW-Authenticate: Bearer"
		else
			fail "$method $path without the key: 401" "got $CODE, WWW-Authenticate: $(header WWW-Authenticate)"
		fi
		sample "$path" "${method,,}"
	done <"$TMP/documented"
	request GET /api/version -H 'Authorization: Bearer s3cret'
	expect "GET /api/version with the key" "$CODE" 200
	request GET /api/version -H 'Authorization: Bearer wrong'
	expect "GET /api/version with a wrong key" "$CODE" 401
	jq -e '.security | any(. == {}) and any(has("bearer"))' "$DOC" >/dev/null &&
		jq -e '[.paths["/api/openapi.json", "/api/doc", "/api/redoc"].get.security] == [[], [], []]' "$DOC" >/dev/null &&
		jq -e '[.paths | to_entries[] | select(.key | IN("/api/openapi.json", "/api/doc", "/api/redoc") | not)
			| .value[] | objects | select(has("responses")) | has("security") | not] | all' "$DOC" >/dev/null &&
		pass "document: bearer optional, only the document and the pages public" ||
		fail "document: bearer optional, only the document and the pages public"
	jq -e '[.components.schemas.ExecuteRequest.properties.executable_name.pattern,
		.components.schemas.PlaybookRequest.properties.playbook_name.pattern]
		== ["^[A-Za-z0-9._/-]+$", "^[A-Za-z0-9._/-]+$"]' "$DOC" >/dev/null &&
		pass "document: the safe-name pattern on both names" ||
		fail "document: the safe-name pattern on both names"
	if [ -n "$VALIDATORS" ]; then
		NODE_PATH="$NPM_DIR/node_modules" node "$TMP/responses.cjs" "$DOC" "$TMP/samples.tsv" \
			>"$TMP/responses.log" 2>&1
		while IFS= read -r line; do
			case $line in
			"PASS "*) pass "${line#PASS }" ;;
			*) fail "${line#FAIL }" ;;
			esac
		done <"$TMP/responses.log"
	fi
	BASE=$SAVED_BASE
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
