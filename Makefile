# strata: plain GNU make with pkg-config.
#   make            build build/strata
#   make check      install missing Debian packages, build with ASan+UBSan, run every test
#   make asan       build build/asan/strata only
#   make demo       install packages, build, run the example environments end to end
#   make install    PREFIX=/usr/local DESTDIR= (binary, examples, man page, completions)
#   make man        regenerate strata.1 from the help text (src/cmd/help.c)
#   make clean
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
V       ?= 0
PKGS    := libcurl openssl libfyaml libprotobuf-c jansson zlib libssh libzstd liblzma libisofs-1

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c17 -D_GNU_SOURCE $(WARN) -MMD -MP -Isrc -I$(B)/gen $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lpthread

ifeq ($(V),0)
Q = @
QCC = @echo "  CC      $@";
QLD = @echo "  LD      $@";
QGEN = @echo "  PROTOC  $<";
endif

# Build directory: build/ for the plain build, build/asan for sanitizers.
ifeq ($(SANITIZE),1)
B       := build/asan
CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=undefined $(filter-out -O2 -O1 -g,$(CFLAGS))
LDFLAGS += -fsanitize=address,undefined
else
B       := build
endif

PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
LIB_SRC     := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ     := $(patsubst %.c,$(B)/%.o,$(LIB_SRC)) $(PROTO_C:.c=.o)
MAIN_OBJ    := $(B)/src/main.o
UNIT_SRC    := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

.PHONY: all check asan demo install clean deps unit fuzz bench man
all: $(B)/strata

deps:
	@sh scripts/install-deps.sh

$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/gen
	$(QGEN)protoc-c -Iproto --c_out=$(B)/gen $<

# The generated protobuf sources are intermediates of a pattern rule: keep
# them, so make never deletes them after a build (and rebuilds next time).
.SECONDARY: $(PROTO_C) $(PROTO_H) $(patsubst proto/%.proto,build/fuzz/gen/%.pb-c.h,$(PROTOS)) \
	$(patsubst proto/%.proto,build/fuzz/gen/%.pb-c.c,$(PROTOS))

$(B)/gen/%.pb-c.o: $(B)/gen/%.pb-c.c
	$(QCC)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libstrata.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/strata: $(MAIN_OBJ) $(B)/libstrata.a
	$(QLD)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libstrata.a
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(CFLAGS) -DSRCDIR=\"$(CURDIR)\" $(LDFLAGS) -o $@ $< $(B)/libstrata.a $(LDLIBS) -lcmocka

# One-request clients for test_http: on the OpenSSL libcurl, and linked
# against libcurl-gnutls (which must refuse to connect).
UNIT_BIN    += $(B)/tests/http_get $(B)/tests/grpc_get $(B)/tests/etcd_call
GNUTLS_CURL := $(firstword $(wildcard /usr/lib/*/libcurl-gnutls.so.4))
ifneq ($(GNUTLS_CURL),)
UNIT_BIN    += $(B)/tests/http_gnutls
endif
NOCURL_LIBS := $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null)
$(B)/tests/http_get $(B)/tests/grpc_get $(B)/tests/etcd_call: $(B)/tests/%: tests/unit/%.c $(B)/libstrata.a
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libstrata.a $(LDLIBS)
$(B)/tests/http_gnutls: tests/unit/http_get.c $(B)/libstrata.a
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libstrata.a \
		-l:libcurl-gnutls.so.4 $(NOCURL_LIBS) -lpthread

unit: $(UNIT_BIN)

asan:
	@$(MAKE) --no-print-directory SANITIZE=1 all

# The test entry point: the shipped -O2 build first (it warns where the
# -O1 ASan build does not, e.g. maybe-uninitialized, and warnings are
# errors: make demo builds it), then everything under ASan+UBSan, then a
# counted summary.
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=1 all unit
	@$(MAKE) --no-print-directory fuzz
	@sh tests/run.sh build/asan

FUZZ_CC := clang
fuzz: build/fuzz/fuzz_config
build/fuzz/fuzz_config: tests/fuzz/fuzz_config.c $(LIB_SRC) | $(patsubst proto/%.proto,build/fuzz/gen/%.pb-c.h,$(PROTOS))
	@mkdir -p $(dir $@)
	$(QLD)$(FUZZ_CC) -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-Isrc -Ibuild/fuzz/gen $(PKG_CFLAGS) -o $@ $< $(LIB_SRC) \
		$(patsubst proto/%.proto,build/fuzz/gen/%.pb-c.c,$(PROTOS)) $(PKG_LIBS) -lpthread
build/fuzz/gen/%.pb-c.h: proto/%.proto
	@mkdir -p build/fuzz/gen
	$(QGEN)protoc-c -Iproto --c_out=build/fuzz/gen $<

demo: deps all
	@sh scripts/demo.sh

build/bench/vps_stream: bench/vps_stream.c $(B)/libstrata.a
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libstrata.a $(LDLIBS)

# Each bench in its own private network namespace with only lo
# (bench/netns.sh); lib.sh, netns.sh and scale.sh are sourced, not benches.
BENCH_SH := $(filter-out bench/lib.sh bench/netns.sh bench/scale.sh,$(sort $(wildcard bench/*.sh)))
bench: all build/bench/vps_stream
	@for b in $(BENCH_SH); do sh bench/netns.sh sh "$$b"; done; true

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/strata \
		$(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 0755 $(B)/strata $(DESTDIR)$(PREFIX)/bin/strata
	cp -R examples $(DESTDIR)$(PREFIX)/share/strata/
	install -m 0644 strata.1 $(DESTDIR)$(PREFIX)/share/man/man1/strata.1
	install -m 0644 completions/strata.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/strata
	install -m 0644 completions/_strata $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_strata

# strata.1 is committed; tests/e2e/t004 fails when it is stale.
man: all
	$(B)/strata --man > strata.1

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
