#!/bin/sh
# Installs what tests/widget/test_browser.py drives: Debian's headless Chromium and its
# ChromeDriver (packages `chromium` and `chromium-driver`). Idempotent: does nothing when
# both are there. Needs root (or password-less sudo) and apt-get; without them it says so
# and exits 0, and the browser test then skips, naming the reason (it fails instead when
# run as root or under CI, where the browser must be there).
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

if [ -n "${PARLEY_CHROMIUM:-}" ] && [ -n "${PARLEY_CHROMEDRIVER:-}" ]; then
    exit 0  # the test's own override: browser and driver named explicitly
fi
if { have chromium || have chromium-browser || have google-chrome; } && have chromedriver; then
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif have sudo && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure-browser: chromium/chromedriver missing and not root: the browser test will be skipped" >&2
    exit 0
fi

if ! have apt-get; then
    echo "ensure-browser: no apt-get here: install Chromium and ChromeDriver, or set" \
        "PARLEY_CHROMIUM and PARLEY_CHROMEDRIVER to their paths" >&2
    exit 1
fi

echo "ensure-browser: installing chromium and chromium-driver (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
have chromedriver || { echo "ensure-browser: chromedriver still missing" >&2; exit 1; }
