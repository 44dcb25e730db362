# Portico: four services on a ZeroMQ + protobuf-c bus.
#   make          build the four services and the Bitbucket emulator
#   make run      start everything (private PostgreSQL and demo Bitbucket when unset)
#   make setup-token  make run's setup token again, from another terminal
#   make test     unit, service, system, browser and fuzz smoke tests
#   make bench    benchmarks, printed next to a baseline measured in the same run
#   make fuzz     run the fuzz targets for a bounded time
#   make test-sanitize  unit, service, system and browser tests with ASan, LSan and UBSan
#   make deps     install the Debian packages all of this needs (as root)

CC      ?= cc
BUILD   ?= build
PKGS    := libczmq libzmq libprotobuf-c libcurl libpq libcrypto jansson yajl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# The flags above are read when make parses this file. On a fresh machine that
# is before `deps` has installed anything, so the entry points (run, test,
# bench, fuzz, test-sanitize) install first and then build in a new make
# that parses again.
# Every other goal that compiles needs the packages already there.
ENTRY_GOALS := run test bench fuzz test-sanitize
NO_PKG_GOALS := deps clean format check-format $(ENTRY_GOALS)
ifneq ($(filter-out $(NO_PKG_GOALS),$(or $(MAKECMDGOALS),all)),)
ifeq ($(PKG_LIBS),)
$(error the libraries Portico builds on are missing: run `make deps` (as root or with sudo) first, or `make run` / `make test`, which install them)
endif
endif
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual -Wno-format-truncation -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) -isystem $(BUILD)/gen -Icommon $(PKG_CFLAGS) -MMD -MP
LDLIBS  := $(PKG_LIBS) -lcivetweb -lpthread

PROTOS   := $(wildcard proto/*.proto)
GEN_C    := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_H    := $(GEN_C:.c=.h) $(BUILD)/gen/bus_methods.h
ROUTED   := registry broker bitbucket
GEN_O    := $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(GEN_C))
COMMON_O := $(patsubst common/%.c,$(BUILD)/obj/common/%.o,$(wildcard common/*.c))
LIBCOMMON := $(BUILD)/libportico.a

SERVICES := web registry broker bitbucket
BINS     := $(addprefix $(BUILD)/bin/portico-,$(SERVICES))
EMULATOR := $(BUILD)/bin/bitbucket-emulator

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.SECONDARY:
.PHONY: all deps run setup-token test do-run do-test do-bench do-fuzz do-test-sanitize unit-test module-cycles column-reads thread-tls web-markup service-test system-test browser-test fuzz fuzz-smoke bench clean format check-format
all: $(BINS) $(EMULATOR)

deps:
	@bash scripts/deps.sh

# ---- generated protocol code (never committed) ----
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

# The bus methods, declared once in proto/*.proto (service blocks): typed
# client functions, dispatch tables, and a JSON list for the tests.
$(BUILD)/gen/bus_methods.h $(BUILD)/gen/bus_methods.json $(foreach s,$(ROUTED),$(BUILD)/gen/bus_routes_$(s).c) &: scripts/busgen.py $(PROTOS)
	@mkdir -p $(BUILD)/gen
	python3 scripts/busgen.py $(BUILD)/gen $(PROTOS)

# The web's HTML templates, checked and compiled in (scripts/tmplgen.py).
WEB_TEMPLATES := $(wildcard services/web/templates/*.html)
$(BUILD)/gen/web_templates.c: scripts/tmplgen.py $(WEB_TEMPLATES)
	@mkdir -p $(BUILD)/gen
	python3 scripts/tmplgen.py $@ $(WEB_TEMPLATES)

$(BUILD)/obj/gen/web_templates.o: $(BUILD)/gen/web_templates.c services/web/tmpl.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iservices -c $< -o $@

$(BUILD)/obj/gen/bus_routes_%.o: $(BUILD)/gen/bus_routes_%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) -std=c17 $(CFLAGS) -I$(BUILD)/gen $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# What each instance reports in its bus ping (the admins' status page):
# the source's git description, or what the image build passes in.
PORTICO_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/obj/common/bus.o: ALL_CFLAGS += -DPORTICO_VERSION='"$(PORTICO_VERSION)"'

$(LIBCOMMON): $(COMMON_O) $(GEN_O)
	@rm -f $@
	ar rcs $@ $^

# ---- services: every .c under services/<name>/ makes portico-<name> ----
define service_rule
$(BUILD)/bin/portico-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard services/$(1)/*.c)) $(if $(filter $(1),$(ROUTED)),$(BUILD)/obj/gen/bus_routes_$(1).o) $(if $(filter $(1),web),$(BUILD)/obj/gen/web_templates.o) $(LIBCOMMON)
	@mkdir -p $(BUILD)/bin
	$(CC) -o $$@ $$^ $(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

$(EMULATOR): $(wildcard tests/emulator/*.c tests/emulator/*.h)
	@mkdir -p $(BUILD)/bin
	$(MAKE) -C tests/emulator OUT=$(abspath $@) CC=$(CC)

# ---- tests ----
$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIBCOMMON)
	@mkdir -p $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Iservices -o $@ $< $(wildcard services/*/$*.c) $(LIBCOMMON) $(LDLIBS) -lcmocka

