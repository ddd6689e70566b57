"""Sesame's pages in headless Chromium, driven by Selenium through Debian's chromedriver.

The browser signs in, approves or denies an application and lands on the client's redirect
URI, which is a loopback server that the RedirectReceiver fixture runs. It also manages
personal access tokens, and approves a device while a thread polls the token endpoint as the
device would.

The tests need /usr/bin/chromium and /usr/bin/chromedriver (Debian's chromium and
chromium-driver packages); .ci/run installs them in CI. Selenium must download nothing:
given a driver path, Selenium 4.51 does not start Selenium Manager, and SE_OFFLINE=true is set
as a second guard in case anything starts it.
"""

import base64
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from authlib.common.security import generate_token
from conftest import DevicePoller, query_of, request_device_code
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as conditions
from selenium.webdriver.support.ui import WebDriverWait

os.environ["SE_OFFLINE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Headless, no sandbox (CI runs as root), and nothing that reaches beyond loopback: no
# background requests, component updates, sync or proxy, and every host name but
# 127.0.0.1 fails to resolve.
CHROMIUM_ARGUMENTS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
]

# Maximum wait for a page to change, in seconds. It is generous because a debug build of
# Sesame and Chromium share two cores with other work.
WAIT_SECONDS = 20

# A phone-sized screen in CSS pixels (an iPhone 12 to 15 in portrait).
PHONE_WIDTH = 390
PHONE_HEIGHT = 844

PASSWORD = "browser test password"
LOGIN_FAILED_MESSAGE = "The user name or password is incorrect."

# How long a test waits for the polling device to see the user's decision: two poll
# intervals of 5 s, and time for a slow debug build.
DECISION_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="session")
def chromium_installed() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser tests need Debian's Chromium "
            "and its WebDriver. Install them with `apt-get install chromium chromium-driver` "
            "(as root)."
        )


@pytest.fixture
def driver(chromium_installed, tmp_path, request):
    """Start headless Chromium with a fresh profile and return its WebDriver.

    After a failed test the fixture saves the page the browser showed, as a screenshot and
    as HTML, beside chromedriver's log in the test's temporary directory.
    """
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    browser = webdriver.Chrome(service=service, options=options)
    yield browser

    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        save_failed_page(browser, tmp_path)
    browser.quit()


def save_failed_page(driver, directory: Path) -> None:
    """Save the page a failed test left in the browser and print where it went."""
    print(f"chromedriver log: {directory / 'chromedriver.log'}")
    try:
        print(f"page URL at failure: {driver.current_url}")
        driver.save_screenshot(str(directory / "failure.png"))
        (directory / "failure.html").write_text(driver.page_source)
        print(f"page saved as {directory / 'failure.png'} and {directory / 'failure.html'}")
    except WebDriverException as error:
        print(f"saving the page failed: {error.msg}")


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def user(sesame):
    return sesame.add_user(PASSWORD, email="browser@example.test")


class PageWait:
    """Wait for a condition, asking again while Chromium is between two pages.

    During a page swap Chromium can return "Node with given id does not belong to the
    document" for an element found a moment before. Like a stale element, that error means
    the next page is not ready yet, so the condition is checked again.
    """

    def __init__(self, driver):
        self.inner = WebDriverWait(driver, WAIT_SECONDS)

    def until(self, condition):
        def patient(driver):
            try:
                return condition(driver)
            except WebDriverException as error:
                if is_detached(error):
                    return False
                raise

        return self.inner.until(patient)


def wait(driver) -> PageWait:
    return PageWait(driver)


def path_is(path: str):
    """Return a wait condition: the browser shows a page at `path` on any host."""
    return lambda driver: urlsplit(driver.current_url).path == path


def sign_in(driver, username: str, password: str) -> None:
    """Fill in the sign-in form the browser shows and submit it."""
    wait(driver).until(path_is("/login"))
    username_field = wait(driver).until(
        conditions.visibility_of_element_located((By.ID, "username"))
    )
    username_field.clear()
    username_field.send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    submit = driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type='submit']")
    submit_page(driver, submit)


