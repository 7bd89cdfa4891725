# lso: builds with GNU make and BSD make (bmake) alike; POSIX syntax plus !=.
.POSIX:

VERSION = 0.1.0
PREFIX = /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
DOCDIR = $(PREFIX)/share/doc/lso
SYSCONFDIR = /etc
UNITDIR = /lib/systemd/system
TMPFILESDIR = /usr/lib/tmpfiles.d

CC = cc
CFLAGS = -std=c11 -O2 -g -Wall -Wextra
WERROR =
# WITH_SYSTEMD=0: no sd-bus scopes for async jobs (images without libsystemd).
WITH_SYSTEMD = 1
CPPFLAGS_PKG != pkg-config --cflags libcjson libcurl 2>/dev/null || true
LIBS_PKG != pkg-config --libs libcjson 2>/dev/null || echo -lcjson
LSO_CPPFLAGS = -D_GNU_SOURCE -DLSO_VERSION=\"$(VERSION)\" -DWITH_SYSTEMD=$(WITH_SYSTEMD) $(CPPFLAGS_PKG)
LDLIBS = $(LIBS_PKG)

SAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

# The parts of lso, one concern each (README.md, Source map). lso.c holds
# main, burst.c the accept loop of burst mode (it calls lso_serve); the unit
# tests link the others.
PARTS = config validate jsonparse yaml inventory http job run record callback playbook detach cancel resolve \
	log file files docs spool runuser
COMPONENTS = lso burst $(PARTS)
SRC = $(COMPONENTS:=.c)
OBJ = $(COMPONENTS:=.o)
PARTS_SRC = $(PARTS:=.c)
HDR = lso.h config.h validate.h jsonparse.h yaml.h inventory.h http.h job.h job-internal.h run.h \
	playbook.h resolve.h log.h file.h json.h files.h docs.h burst.h spool.h runuser.h

all: lso

