"""Helpers of the end-to-end browser test: Debian's headless Chromium driven by Selenium, a
real daphne process on the test database, and a plain web server for a "customer site" on
another origin.

Chromium comes from the system (scripts/ensure-browser.sh installs Debian's `chromium` and
`chromium-driver`); Selenium is told both paths, so it never downloads a browser or driver.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import BASE_DIR, suite_env

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> tuple[str, str]:
    """(browser, chromedriver) paths, or a skip/fail saying why there are none.

    Missing binaries fail the test where they could have been installed (root, or CI):
    there the browser test must run, and `scripts/ensure-browser.sh` installs them. They
    skip it, with the reason, only where nobody could install them (not root)."""
    browser = os.environ.get("PARLEY_CHROMIUM") or next(
        (path for name in BROWSERS if (path := shutil.which(name))), None
    )
    driver = os.environ.get("PARLEY_CHROMEDRIVER") or shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    missing = "chromium" if not browser else "chromedriver"
    message = f"{missing} is not installed: run scripts/ensure-browser.sh (apt-get, as root)"
    if os.geteuid() == 0 or os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(f"{message}; not root here, so it cannot be installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daphne:
    """daphne serving the full ASGI app on the test database (PARLEY_TEST_WORKER=1), with
    static files collected (as symlinks) into a directory of its own, as in production.
    It can be restarted on the same port, as a deploy would, to test reconnects."""

    def __init__(self, port: int, extra_env: dict[str, str] | None = None) -> None:
        self.port = port
        self.workdir = Path(tempfile.mkdtemp(prefix="parley-browser-"))
        # Kept after the run (var/ is ignored by git): the first place to look when it fails.
        self.log = BASE_DIR / "var" / "log" / f"test-browser-daphne-{port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.env = suite_env(
            {"PARLEY_STATIC_ROOT": str(self.workdir / "static"), **(extra_env or {})}
        )
        self.process: subprocess.Popen | None = None
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "--link", "-v", "0"],
            cwd=BASE_DIR,
            env=self.env,
            check=True,
        )

    def start(self, host: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "chatbot.asgi:application",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(host)

    def wait_ready(self, host: str, timeout: float = 60) -> None:
        url = f"http://127.0.0.1:{self.port}/widget.js"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{self.log.read_text()[-3000:]}")
            try:
                # a loopback http:// URL of our own
                request = urllib.request.Request(url, headers={"Host": host})  # noqa: S310
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TimeoutError(
            f"daphne did not answer within {timeout}s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def crash(self) -> None:
        """SIGKILL: every socket drops at once, nothing is closed cleanly."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def close(self, keep_log: bool = False) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if not keep_log:
            self.log.unlink(missing_ok=True)


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class HostSite:
    """A customer's web site on its own origin (http://127.0.0.1:<port>): one page whose
    HTML the test sets, served by the standard library in a thread."""

    def __init__(self) -> None:
        self.html = "<!doctype html><title>empty</title>"
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_driver(browser: str, chromedriver: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,800",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        "--hide-scrollbars",
        # *.localhost is loopback anyway; this pins it to the IPv4 address daphne binds
        "--host-resolver-rules=MAP *.localhost 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    set_viewport(driver, DESKTOP)
    return driver


DESKTOP = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


def set_viewport(driver, metrics: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """An exact viewport (a headless window's size includes its invisible browser UI)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def wait_until(condition: Callable[[], object], timeout: float = 20, message: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(0.05)
