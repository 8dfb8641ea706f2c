"""A real browser: Debian's chromium driven by Playwright against a live server."""

import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


# Reports every Content-Security-Policy violation of every page in a context to Python
# (a binding is called over the devtools protocol, which the policy does not govern).
CSP_WATCH = """document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation({directive: event.effectiveDirective, blocked: event.blockedURI,
                         source: event.sourceFile, line: event.lineNumber, sample: event.sample});
});"""


def watch_csp(context) -> list[dict]:
    """The violations reported in ``context`` from now on (the list fills as they come)."""
    violations: list[dict] = []

    def report(source, violation):
        violations.append({**violation, "page": source["page"].url})

    context.expose_binding("__cspViolation", report)
    context.add_init_script(CSP_WATCH)
    return violations


# True once the page has loaded, htmx has processed it and no htmx request or swap is
# under way: a change event sent before then can fall on a form htmx does not yet watch
# (a plain link navigation loads a new page, whose deferred htmx starts later).
HTMX_SETTLED = """() => document.readyState === "complete" && window.htmx !== undefined
  && !document.querySelector(".htmx-request, .htmx-swapping, .htmx-settling")"""


def htmx_settled(page) -> None:
    page.wait_for_function(HTMX_SETTLED)


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    # Playwright's sync API runs an event loop in this thread; Django's ORM
    # calls made by the test itself are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import expect, sync_playwright

    # A busy CI machine can take longer than the 5 s default to render a fragment.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, tmp_path):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.csp_violations = watch_csp(context)
    yield page
    artifacts = os.environ.get("SLMLAB_TEST_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        page.screenshot(
            path=os.path.join(artifacts, f"{os.getpid()}-{id(page)}.png"), full_page=True
        )
    context.close()
    assert not page.csp_violations, f"Content-Security-Policy violations: {page.csp_violations}"