def is_detached(error: WebDriverException) -> bool:
    """Tell whether `error` is Chromium saying the element left the document."""
    return "does not belong to the document" in (error.msg or "")


def left_page(element):
    """Return a wait condition: `element` no longer belongs to the page the browser shows.

    While a form submission swaps the page, Chromium can return "Node with given id does not
    belong to the document" instead of a stale-element error. Both mean the old page is gone.
    """

    def check(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if is_detached(error):
                return True
            raise
        return False

    return check


def submit_page(driver, button) -> None:
    """Click a button that submits its form and wait until the next page replaced it."""
    button.click()
    wait(driver).until(left_page(button))


def click_button(driver, element_id: str) -> None:
    """Click the button with `element_id` once it is clickable.

    Chromium can return "Node with given id does not belong to the document" when the page
    is replaced between finding a button and clicking it, so a click that fails that way is
    tried again on the button of the current page, up to three times.
    """
    for attempt in range(3):
        button = wait(driver).until(conditions.element_to_be_clickable((By.ID, element_id)))
        try:
            button.click()
            return
        except WebDriverException as error:
            if attempt == 2 or not is_detached(error):
                raise


def page_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def save_full_page(driver, path: Path) -> None:
    """Save a PNG of the whole page, including what lies below the window."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def check_on_phone(driver, path: Path, element_ids: list[str]) -> None:
    """Show the page on a phone-sized screen, save a screenshot, and check that nothing is
    wider than the screen and that the elements `element_ids` lie within its width."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE_WIDTH, "height": PHONE_HEIGHT, "deviceScaleFactor": 2, "mobile": True},
    )
    try:
        save_full_page(driver, path)
        page_width = driver.execute_script("return document.documentElement.scrollWidth")
        viewport_width = driver.execute_script("return window.innerWidth")
        assert viewport_width == PHONE_WIDTH
        assert page_width <= viewport_width, f"the page is {page_width} px wide on a phone"
        for element_id in element_ids:
            rect = driver.find_element(By.ID, element_id).rect
            assert rect["x"] >= 0, f"#{element_id} starts left of the screen"
            assert rect["x"] + rect["width"] <= PHONE_WIDTH, f"#{element_id} is cut off"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def start_code_flow(sesame, oauth_session, client, redirect_uri, scope):
    """Return an authlib session, an authorization URL with S256 PKCE, its state and its
    code verifier."""
    session = oauth_session(
        client, scope=scope, redirect_uri=redirect_uri, code_challenge_method="S256"
    )
    code_verifier = generate_token(48)
    url, state = session.create_authorization_url(
        sesame.authorization_endpoint, code_verifier=code_verifier
    )
    return session, url, state, code_verifier


def land_on_redirect_uri(driver, redirect_uri: str) -> str:
    """Wait until the browser shows the client's callback page and return its URL."""
    wait(driver).until(conditions.url_matches(f"^{re.escape(redirect_uri)}\\?"))
    wait(driver).until(
        conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Callback received")
    )
    return driver.current_url


def test_approve_lands_on_redirect_uri(
    sesame,
    verifier,
    userinfo,
    oauth_session,
    redirect_receiver,
    driver,
    user,
    screenshot_dir,
):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read", "profile"])
    session, url, state, code_verifier = start_code_flow(
        sesame, oauth_session, client, redirect_receiver.url, "read profile"
    )

    driver.get(url)
    sign_in(driver, user["name"], PASSWORD)
    approve = wait(driver).until(conditions.element_to_be_clickable((By.ID, "approve")))
    assert driver.find_element(By.TAG_NAME, "h1").text == "Authorize application"
    text = page_text(driver)
    assert client["name"] in text
    assert user["name"] in text
    assert "read" in text
    assert "profile" in text
    save_full_page(driver, screenshot_dir / "consent-desktop.png")
    check_on_phone(driver, screenshot_dir / "consent-phone.png", ["approve", "deny"])
    click_button(driver, "approve")
    landed = land_on_redirect_uri(driver, redirect_receiver.url)

    received = redirect_receiver.wait_for_state(state)
    assert received == query_of(landed)
    assert received["code"]
    assert received["iss"] == sesame.issuer
    token = session.fetch_token(
        sesame.token_endpoint,
        authorization_response=landed,
        state=state,
        code_verifier=code_verifier,
    )
    claims = verifier.verify(token["access_token"], client["id"], token["expires_in"])
    assert claims["sub"] == str(user["id"])
    assert claims["scopes"] == ["read", "profile"]
    assert userinfo(token["access_token"]).json()["preferred_username"] == user["name"]


