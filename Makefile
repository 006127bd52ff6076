# Everything a fresh machine needs: `make demo` and `make test` both run `make install` first.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
VENV_OK := .venv/.stamp-install
NPM_OK  := node_modules/.stamp-install
PROTO_OK := proto/gen/.stamp-proto

.PHONY: install demo test lint clean proto

install: $(VENV_OK) $(NPM_OK) $(PROTO_OK)

$(VENV_OK): requirements.lock pyproject.toml
	@test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PIP) install -q --upgrade pip==25.3
	$(PIP) install -q -r requirements.lock
	$(PY) proto/build.py  # the stubs must exist before the editable install maps omniplus.proto.gen
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $@

$(NPM_OK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(PROTO_OK): $(wildcard proto/*.proto) $(VENV_OK)
	$(PY) proto/build.py
	@touch $@

proto: $(PROTO_OK)

demo: install
	.venv/bin/omniplus demo --compare-plain

test: install
	.venv/bin/ruff check .
	.venv/bin/pytest -q

lint: install
	.venv/bin/ruff check .

clean:
	rm -rf .venv node_modules proto/gen build *.egg-info
