# The two commands: `make demo` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
COLLECTION := collections/ansible_collections/k8sedge/lb
# Debian packages the lab and the gates need on this machine (Java 17: ansible-rulebook's rule engine;
# Chromium: the probe report page is rendered in a test; prometheus: promtool checks the watcher's metrics).
HOST_PACKAGES := haproxy nginx libnginx-mod-stream keepalived openssh-server openssh-client \
	systemd-container debootstrap dpkg-dev socat curl wrk iproute2 util-linux git openjdk-17-jre-headless \
	chromium-headless-shell prometheus

.PHONY: help setup host-packages venv lab-up lab-image lab-down lab-status demo test checks lab-marked lint unit lab-free lab-test sanity lock

help:
	@echo "make demo      set everything up and run the main job in the lab"
	@echo "make test      run everything CI checks (brings the lab up and down itself)"
	@echo "make lab-up / lab-down / lab-status"
	@echo "make lint      yamllint, ansible-lint (production profile), ansible-test sanity"
	@echo "make lock      re-pin requirements.txt from requirements.in"
	@echo "make bench     run every benchmark, results in bench/results/ (bench-quick: small, ~2 min)"

setup: host-packages venv

host-packages:
	@missing=$$(for p in $(HOST_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:" $$missing; \
	  apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

lab-up: setup
	lab/labctl up

lab-image: venv
	lab/labctl image

lab-down:
	@if [ -x $(PY) ]; then lab/labctl down; fi

lab-status: venv
	lab/labctl status

demo: setup
	lab/demo

# One lab for the lab tests and the bench smoke; tests/lab/test_zz_lab_down.py runs last and
# checks that taking it down leaves nothing behind. The trap takes it down if a step fails.
# The lab tests take the edges one test at a time and spend about a third of it waiting on them
# (VRRP, health checks, keepalived's grace): the linters, the unit tests and the tests under
# tests/lab that need no lab run beside them (`checks`), one after the other.
test: setup
	$(MAKE) --no-print-directory -j2 --output-sync=target bench-venv lab-image
	trap 'lab/labctl down' EXIT && lab/labctl up && \
	  $(MAKE) --no-print-directory -j2 checks lab-marked && \
	  $(PY) -m bench --quick --hold-lab --lab-discarded && $(PY) -m bench --check --quick && \
	  $(VENV)/bin/pytest tests/lab/test_zz_lab_down.py

# What runs beside the lab tests: its output, kept in a file, is shown once it ends.
CHECKS_LOG := .lab/checks.log
checks: venv
	@echo "checks: lint, unit and lab-free run beside the lab tests; their output follows when they end"
	@status=0; $(MAKE) --no-print-directory -j1 lint unit lab-free > $(CHECKS_LOG) 2>&1 || status=$$?; \
	  cat $(CHECKS_LOG); echo "checks: exit $$status"; exit $$status

# The tests marked lab, on a lab that is up (lab-test below brings one up itself).
lab-marked: venv
	$(VENV)/bin/pytest tests/lab -m lab --ignore=tests/lab/test_zz_lab_down.py --durations=25

lint: yamllint ansible-lint sanity

.PHONY: yamllint ansible-lint
yamllint: venv
	$(VENV)/bin/yamllint --strict .

ansible-lint: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/ansible-lint --strict

# In venvs, not Docker. ansible-test seeds its venvs with a get-pip.py it downloads from
# a host we cannot reach: give it an offline one in a HOME of its own, kept in .venv.
ANSIBLE_TEST_HOME := $(CURDIR)/$(VENV)/ansible-test-home
sanity: venv
	pip_version=$$($(PY) -c 'import types; from ansible_test._internal.python_requirements \
	  import get_venv_packages as p; print(p(types.SimpleNamespace(version="3.11"))["pip"])'); \
	install -D -m 0644 .ci/get_pip_offline.py \
	  $(ANSIBLE_TEST_HOME)/.ansible/test/cache/get_pip_$${pip_version//./_}.py
	cd $(COLLECTION) && HOME=$(ANSIBLE_TEST_HOME) PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
	  ansible-test sanity --venv --python 3.11 --color no

# As root, in a network namespace of its own: `nginx -t` binds the ports a generated config names,
# which must not meet the lab's listeners while the lab tests run beside. Its one link besides lo,
# a veth, is what keepalived -t names (sysfs mounted again: /sys/class/net shows this namespace).
UNIT_NETNS := $(if $(filter 0,$(shell id -u)),unshare --net --mount -- sh -c 'mount -t sysfs sysfs /sys && \
  ip link set lo up && ip link add unit0 type veth peer name unit1 && ip link set unit0 up && exec "$$0" "$$@"')
unit: venv
	$(UNIT_NETNS) $(VENV)/bin/pytest tests/unit

# Under tests/lab, what needs root but not the lab: the lab API server, the cluster's parts.
lab-free: venv
	$(VENV)/bin/pytest tests/lab -m "not lab" --ignore=tests/lab/test_zz_lab_down.py --durations=10

# Needs root: brings the lab up in a session fixture and takes it down at the end.
lab-test: venv
	$(VENV)/bin/pytest tests/lab

lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install -q -r requirements.in
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^pip==' > requirements.txt
	rm -rf .lock-venv

# Benchmarks (bench/): ours against what users would write instead. The baseline runs PyPI's
# ansible package (kubernetes.core) from a venv of its own.
BENCH_VENV := .venv-bench
.PHONY: bench bench-quick bench-smoke bench-venv

bench-venv: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: bench/requirements-baseline.txt
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements-baseline.txt
	touch $@

bench: setup bench-venv
	$(PY) -m bench --hold-lab

bench-quick: venv bench-venv
	$(PY) -m bench --quick --hold-lab

# Keeps the harness from rotting: a quick run must write well-formed results. Asserts no speed.
bench-smoke: bench-quick
	$(PY) -m bench --check --quick
