# Gatehouse — the two commands: `make run` and `make test`.
SHELL := /bin/bash
UV := $(shell bash scripts/ensure-uv.sh)
PY_SOURCES := libs services tests bench deploy scripts

.PHONY: help install run test lint typecheck pytest bench soak audit format clean system-deps

help:
	@echo "make run    - start the whole platform (embedded; real infrastructure when the env says so)"
	@echo "make test   - install everything, then ruff, mypy --strict and every test"
	@echo "make bench  - measure (gateway vs direct, events throughput) and print figures"
	@echo "make soak   - the platform under mixed traffic and faults for MINUTES (default 5), then a report"
	@echo "              (make soak MINUTES=1, make soak ARGS=\"--replicas 2\" for rolling restarts)"
	@echo "make audit  - pip-audit the locked dependencies"

install:
	$(UV) sync --locked --all-packages

system-deps:
	bash scripts/ensure-system-deps.sh

# Quiet: a development server's output starts with its own lines, not the installer's.
run:
	@$(UV) sync --locked --all-packages --quiet
	@$(UV) run --no-sync python -m deploy.run

lint: install
	$(UV) run --no-sync ruff check $(PY_SOURCES)
	$(UV) run --no-sync ruff format --check $(PY_SOURCES)

typecheck: install
	$(UV) run --no-sync mypy $(PY_SOURCES)

# PYTHONNODEBUGRANGES: no column positions in code objects, so a traceback is formatted without
# parsing its lines. On CPython before 3.11.8 (this machine's 3.11.7) a garbage collection inside
# one ast.parse whose finalizer formats a traceback (pytest's unraisable hook, a logged exception)
# runs a nested ast.parse, and the outer one fails with "SystemError: AST constructor recursion
# depth mismatch" (CPython gh-106905, fixed by gh-113035): an INTERNALERROR that ends the run.
pytest: install system-deps
	PYTHONNODEBUGRANGES=1 $(UV) run --no-sync pytest --cov --cov-report=term --cov-report=xml -p no:cacheprovider

test: lint typecheck pytest

bench: install system-deps
	$(UV) run --no-sync python -m bench.run

MINUTES ?= 5
ARGS ?=
# Real PostgreSQL and RabbitMQ (the machine's, throwaway databases and vhost), a throwaway
# redis-server of its own; report and logs in var/soak-<time>/ (bench/soak/__init__.py).
soak: install system-deps
	$(UV) run --no-sync python -m bench.soak --minutes $(MINUTES) $(ARGS)

audit: install
	$(UV) export --locked --no-dev --no-emit-workspace -o /tmp/gatehouse-requirements.txt >/dev/null
	@# pip-audit needs PyPI's per-version JSON API; where only the project API answers (closed
	@# networks, some mirrors) scripts/audit_locked.py reads the same PyPI vulnerability data.
	$(UV) run --no-sync pip-audit --strict --disable-pip -r /tmp/gatehouse-requirements.txt \
	  || $(UV) run --no-sync python scripts/audit_locked.py /tmp/gatehouse-requirements.txt

format: install
	$(UV) run --no-sync ruff check --fix $(PY_SOURCES)
	$(UV) run --no-sync ruff format $(PY_SOURCES)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* coverage.xml
