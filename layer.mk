# The Lambda layer: one statically linked extension (musl) in a zip, built from Debian 12's
# source packages (apt-get source, Debian's patches applied); no other download.
#   make -f layer.mk [ARCH=x86_64|arm64]          dist/pyroscope-lambda-extension-ARCH.zip
#   make -f layer.mk test [ARCH=...]              the proof tests (test/layer/)
#   make -f layer.mk publish REGION=... [ARCH=...] aws lambda publish-layer-version; prints the ARN
#   make -f layer.mk release                      both architectures, SHA256SUMS, release notes
#   make -f layer.mk clean                        removes every build/layer-* directory and dist/
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
# The one place the version is defined (CMakeLists.txt reads it too).
VERSION := $(shell cat VERSION)
ifeq ($(VERSION),)
$(error the VERSION file is missing or empty)
endif
# The zip's timestamps: SOURCE_DATE_EPOCH when set (reproducible-builds.org), else the time of
# the commit being built, else (a tree without .git: a release tarball) a fixed epoch,
# 1980-01-01T00:00:00Z, the earliest time a zip can hold. The versions file says which.
GIT_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null)
ifneq ($(SOURCE_DATE_EPOCH),)
EPOCH := $(SOURCE_DATE_EPOCH)
EPOCH_FROM := SOURCE_DATE_EPOCH
else ifneq ($(GIT_EPOCH),)
EPOCH := $(GIT_EPOCH)
EPOCH_FROM := the commit time
else
EPOCH := 315532800
EPOCH_FROM := a fixed epoch (no SOURCE_DATE_EPOCH, no git)
endif
ifneq ($(shell printf '%s' '$(EPOCH)' | grep -Ex '[0-9]+'),$(EPOCH))
$(error SOURCE_DATE_EPOCH must be a number of seconds, not '$(EPOCH)')
endif
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

.PHONY: all test publish release print-epoch clean FORCE
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
$(ZIP): $(B)/$(NAME) $(foreach l,$(BASE) $(LIBS),$(call built,$(l))) cmake/layer/deps.sh \
    VERSION layer.mk
	@mkdir -p $(@D)
	rm -rf $(B)/zip $@
	mkdir -p $(B)/zip/extensions
	cp $(B)/$(NAME) $(B)/zip/extensions/$(NAME)
	chmod 755 $(B)/zip/extensions/$(NAME)
	{ echo "$(NAME) $(VERSION)"; $(DEPS) versions $(ARCH); \
	  echo "# timestamps: $(EPOCH) ($(EPOCH_FROM))"; } > $(B)/zip/extensions/.$(NAME).versions
	cd $(B)/zip && touch -d @$(EPOCH) extensions extensions/$(NAME) \
	    extensions/.$(NAME).versions \
	  && TZ=UTC zip -q -X -9 $(CURDIR)/$@ extensions extensions/$(NAME) extensions/.$(NAME).versions
	@ls -l $@ $(B)/$(NAME)

test: $(ZIP)
	PLE_LAYER_ARCH=$(ARCH) PLE_LAYER_ZIP=$(ZIP) PLE_LAYER_BUILD=$(B) \
	  python3 test/layer/test_layer.py -v
	PLE_LAYER_ARCH=$(ARCH) PLE_LAYER_ZIP=$(ZIP) python3 test/layer/test_layer_release.py -v

# Documented, not run in CI: needs the aws CLI and credentials. Prints only the LayerVersionArn
# (the zip is built first, with its own output on stderr), so that a script can capture it.
AWS ?= aws
publish:
	@test -n "$(REGION)" || { echo "publish: set REGION, e.g. make -f layer.mk publish REGION=eu-west-1" >&2; exit 2; }
	@$(MAKE) -f layer.mk ARCH=$(ARCH) MUSL=$(MUSL) $(ZIP) >&2
	@$(AWS) lambda publish-layer-version --layer-name $(NAME) --zip-file fileb://$(ZIP) \
	  --compatible-architectures $(ARCH) --region $(REGION) \
	  --description "$(NAME) $(VERSION) ($(ARCH))" --license-info Apache-2.0 \
	  --query LayerVersionArn --output text

# dist/release-VERSION/: both architectures' zips named with the version, SHA256SUMS, and the
# release notes: CHANGELOG.md's section for VERSION, which must exist ("## VERSION").
REL := dist/release-$(VERSION)
release:
	@grep -qx '## $(VERSION)\( .*\)\?' CHANGELOG.md || { echo "release: CHANGELOG.md has no '## $(VERSION)' section; write it first" >&2; exit 2; }
	$(MAKE) -f layer.mk ARCH=x86_64 dist/$(NAME)-x86_64.zip
	$(MAKE) -f layer.mk ARCH=arm64 dist/$(NAME)-arm64.zip
	rm -rf $(REL) && mkdir -p $(REL)
	cp dist/$(NAME)-x86_64.zip $(REL)/$(NAME)-$(VERSION)-x86_64.zip
	cp dist/$(NAME)-arm64.zip $(REL)/$(NAME)-$(VERSION)-arm64.zip
	awk '/^## /{on = ($$0 ~ /^## $(subst .,\.,$(VERSION))( |$$)/)} on' CHANGELOG.md > $(REL)/RELEASE-NOTES.md
	cd $(REL) && sha256sum $(NAME)-$(VERSION)-x86_64.zip $(NAME)-$(VERSION)-arm64.zip > SHA256SUMS
	@ls -l $(REL) && cat $(REL)/SHA256SUMS

# Where the zip's timestamps come from, for the tests.
print-epoch:
	@echo "$(EPOCH) $(EPOCH_FROM)"

# Every directory this file creates: build/layer-ARCH[-musl-debian], build/layer-src, dist.
clean:
	rm -rf build/layer-* dist
