# The Lambda layer: one statically linked extension (musl) in a zip, built from Debian 12's
# source packages (apt-get source, Debian's patches applied); no other download.
#   make -f layer.mk [ARCH=x86_64|arm64]          dist/pyroscope-lambda-extension-ARCH.zip
#   make -f layer.mk test [ARCH=...]              the proof tests (test/layer/)
#   make -f layer.mk publish REGION=... [ARCH=...] aws lambda publish-layer-version
#   make -f layer.mk clean                        removes build/layer-* and dist/
# Each dependency is built once into build/layer-ARCH/prefix (a stamp per step); after that a
# rebuild only recompiles our changed files and relinks.
ARCH ?= x86_64
ifeq ($(filter $(ARCH),x86_64 arm64),)
$(error ARCH must be x86_64 or arm64, not '$(ARCH)')
endif
# musl is built from Debian's musl source package with our flags, so that libc keeps frame
# pointers too and the self-profiler's stacks reach main. On x86_64, MUSL=debian links Debian's
# prebuilt musl-tools instead (no frame pointers in libc), in its own build directory.
MUSL ?= source
ifeq ($(ARCH),arm64)
override MUSL := source
endif
ifeq ($(filter $(MUSL),debian source),)
$(error MUSL must be debian or source, not '$(MUSL)')
endif
JOBS ?= $(shell nproc)
MAKEFLAGS += -j$(JOBS) --no-print-directory

NAME := pyroscope-lambda-extension
B := build/layer-$(ARCH)$(if $(filter debian,$(MUSL)),-musl-debian)
SRC := build/layer-src
PREFIX := $(CURDIR)/$(B)/prefix
ZIP := dist/$(NAME)-$(ARCH).zip
DEPS := PLE_LAYER_DIR=$(CURDIR)/$(B) PLE_MUSL=$(MUSL) bash cmake/layer/deps.sh
STRIP := $(if $(filter arm64,$(ARCH)),aarch64-linux-gnu-strip,strip)

LIBS := wolfssl nghttp2 cares uv jansson curl
BASE := $(if $(filter source,$(MUSL)),musl,)
built = $(B)/deps/$(1).version
fetched = $(SRC)/$(1).version

.PHONY: all test publish clean FORCE
all: $(ZIP)

$(B)/setup.stamp: cmake/layer/deps.sh
	@mkdir -p $(@D)
	$(DEPS) setup $(ARCH)
	@touch $@

# apt-get source, one package at a time per name; shared by both architectures.
$(SRC)/%.version: | $(B)/setup.stamp
	$(DEPS) fetch $*
$(foreach n,musl $(LIBS),$(eval $(SRC)/$(n).version: $(wildcard cmake/layer/patches/$(n)-*.patch)))

$(call built,musl): $(call fetched,musl) $(B)/setup.stamp
	+$(DEPS) build $(ARCH) musl
$(foreach l,wolfssl nghttp2 cares uv jansson,$(call built,$(l))): $(B)/deps/%.version: $(SRC)/%.version \
    $(B)/setup.stamp $(foreach b,$(BASE),$(call built,$(b)))
	+$(DEPS) build $(ARCH) $*
$(call built,curl): $(call fetched,curl) $(call built,wolfssl) $(call built,nghttp2) $(call built,cares)
	+$(DEPS) build $(ARCH) curl

# Our code, through the project's CMakeLists.txt and the layer's toolchain file.
$(B)/ext/CMakeCache.txt: $(foreach l,$(LIBS),$(call built,$(l))) cmake/layer/toolchain.cmake
	cmake -S . -B $(B)/ext -G "Unix Makefiles" -DCMAKE_TOOLCHAIN_FILE=cmake/layer/toolchain.cmake \
	  -DPLE_LAYER_ARCH=$(ARCH) -DPLE_STATIC_PREFIX=$(PREFIX) -DPLE_TESTS=OFF \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo >$(B)/ext.log || { cat $(B)/ext.log; exit 1; }

$(B)/ext/$(NAME): $(B)/ext/CMakeCache.txt FORCE
	+cmake --build $(B)/ext --target $(NAME)

# The layer keeps .symtab (the self-profiler symbolises from it) and drops debug info only.
$(B)/$(NAME): $(B)/ext/$(NAME)
	$(STRIP) --strip-debug -o $@ $<

# The zip: staged apart, so that the fixed timestamps in it do not confuse make.
$(ZIP): $(B)/$(NAME) $(foreach l,$(BASE) $(LIBS),$(call built,$(l))) cmake/layer/deps.sh
	@mkdir -p $(@D)
	rm -rf $(B)/zip $@
	mkdir -p $(B)/zip/extensions
	cp $(B)/$(NAME) $(B)/zip/extensions/$(NAME)
	chmod 755 $(B)/zip/extensions/$(NAME)
	$(DEPS) versions $(ARCH) > $(B)/zip/extensions/.$(NAME).versions
	cd $(B)/zip && touch -d @$$(git log -1 --format=%ct) extensions extensions/$(NAME) \
	    extensions/.$(NAME).versions \
	  && zip -q -X -9 $(CURDIR)/$@ extensions extensions/$(NAME) extensions/.$(NAME).versions
	@ls -l $@ $(B)/$(NAME)

test: $(ZIP)
	PLE_LAYER_ARCH=$(ARCH) PLE_LAYER_ZIP=$(ZIP) PLE_LAYER_BUILD=$(B) \
	  python3 test/layer/test_layer.py -v

# Documented, not run in CI: needs the aws CLI and credentials.
publish: $(ZIP)
	@test -n "$(REGION)" || { echo "publish: set REGION, e.g. make -f layer.mk publish REGION=eu-west-1" >&2; exit 2; }
	aws lambda publish-layer-version --layer-name $(NAME) --zip-file fileb://$(ZIP) \
	  --compatible-architectures $(ARCH) --region $(REGION) \
	  --description "$(NAME) $$(git describe --always --dirty)"

clean:
	rm -rf build/layer-x86_64 build/layer-x86_64-musl-source build/layer-arm64 $(SRC) dist
