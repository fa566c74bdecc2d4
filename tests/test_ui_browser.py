"""The Dagster UI in a real browser: the lineage graph, a view's partitions, a check's history and the plots.

Playwright drives Debian's `chromium` (never a downloaded browser) against the session's `dagster dev` after the
end-to-end backfill, and saves the screenshots the README shows under docs/.
"""

import re
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, TimeoutError, expect, sync_playwright

from tests.fixtures.dagster_dev import BAD_DAY, DagsterDev

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[1] / "docs"
VIEWPORT = {"width": 1400, "height": 900}
LOAD_TIMEOUT_MS = 60_000
ERROR_BANNER = re.compile(r"PythonError|Unexpected GraphQL error|Error loading|could not be loaded", re.IGNORECASE)
LINEAGE = ("source/driver_snapshots", "driver_profile", "online/driver_profile", "training/trip_completion")
"""One path through the graph: raw source -> feature view -> online table and training set."""
LINEAGE_GRAPH = "/asset-groups~" + urllib.parse.quote('+key:"driver_profile"+', safe="") + "/"
"""The global lineage filtered to driver_profile and its neighbours (Dagster's asset selection syntax)."""
ASSET_DEPENDENCIES = """
{ assetNodes { assetKey { path } dependencyKeys { path } } }
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, dagster_dev: DagsterDev, demo_backfill: dict[str, Any]) -> Iterator[Page]:
    """A fresh page on the session's dagster dev, after the demo backfill, with the first-visit dialog dismissed."""
    context = browser.new_context(viewport=VIEWPORT, base_url=dagster_dev.url)
    page = context.new_page()
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    page.goto("/")
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=10_000)
        skip.click()
    except TimeoutError:
        pass
    yield page
    context.close()


def settle_and_capture(page: Page, screenshot: str) -> None:
    """Wait for the loading indicators to go and save a screenshot under docs/."""
    expect(page.get_by_text("Loading...")).to_have_count(0)
    page.wait_for_timeout(1500)
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / screenshot))


def test_asset_graph_shows_lineage_from_source_to_training_set(page: Page, dagster_dev: DagsterDev) -> None:
    nodes = dagster_dev.graphql(ASSET_DEPENDENCIES)["assetNodes"]
    upstream = {
        "/".join(node["assetKey"]["path"]): {"/".join(key["path"]) for key in node["dependencyKeys"]} for node in nodes
    }
    assert LINEAGE[0] in upstream[LINEAGE[1]], upstream.get(LINEAGE[1])
    assert LINEAGE[1] in upstream[LINEAGE[2]], upstream.get(LINEAGE[2])
    assert LINEAGE[1] in upstream[LINEAGE[3]], upstream.get(LINEAGE[3])

    page.goto(LINEAGE_GRAPH)
    page.get_by_text("training", exact=True).last.wait_for()
    page.get_by_text("Hide navigation").click()
    page.keyboard.press("Alt+e")
    page.get_by_text("trip_completion", exact=True).first.wait_for()
    page.goto("/overview")
    page.goto(LINEAGE_GRAPH)
    for name in ("sources", "features", "online", "training", "driver_snapshots", "driver_profile", "trip_completion"):
        expect(page.get_by_text(name, exact=True).last).to_be_visible()
    settle_and_capture(page, "asset-graph.png")
    expect(page.get_by_text(ERROR_BANNER)).to_have_count(0)


def test_partitions_check_history_and_plots_pages(page: Page) -> None:
    page.goto("/assets/driver_profile?view=partitions")
    page.get_by_text(re.compile(r"^Materialized \(\d+\)$")).first.wait_for()
    page.get_by_text(BAD_DAY.isoformat(), exact=True).first.click()
    expect(page.get_by_text("quarantine_path").or_(page.get_by_text("quarantined", exact=True)).first).to_be_visible()
    settle_and_capture(page, "partitions.png")
    expect(page.get_by_text(ERROR_BANNER)).to_have_count(0)

    page.goto("/assets/driver_profile?view=checks&checkDetail=schema")
    page.get_by_text("Execution history", exact=True).click()
    page.get_by_text(BAD_DAY.isoformat()).first.wait_for()
    settle_and_capture(page, "check-history.png")
    expect(page.get_by_text(ERROR_BANNER)).to_have_count(0)

    page.goto("/assets/driver_profile?view=overview")
    plots = page.get_by_role("button", name="Plots")
    plots.click()
    rating_max = page.get_by_text("rating/max", exact=True).first
    rating_max.scroll_into_view_if_needed()
    page.locator("canvas").first.wait_for()
    settle_and_capture(page, "plots.png")
    expect(page.get_by_text(ERROR_BANNER)).to_have_count(0)