# The HTTP layer consults the egress policy on every connection.
$(BUILD)/tests/test_bb_http: tests/unit/test_bb_http.c services/bitbucket/bb_http.c services/bitbucket/bb_egress.c $(LIBCOMMON)
	@mkdir -p $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Iservices -o $@ $< services/bitbucket/bb_http.c services/bitbucket/bb_egress.c $(LIBCOMMON) $(LDLIBS) -lcmocka

# The engine's test also loads every template the web is built with.
$(BUILD)/tests/test_tmpl: tests/unit/test_tmpl.c services/web/tmpl.c $(BUILD)/obj/gen/web_templates.o $(LIBCOMMON)
	@mkdir -p $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Iservices -o $@ $< services/web/tmpl.c $(BUILD)/obj/gen/web_templates.o $(LIBCOMMON) $(LDLIBS) -lcmocka

# No file of a service may depend on another that depends back on it, in
# any service.
module-cycles: $(BINS)
	@python3 scripts/module-cycles.py $(BUILD)/obj


# What portico-bitbucket reads from Bitbucket's answers, module by module;
# the tests of each link them all (the decoders build on the others).
BB_DECODE := $(addprefix services/bitbucket/,bb_text.c bb_form.c bb_header.c bb_status.c bb_pick.c bb_json.c)
BB_DECODE_TESTS := $(addprefix $(BUILD)/tests/test_,bb_text bb_form bb_header bb_status bb_json bb_page_diff)
$(BB_DECODE_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(BB_DECODE) $(LIBCOMMON)
	@mkdir -p $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Iservices -o $@ $< $(BB_DECODE) $(LIBCOMMON) $(LDLIBS) -lcmocka

# Every service's configuration table, with what its checks use.
CONFIG_TABLES := services/bitbucket/bb_config.c services/bitbucket/bb_egress.c services/broker/broker_config.c \
	services/registry/options.c services/web/web_config.c
$(BUILD)/tests/test_config_tables: tests/unit/test_config_tables.c $(CONFIG_TABLES) $(LIBCOMMON)
	@mkdir -p $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Iservices -o $@ $< $(CONFIG_TABLES) $(LIBCOMMON) $(LDLIBS) -lcmocka

# The web's C files write no HTML: every page's markup is in a template.
web-markup:
	@python3 scripts/web-markup.py

# No service keeps large buffers in thread-local storage, which every
# thread's stack pays for (civetweb's threads have 100 KB).
thread-tls: $(BINS)
	@python3 scripts/thread-tls.py $(BINS)

unit-test: $(UNIT_BIN) module-cycles column-reads thread-tls web-markup
	@bash tests/run-unit.sh $(UNIT_BIN)

# The registry reads result columns by name, never by number.
column-reads:
	@python3 scripts/column-reads.py services/registry

$(ENTRY_GOALS): deps
	@$(MAKE) --no-print-directory do-$@

do-test: all unit-test $(BUILD)/tests/bus_probe
	@bash tests/run-all.sh

# The unit tests, then the service, system and browser tests against the four
# services built again with AddressSanitizer (leaks included) and
# UndefinedBehaviorSanitizer, in $(BUILD)/sanitize; any report fails it.
SAN_BUILD := $(BUILD)/sanitize
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
do-test-sanitize: all $(BUILD)/tests/bus_probe
	@$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) CC="$(CC) $(SAN_FLAGS)" CFLAGS="-O1 -g" \
		$(addprefix $(SAN_BUILD)/bin/portico-,$(SERVICES)) $(patsubst $(BUILD)/%,$(SAN_BUILD)/%,$(UNIT_BIN))
	@bash tests/run-sanitize.sh $(SAN_BUILD)

do-fuzz:
	@bash tests/fuzz/run.sh 60

do-bench: all $(BUILD)/bench/bus_bench $(BUILD)/bench/login_load
	@bash tests/bench/run.sh

do-run: all
	@bash scripts/run.sh

setup-token: $(BUILD)/bin/portico-registry
	@bash scripts/setup-token.sh

format:
	clang-format -i $(wildcard common/*.[ch] services/*/*.[ch] tests/unit/*.c tests/fuzz/*.c)

check-format:
	@clang-format --dry-run --Werror $(wildcard common/*.[ch] services/*/*.[ch])

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)

$(BUILD)/bench/bus_bench: tests/bench/bus_bench.c $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBCOMMON) $(LDLIBS)

$(BUILD)/tests/bus_probe: tests/system/bus_probe.c $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBCOMMON) $(LDLIBS)

$(BUILD)/bench/login_load: tests/bench/login_load.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) -o $@ $< $(shell pkg-config --libs libcurl)
