#!/usr/bin/env bash
# Set up and run the tests on a fresh machine (README's test command; .ci/run calls this).
# torch is installed first and pinned so that no dependency pulls another (CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e '.[test]'
python3 -m pip install -q --no-deps torch-fidelity==0.4.0     # reference for the Inception features (no torchvision)
# references of the other feature spaces and of clean-fid's resize, test-only and without their dependencies
python3 -m pip install -q --no-deps clean-fid==0.1.35 dinov2==0.0.1.dev2 open_clip_torch==3.3.0
# the browser tests drive Debian's headless Chromium (tests/test_browser.py: skipped without it, failed under CI)
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver; } \
        >/dev/null 2>&1 || echo "scripts/test.sh: could not apt-get chromium chromium-driver" >&2
fi
python3 -m ruff check -q src tests benchmarks
lint-imports --no-cache >/dev/null || lint-imports --no-cache     # the layers of docs/architecture.md (pyproject.toml)
# two workers (pytest-xdist), one thread each (tests/conftest.py): 12:55 to 16:10 for the 951-956 tests (fresh clone, CI=true) on a
# 2-core AMD EPYC without AVX-512 (2026-12-04; 19:27 for 957 on a slow evening of it); 7:28 for 959 on a fast day of such an EPYC
# (2026-12-05, a 2048² matmul at 148-179 GFLOP/s against 59 on the slow evening), after `lab all` stopped running toy nets on 2
# threads beside the other worker (its setup 146 s -> 57 s). --dist loadgroup keeps each xdist_group module on one worker, so
# a module fixture (lab all, the browser) runs once; the slowest tests are listed, to keep the suite near 10 minutes
python3 -m pytest -q -n 2 --dist loadgroup --durations=40 "$@"