def test_deny_lands_with_access_denied(
    sesame, oauth_session, redirect_receiver, driver, user
):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    _, url, state, _ = start_code_flow(
        sesame, oauth_session, client, redirect_receiver.url, "read"
    )

    driver.get(url)
    sign_in(driver, user["name"], PASSWORD)
    click_button(driver, "deny")
    landed = land_on_redirect_uri(driver, redirect_receiver.url)

    received = redirect_receiver.wait_for_state(state)
    assert received == query_of(landed)
    assert received["error"] == "access_denied"
    assert received["iss"] == sesame.issuer
    assert "code" not in received


def test_wrong_password_stays_on_login(sesame, driver, user):
    # Each failure counts towards Sesame's per-address back-off (5 failures in 15 minutes),
    # which all tests share because they connect from one loopback address, so the suite
    # makes only these two.
    # The page asked for before signing in must survive the failures.
    driver.get(f"{sesame.issuer}/oauth/device?user_code=BCDF-GHJK")

    for username, password in [(user["name"], "wrong password"), ("nobody_here", PASSWORD)]:
        sign_in(driver, username, password)
        message = wait(driver).until(
            conditions.visibility_of_element_located((By.CSS_SELECTOR, "p.error"))
        )
        assert message.text == LOGIN_FAILED_MESSAGE
        assert urlsplit(driver.current_url).path == "/login"
        assert driver.find_element(By.ID, "username").get_property("value") == username
        assert driver.find_element(By.ID, "password").get_property("value") == ""

    sign_in(driver, user["name"], PASSWORD)
    wait(driver).until(path_is("/oauth/device"))
    code_field = wait(driver).until(
        conditions.visibility_of_element_located((By.ID, "user_code"))
    )
    assert code_field.get_property("value") == "BCDF-GHJK"


def test_personal_access_token_page(
    sesame, verifier, userinfo, driver, user, screenshot_dir
):
    name = f"laptop {generate_token(6)}"
    driver.get(f"{sesame.issuer}/account/tokens")
    sign_in(driver, user["name"], PASSWORD)
    wait(driver).until(path_is("/account/tokens"))
    wait(driver).until(conditions.visibility_of_element_located((By.ID, "name"))).send_keys(name)
    for scope in ("read", "email"):
        driver.find_element(By.CSS_SELECTOR, f"input[name='scope'][value='{scope}']").click()
    driver.find_element(By.ID, "create").click()

    field = wait(driver).until(conditions.visibility_of_element_located((By.ID, "new-token")))
    token = field.get_property("value").strip()
    assert token
    revoke_label = f"Revoke {name}"
    revoke = driver.find_element(By.CSS_SELECTOR, f"button[aria-label='{revoke_label}']")
    save_full_page(driver, screenshot_dir / "tokens-desktop.png")
    check_on_phone(driver, screenshot_dir / "tokens-phone.png", ["new-token", "copy", "create"])

    claims = verifier.verify(token, sesame.current_personal_access_client_id())
    assert claims["sub"] == str(user["id"])
    assert claims["scopes"] == ["read", "email"]
    response = userinfo(token)
    assert response.status_code == 200
    assert response.json()["email"] == "browser@example.test"

    submit_page(driver, revoke)
    wait(driver).until(path_is("/account/tokens"))
    assert driver.find_elements(By.CSS_SELECTOR, f"button[aria-label='{revoke_label}']") == []
    assert driver.find_elements(By.ID, "new-token") == []
    revoked = userinfo(token)
    assert revoked.status_code == 401
    assert "invalid_token" in revoked.headers.get("WWW-Authenticate", "")


