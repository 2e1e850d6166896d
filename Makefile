# Two commands set up everything on a fresh machine:
#   make run    creates .venv, installs GAPP and opens it
#   make test   installs what the tests need (Debian packages included) and runs the suite
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := openssh-server openssh-client tmux iproute2 libcairo2
# libcairo2: cairosvg's C library, for the PNG screenshots (make screenshots)

.PHONY: run test install test-deps bench screenshots clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/gapp $(ARGS)

# Debian packages for the SSH tests (a real sshd on 127.0.0.1); skipped when present.
test-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: $(STAMP) test-deps
	$(BIN)/pytest -q $(PYTEST_ARGS)

# the quick benchmarks; BENCH_ARGS="--all" for every one, BENCH_ARGS="--only partition_solver" for some
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

screenshots: $(STAMP)
	$(BIN)/python screenshots/make_screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
