"""The HTML dictionary in a real headless Chromium (Debian's, driven by Playwright), with screenshots
saved in ``tests/artifacts/``: browse the mesh without logging in, search "customer email", open the
dataset, read its columns and classification, follow the lineage graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768})  # a laptop screen
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def test_home_lists_domains_and_quanta(demo_server, page):
    page.goto(demo_server.url + "/")
    assert page.title().startswith("Home")
    assert page.get_by_role("heading", level=1).inner_text() == "greatparts"
    domains = page.locator("section.domain h2")
    assert domains.count() == len(demo_server.platform.mesh.domains)
    cards = page.locator(".quantum-card h3 a")
    assert sorted(cards.all_inner_texts()) == sorted(demo_server.platform.mesh.quanta)
    # the layout fits a laptop: no horizontal scrolling
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "home")
    page.get_by_role("link", name="sales", exact=True).click()
    page.wait_for_url("**/quanta/sales")
    assert page.get_by_role("heading", level=1).inner_text().startswith("sales")
    assert page.locator("table.grid tbody tr").count() == 3
    shot(page, "quantum-sales")


def test_search_customer_email_then_read_the_dataset(demo_server, page):
    page.goto(demo_server.url + "/")
    box = page.get_by_label("Search the dictionary")  # the input has a label
    box.fill("customer email")
    box.press("Enter")
    page.wait_for_url("**/search?q=customer+email")
    results = page.locator("#results li.result > a")
    names = results.all_inner_texts()
    assert set(names[:2]) == {"customers.customers", "customer360.customer_360"}
    shot(page, "search-customer-email")
    page.get_by_role("link", name="customers.customers", exact=True).click()
    page.wait_for_url("**/quanta/customers/customers")
    email = page.locator('tr[data-column="email"]')
    assert email.locator(".badge").inner_text() == "pii"
    assert "badge-pii" in email.locator(".badge").get_attribute("class")
    # the badge stands out: its colour is not the text colour
    colours = page.evaluate("""() => { const b = document.querySelector('tr[data-column="email"] .badge');
        return [getComputedStyle(b).backgroundColor, getComputedStyle(document.body).backgroundColor]; }""")
    assert colours[0] != colours[1]
    assert page.get_by_role("link", name=page.locator("a[type='application/yaml']").inner_text()).count() == 1
    shot(page, "dataset-customers")


def test_lineage_svg_links_up_and_downstream(demo_server, page):
    page.goto(demo_server.url + "/quanta/customer360/customer_360")
    svg = page.locator("svg.lineage")
    assert svg.count() == 1
    label = svg.get_attribute("aria-label")
    assert "4 upstream and 1 downstream" in label
    nodes = svg.locator(".lineage-node")
    assert sorted(nodes.evaluate_all("ns => ns.map(n => n.dataset.dataset)")) == sorted([
        "customer360.customer_360", "customers.customers", "loyalty.members", "returns.returns", "sales.orders",
        "marketing.campaign_audience"])
    assert svg.locator("line.edge").count() == 5
    # upstream boxes are left of this dataset, downstream ones right of it
    x = {n: svg.locator(f'[data-dataset="{n}"] rect').bounding_box()["x"]
         for n in ("sales.orders", "customer360.customer_360", "marketing.campaign_audience")}
    assert x["sales.orders"] < x["customer360.customer_360"] < x["marketing.campaign_audience"]
    shot(page, "dataset-customer360-lineage")
    svg.locator('a[data-dataset="sales.orders"]').click()
    page.wait_for_url("**/quanta/sales/orders")
    assert page.get_by_role("heading", level=1).inner_text().startswith("sales.orders")
    assert page.locator("svg.lineage line.edge").count() >= 2  # orders -> customer360 -> marketing


def test_unknown_page_is_an_html_404(demo_server, page):
    response = page.goto(demo_server.url + "/quanta/nothing")
    assert response.status == 404
    assert "there is no quantum" in page.get_by_role("alert").inner_text()
    assert "Traceback" not in page.content()


def test_quality_and_slo_status_on_the_dataset_page(demo_server, page):
    control = pytest.importorskip("federation.onboarding.control")
    platform = demo_server.platform
    run = control.check(platform, "sales.orders", platform.principal("liam"))
    page.goto(demo_server.url + "/quanta/sales/orders")  # anonymous: quality is for the dataset's readers
    assert page.locator("#quality-status").inner_text() == "not shown"
    assert "may read sales.orders" in page.locator("#quality-not-shown").inner_text()
    page.set_extra_http_headers({"Authorization": f"Bearer {demo_server.tokens['ana']}"})  # ana may read it
    page.goto(demo_server.url + "/quanta/sales/orders")
    status = page.locator("#quality-status")
    assert status.inner_text() == run.status and run.status in ("pass", "warn", "fail", "error")
    assert "status-" + run.status in status.get_attribute("class")
    rows = page.locator("#quality-results tbody tr")
    assert rows.count() == len(run.results)
    assert set(rows.locator("td .status").all_inner_texts()) == {r.status for r in run.results}
    page.locator("#quality-h").scroll_into_view_if_needed()
    shot(page, "dataset-sales-orders-quality")


def test_request_access_from_the_dataset_page(demo_server, page):
    """Someone without access finds the dataset, fills the form with their token, and the approvers
    (named on the page) see the request pending."""
    page.goto(demo_server.url + "/quanta/b2b/accounts")
    assert "lucas" in page.locator("section[aria-labelledby='access-h']").inner_text()
    page.get_by_label("Your token").fill("qt_not_a_token")
    page.get_by_role("button", name="Request access").click()
    assert page.get_by_role("status").inner_text().startswith("Not sent")
    page.get_by_label("Your token").fill(demo_server.tokens["marco"])
    page.get_by_label("Purpose").fill("campaign for garages")
    page.get_by_label("For how many days").fill("30")
    page.get_by_role("button", name="Request access").click()
    status = page.get_by_role("status").inner_text()
    assert "marco asks to read b2b.accounts for 30 days" in status and "pending" in status
    shot(page, "request-access")
    platform = demo_server.platform
    pending = [r for r in platform.access_requests.all() if r.principal == "marco"]
    assert pending and pending[-1].purpose == "campaign for garages" and pending[-1].status == "pending"