def test_copy_button_copies_token(sesame, driver, user):
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {
            "origin": sesame.issuer,
            "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
        },
    )
    driver.get(f"{sesame.issuer}/account/tokens")
    sign_in(driver, user["name"], PASSWORD)
    wait(driver).until(conditions.visibility_of_element_located((By.ID, "name"))).send_keys(
        "copied token"
    )
    driver.find_element(By.ID, "create").click()
    field = wait(driver).until(conditions.visibility_of_element_located((By.ID, "new-token")))

    driver.find_element(By.ID, "copy").click()

    wait(driver).until(conditions.text_to_be_present_in_element((By.ID, "copy"), "Copied"))
    clipboard = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, (error) => done('failed: ' + error));"
    )
    assert clipboard == field.get_property("value")


def test_sign_out_ends_session(sesame, driver, user):
    driver.get(f"{sesame.issuer}/account/tokens")
    sign_in(driver, user["name"], PASSWORD)
    logout = wait(driver).until(conditions.element_to_be_clickable((By.ID, "logout")))

    click_button(driver, "logout")

    wait(driver).until(path_is("/login"))
    driver.get(f"{sesame.issuer}/account/tokens")
    wait(driver).until(path_is("/login"))
    assert driver.find_element(By.ID, "username").is_displayed()


def start_device_flow(sesame, oauth_session, scope):
    """Create a device client, start a device authorization and a thread polling for it."""
    client = sesame.add_client("device", scopes=["read", "profile"])
    session = oauth_session(client, token_endpoint_auth_method="none")
    authorization = request_device_code(sesame, session, scope)
    poller = DevicePoller(session, sesame.token_endpoint, authorization)
    poller.start()
    poller.wait_for_first_response()
    return client, authorization, poller


def test_device_approved_in_browser(sesame, verifier, oauth_session, driver, user):
    client, authorization, poller = start_device_flow(sesame, oauth_session, "read profile")
    try:
        driver.get(authorization["verification_uri"])
        sign_in(driver, user["name"], PASSWORD)
        code_field = wait(driver).until(
            conditions.visibility_of_element_located((By.ID, "user_code"))
        )
        code_field.send_keys(authorization["user_code"])
        driver.find_element(By.CSS_SELECTOR, "button[value='lookup']").click()
        approve = wait(driver).until(conditions.element_to_be_clickable((By.ID, "approve")))
        text = page_text(driver)
        assert client["name"] in text
        assert "read" in text
        assert "profile" in text
        assert authorization["user_code"] in text
        click_button(driver, "approve")
        wait(driver).until(
            conditions.text_to_be_present_in_element((By.TAG_NAME, "main"), "Device connected")
        )

        token = poller.result(DECISION_TIMEOUT_SECONDS)
    finally:
        poller.stop()

    assert token is not None, f"polling ended with {poller.errors}"
    assert set(poller.errors) == {"authorization_pending"}
    claims = verifier.verify(token["access_token"], client["id"], token["expires_in"])
    assert claims["sub"] == str(user["id"])
    assert claims["scopes"] == ["read", "profile"]


def test_device_denied_in_browser(sesame, oauth_session, driver, user):
    _, authorization, poller = start_device_flow(sesame, oauth_session, "read")
    try:
        driver.get(authorization["verification_uri_complete"])
        sign_in(driver, user["name"], PASSWORD)
        code_field = wait(driver).until(
            conditions.visibility_of_element_located((By.ID, "user_code"))
        )
        assert code_field.get_property("value") == authorization["user_code"]
        driver.find_element(By.CSS_SELECTOR, "button[value='lookup']").click()
        click_button(driver, "deny")
        wait(driver).until(
            conditions.text_to_be_present_in_element((By.TAG_NAME, "main"), "Request denied")
        )

        token = poller.result(DECISION_TIMEOUT_SECONDS)
    finally:
        poller.stop()

    assert token is None
    assert poller.errors[-1] == "access_denied"
