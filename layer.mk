# Builds the Lambda layer zip. The static, self-contained build (musl, dependencies from Debian's
# source packages) is a separate piece of work that is still open; until it lands this file
# refuses to produce a layer that might not start on Amazon Linux, instead of shipping one.
.PHONY: all
all:
	@echo "layer.mk: the static layer build is not implemented yet (see the layer issue)." >&2
	@echo "For local use, build the dev binary with: cmake -S . -B build && cmake --build build" >&2
	@exit 2
