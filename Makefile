# gitdeploy.rollout — the two set-up commands of the README are `make demo` and
# `make test`; everything else here is what they are made of.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Primary toolchain: the newest ansible-core on Python 3.12.
PYTHON ?= $(shell .ci/find-python 3.12)
# Compatibility toolchain: ansible-core 2.19 on Python 3.11.
PYTHON_COMPAT ?= $(shell .ci/find-python 3.11)
VENV := .venv
VENV_COMPAT := .venv-compat
BIN := $(CURDIR)/$(VENV)/bin
BUILD := $(CURDIR)/.build
# ansible-test wants the collection at .../ansible_collections/NS/NAME, outside any
# git work tree that ignores it (it lists files with git): a copy under /tmp.
TREE := $(or $(TMPDIR),/tmp)/gitdeploy-rollout-$(shell echo '$(CURDIR)' | cksum | cut -d' ' -f1)
COLLECTION := $(TREE)/ansible_collections/gitdeploy/rollout
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)/collections
export ANSIBLE_CONFIG := $(CURDIR)/tests/ansible.cfg
export PATH := $(BIN):$(PATH)
PYTEST_WORKERS ?= 2

.PHONY: collection-tree molecule compat help venv venv-compat demo test unit integration lint sanity build changelog-lint compat clean

help:
	@echo "make demo   - set up, start local SSH test hosts and run a real rollout end to end"
	@echo "make test   - set up, then run every test and quality gate"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-test.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-test.txt -c constraints.txt
	touch $@

venv-compat: $(VENV_COMPAT)/.installed
$(VENV_COMPAT)/.installed: requirements-compat.txt
	$(PYTHON_COMPAT) -m venv $(VENV_COMPAT)
	$(VENV_COMPAT)/bin/pip install -q --disable-pip-version-check -r requirements-compat.txt
	touch $@

demo: venv
	$(BIN)/python demo/run.py

test: venv
	$(MAKE) --no-print-directory changelog-lint lint sanity build unit compat molecule integration

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --durations=25 tests/integration

molecule: venv
	$(BIN)/python -c 'import sys; sys.path.insert(0, "tests"); import hosts; hosts.collections_path()'
	$(BIN)/molecule test --all

# A copy of the tracked (and untracked, not ignored) files at the path ansible-test wants.
collection-tree:
	rm -rf $(COLLECTION) && mkdir -p $(COLLECTION)
	git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(COLLECTION)

lint: venv collection-tree
	cd $(COLLECTION) && ANSIBLE_COLLECTIONS_PATH=$(TREE) $(BIN)/ansible-lint --profile production --offline --strict --nocolor

sanity: venv collection-tree
	.ci/ansible-test-offline $(BIN)
	cd $(COLLECTION) && $(BIN)/ansible-test sanity --venv --python 3.12 --color no

build: venv
	rm -rf $(BUILD)/dist $(BUILD)/installed && mkdir -p $(BUILD)/dist
	$(BIN)/ansible-galaxy collection build --output-path $(BUILD)/dist .
	# Only the temp path: galaxy would call the collection installed already when the
	# test symlink of an earlier run is on ANSIBLE_COLLECTIONS_PATH (a second make test).
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed $(BIN)/ansible-galaxy collection install --offline -p $(BUILD)/installed $(BUILD)/dist/gitdeploy-rollout-*.tar.gz
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed $(BIN)/ansible-doc -l gitdeploy.rollout | tee $(BUILD)/doc-list.txt
	test -s $(BUILD)/doc-list.txt

changelog-lint: venv
	$(BIN)/antsibull-changelog lint

# ansible-core 2.19 on Python 3.11: sanity import/compile, the module_utils unit
# tests, and one real end-to-end deploy over SSH.
compat: venv-compat collection-tree
	$(VENV_COMPAT)/bin/ansible --version | sed -n 1p
	.ci/ansible-test-offline $(CURDIR)/$(VENV_COMPAT)/bin
	cd $(COLLECTION) && $(CURDIR)/$(VENV_COMPAT)/bin/ansible-test sanity --test import --test compile --venv --python 3.11 --color no
	$(VENV_COMPAT)/bin/pytest -q tests/unit/plugins tests/integration/test_harness.py \
	  tests/integration/test_rollout.py::test_deploy_then_deploy_a_change

clean:
	-$(BIN)/python tests/hosts.py down
	rm -rf $(VENV) $(VENV_COMPAT) $(BUILD) tests/output

