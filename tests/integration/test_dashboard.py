"""The dashboard in a real headless browser (Debian's chromium), against real node processes.

The browser loads a node's page, runs its script (which reads the node's
JSON routes and follows its event stream) and dumps the DOM it built; the
test parses that DOM. A screenshot of the page is written under the test's
temporary directory. Without a chromium binary the tests skip, saying so.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from paglets.client.host_client import HostClient
from paglets.core.messages import Message
from paglets.node.http.observe_routes import PAGE_POLICY

pytestmark = pytest.mark.timeout(180)

ECHO = "paglets.examples.echo:EchoPaglet"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for path in map(shutil.which, BROWSERS) if path), None)
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no chromium binary found (Debian: apt-get install chromium; .ci/run installs it)"
)
TEXT_TAGS = ("table", "ol", "li", "span", "section", "b", "time")  # elements whose text a test may read
BUDGET_MS = 8000  # virtual time the page gets to load, fetch and render


def browse(url: str, tmp_path: Path, *extra: str) -> str:
    """Run headless chromium on ``url`` with ``extra`` flags; its stdout."""
    profile = tmp_path / "chromium-profile"
    command = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--virtual-time-budget={BUDGET_MS}", *extra, url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Page(HTMLParser):
    """What a test reads off a dumped DOM: table rows (with their <tr> attributes), elements by id."""

    def __init__(self, html: str):
        super().__init__()
        self.rows: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
        self.hidden: dict[str, bool] = {}
        self.texts: dict[str, str] = {}
        self._table: str | None = None
        self._row: tuple[dict[str, str], list[str]] | None = None
        self._cell: list[str] | None = None
        self._open: list[str | None] = []  # ids of the open elements that collect text (None: no id)
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "id" in values:
            self.hidden[values["id"]] = "hidden" in values
            self.texts.setdefault(values["id"], "")
        if tag in TEXT_TAGS:
            self._open.append(values.get("id"))
        if tag == "table":
            self._table = values.get("id")
            self.rows.setdefault(self._table or "", [])
        elif tag == "tr" and self._table:
            self._row = (values, [])
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            if self._row[1]:
                self.rows[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        if tag in TEXT_TAGS and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for element in self._open:
            if element is not None:
                self.texts[element] += data + " "


def headers_of(web: str, path: str) -> http.client.HTTPMessage:
    url = urlsplit(web)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.headers
    finally:
        conn.close()


@needs_browser
def test_the_dashboard_shows_a_paglet_on_the_node_it_moved_to(node_process, tmp_path):
    alpha = node_process("alpha")
    beta = node_process("beta", "--peer", alpha.address)
    client = HostClient(timeout=30)
    agent = client.create(alpha.address, ECHO).agent_id
    stays = client.create(alpha.address, ECHO).agent_id
    client.dispatch(alpha.address, agent, beta.address)
    for index in range(5):
        client.send(beta.address, agent, Message("echo", arg=index))

    page = Page(browse(beta.http_address + "/", tmp_path, "--dump-dom"))
    agents = {attrs.get("data-agent-id"): cells for attrs, cells in page.rows["agents"]}
    assert list(agents) == [agent], agents  # on beta: the paglet that moved there, not the one that stayed
    assert agents[agent][:3] == [agent, "EchoPaglet", "active"]
    assert agents[agent][5] == "5" and agents[agent][-1] == alpha.address  # delivered; where it came from
    nodes = {attrs.get("data-node"): cells for attrs, cells in page.rows["nodes"]}
    assert nodes["beta"][:2] == ["beta (this node)", "online"] and nodes["alpha"][1] == "online"
    assert "arrival" in page.texts["events"] and agent[:12] in page.texts["events"]
    assert page.texts["selected-node"].strip() == "beta" and page.hidden["key-panel"]

    # Another node's paglets, fetched through this node (the page never talks to another origin).
    remote = Page(browse(beta.http_address + "/#node=alpha", tmp_path, "--dump-dom"))
    assert [attrs.get("data-agent-id") for attrs, _ in remote.rows["agents"]] == [stays]
    assert remote.texts["selected-node"].strip() == "alpha"

    shot = tmp_path / "dashboard.png"
    browse(beta.http_address + "/", tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@needs_browser
def test_a_node_with_an_api_key_serves_its_page_but_no_data_without_the_key(node_process, tmp_path):
    locked = node_process("locked", "--api-key-env", "OBSERVE_TEST_KEY", env={"OBSERVE_TEST_KEY": "s3cret"})
    HostClient(api_key="s3cret").create(locked.address, ECHO)
    page_headers = headers_of(locked.http_address, "/")
    assert page_headers["Content-Security-Policy"] == PAGE_POLICY
    assert page_headers["Content-Type"].startswith("text/html") and page_headers["X-Frame-Options"] == "DENY"
    assert headers_of(locked.http_address, "/dashboard/app.js")["Content-Type"].startswith("text/javascript")

    page = Page(browse(locked.http_address + "/", tmp_path, "--dump-dom"))
    assert not page.hidden["key-panel"] and page.hidden["main"]  # it asks for the key...
    assert page.rows["agents"] == [] and page.rows["nodes"] == []  # ...and shows nothing without it