# Symbols bound at start (-z now), as Debian's hardening does anyway: in burst
# mode the children then inherit a resolved GOT instead of each resolving
# (and copying, on write) it anew.
LSO_LDFLAGS = -Wl,-z,now -Wl,-z,relro
lso: $(OBJ)
	$(CC) $(LDFLAGS) $(LSO_LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

# One rule builds every object; each depends on every header (they are few).
.SUFFIXES: .c .o
.c.o:
	$(CC) $(CFLAGS) $(WERROR) $(LSO_CPPFLAGS) $(CPPFLAGS) -c -o $@ $<
$(OBJ): $(HDR)
lso.o: openapi.h

# The OpenAPI document, embedded as a C string: no file read per request.
openapi.h: openapi.json
	sed -e 's/@VERSION@/$(VERSION)/g' -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' \
	    openapi.json > openapi.h.tmp
	mv openapi.h.tmp openapi.h

# Each header compiles alone, and twice over (its guard): none leans on what
# its includer happened to include first.
check-headers: $(HDR)
	@for h in $(HDR); do \
		printf '#include "%s"\n#include "%s"\n' $$h $$h | \
		$(CC) $(CFLAGS) -Werror $(LSO_CPPFLAGS) $(CPPFLAGS) -I. -x c -fsyntax-only - || \
		{ echo "check-headers: $$h does not compile alone" >&2; exit 1; }; \
	done
	@echo "check-headers: $(HDR)"

# The same sources with AddressSanitizer and UBSan, for the end-to-end suite.
tests/lso-san: $(SRC) $(HDR) openapi.h
	$(CC) $(SAN_FLAGS) -Wall -Wextra $(WERROR) $(LSO_CPPFLAGS) $(CPPFLAGS) -o $@ $(SRC) $(LDLIBS)

tests/unit: tests/unit.c $(PARTS_SRC) $(HDR)
	$(CC) $(SAN_FLAGS) -Wall -Wextra $(WERROR) $(LSO_CPPFLAGS) $(CPPFLAGS) -o $@ tests/unit.c $(PARTS_SRC) $(LDLIBS)

# lso's YAML on stdin/stdout, for tests/yaml-roundtrip.py (run by test.sh).
tests/yaml-tool: tests/yaml-tool.c yaml.c inventory.c $(HDR)
	$(CC) $(SAN_FLAGS) -Wall -Wextra $(WERROR) $(LSO_CPPFLAGS) $(CPPFLAGS) -o $@ tests/yaml-tool.c \
	    yaml.c inventory.c $(LDLIBS)

# A file system in memory that forgets unsynced writes on a power cut (tests/crash.sh).
tests/crashfs: tests/crashfs.c
	$(CC) -std=c11 -O1 -g -Wall -Wextra $(WERROR) -D_GNU_SOURCE `pkg-config --cflags fuse3` -o $@ \
	    tests/crashfs.c `pkg-config --libs fuse3`

# libFuzzer harnesses (clang): the HTTP reader, and whole requests through lso_serve.
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined
FUZZ_SECONDS = 60
tests/fuzz-http: tests/fuzz-http.c tests/fuzz-common.h http.c http.h
	$(FUZZ_CC) $(FUZZ_FLAGS) $(LSO_CPPFLAGS) $(CPPFLAGS) -o $@ tests/fuzz-http.c http.c
tests/fuzz-request: tests/fuzz-request.c tests/fuzz-common.h $(SRC) $(HDR) openapi.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -DLSO_NO_MAIN $(LSO_CPPFLAGS) $(CPPFLAGS) -o $@ tests/fuzz-request.c $(SRC) $(LDLIBS)

# Each harness for FUZZ_SECONDS (make fuzz FUZZ_SECONDS=1800 for a long run).
fuzz: deps
	@tests/deps.sh fuzz
	@$(MAKE) tests/fuzz-http tests/fuzz-request
	tests/fuzz.sh $(FUZZ_SECONDS)

# valgrind memcheck over representative requests.
test-valgrind: deps
	@tests/deps.sh valgrind
	@$(MAKE) lso
	tests/valgrind.sh ./lso

# Power cuts at every step of an async job's life, then lso --recover; the
# order of syncs, 201 and callback in strace (root: FUSE and cgroup2).
test-crash: deps
	@tests/deps.sh crash
	@$(MAKE) lso tests/crashfs
	tests/crash.sh ./lso

# The units under a real systemd (root; boots a container with systemd-nspawn).
test-systemd: deps
	@$(MAKE) lso
	tests/systemd.sh

# lso.8 (mandoc lint), the Debian package (build, lintian) and the package
# installed under a real systemd (root; see tests/package.sh).
test-package:
	tests/package.sh

# lso under ucspi-tcp's tcpserver and under xinetd, from examples/launchers/.
test-launchers: deps
	@$(MAKE) lso
	tests/launchers.sh ./lso

# The OpenAPI document against itself and a running lso (also part of test.sh).
test-openapi: deps
	@$(MAKE) lso
	TEST_ONLY=openapi ./test.sh ./lso

# The documentation pages in headless Chromium (also part of test.sh).
test-docs: deps
	@$(MAKE) lso
	tests/docs.sh ./lso

# Three lso hosts behind HAProxy (examples/haproxy/haproxy.cfg), each in a
# network namespace of its own, curl over TLS (root; see tests/scale.sh).
test-scale: deps
	@tests/deps.sh scale
	@$(MAKE) lso
	tests/scale.sh ./lso

# The README's make test and make run on a fresh Debian 12 minbase, from a clone
# of the committed HEAD (root; boots it with ../shared/tools/systemd-box).
test-fresh:
	tests/fresh.sh

# Installs what building and testing need when it is missing (Debian/Ubuntu, as
# root), the OpenAPI validators and the documentation pages' assets from npm
# into tests/.npm.
deps:
	@tests/deps.sh

# The suite: unit tests, then end to end against the build and the sanitizer build.
test: deps
	@$(MAKE) check-headers lso tests/unit tests/lso-san tests/yaml-tool
	tests/unit
	./test.sh ./lso
	LSO_SAN=1 ./test.sh tests/lso-san

# Serve the API on 127.0.0.1:44444 (make run RUN_PORT=N for another) with the
# example programs.
RUN_PORT = 44444
run: deps
	@$(MAKE) lso
	@mkdir -p run-state
	@echo "lso on http://127.0.0.1:$(RUN_PORT) with programs from examples/ (Ctrl-C to stop)"
	systemd-socket-activate -a --inetd -l 127.0.0.1:$(RUN_PORT) -E PATH \
	    -E EXECUTABLES_ROOT_DIR="$$(pwd)/examples" \
	    -E ANSIBLE_PLAYBOOKS_ROOT_DIR="$$(pwd)/examples/playbooks" \
	    -E LSO_STATE_DIR="$$(pwd)/run-state" ./lso

bench: deps
	@$(MAKE) lso
	bench/bench.sh

# The deployment under a real systemd (root; boots a container): lso@.service, lso-burst.service,
# webhook and two floors, interleaved. BENCH_SANDBOX=1 adds the cost of each sandbox option.
bench-systemd: lso
	bench/systemd.sh

# Async time-to-201 with and without LSO_SYNC_RECORDS, on disk and on tmpfs (root).
bench-durable: lso
	bench/durable.sh
# Requests a second through HAProxy with 1, 2 and 3 lso hosts (root; see bench/scale.sh).
bench-scale: deps
	@tests/deps.sh scale
	@$(MAKE) lso
	bench/scale.sh ./lso

install: lso
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/lso \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)
	cp lso $(DESTDIR)$(BINDIR)/lso
	chmod 755 $(DESTDIR)$(BINDIR)/lso
	sed 's|/usr/local/bin/lso|$(BINDIR)/lso|' lso@.service > $(DESTDIR)$(UNITDIR)/lso@.service
	sed 's|/usr/local/bin/lso|$(BINDIR)/lso|' lso-recover.service > $(DESTDIR)$(UNITDIR)/lso-recover.service
	sed 's|/usr/local/bin/lso|$(BINDIR)/lso|' lso-burst.service > $(DESTDIR)$(UNITDIR)/lso-burst.service
	cp lso.socket $(DESTDIR)$(UNITDIR)/lso.socket
	cp lso-recover.timer $(DESTDIR)$(UNITDIR)/lso-recover.timer
	cp lso-burst.socket $(DESTDIR)$(UNITDIR)/lso-burst.socket
	cp lso-jobs.slice $(DESTDIR)$(UNITDIR)/lso-jobs.slice
	cp lso.tmpfiles $(DESTDIR)$(TMPFILESDIR)/lso.conf
	chmod 644 $(DESTDIR)$(UNITDIR)/lso@.service $(DESTDIR)$(UNITDIR)/lso-recover.service \
	    $(DESTDIR)$(UNITDIR)/lso-recover.timer \
	    $(DESTDIR)$(UNITDIR)/lso.socket $(DESTDIR)$(UNITDIR)/lso-burst.socket \
	    $(DESTDIR)$(UNITDIR)/lso-burst.service $(DESTDIR)$(UNITDIR)/lso-jobs.slice \
	    $(DESTDIR)$(TMPFILESDIR)/lso.conf
	[ -e $(DESTDIR)$(SYSCONFDIR)/lso/lso.env ] || cp lso.env $(DESTDIR)$(SYSCONFDIR)/lso/lso.env
	cp lso.8 $(DESTDIR)$(MANDIR)/man8/lso.8
	cp README.md $(DESTDIR)$(DOCDIR)/README.md
	chmod 644 $(DESTDIR)$(MANDIR)/man8/lso.8 $(DESTDIR)$(DOCDIR)/README.md

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/lso $(DESTDIR)$(UNITDIR)/lso@.service $(DESTDIR)$(UNITDIR)/lso.socket \
	    $(DESTDIR)$(UNITDIR)/lso-recover.service $(DESTDIR)$(UNITDIR)/lso-recover.timer \
	    $(DESTDIR)$(UNITDIR)/lso-burst.socket \
	    $(DESTDIR)$(UNITDIR)/lso-burst.service $(DESTDIR)$(UNITDIR)/lso-jobs.slice \
	    $(DESTDIR)$(TMPFILESDIR)/lso.conf $(DESTDIR)$(MANDIR)/man8/lso.8 $(DESTDIR)$(DOCDIR)/README.md

clean:
	rm -f lso $(OBJ) openapi.h tests/unit tests/lso-san tests/fuzz-http tests/fuzz-request tests/yaml-tool tests/crashfs
	rm -rf run-state

.PHONY: all check-headers deps test test-valgrind test-systemd test-package test-launchers \
	test-openapi test-docs test-fresh test-crash test-scale fuzz run bench bench-systemd bench-durable \
	bench-scale install uninstall clean
