"""The personal access token page (/account/tokens) driven by ScriptedUsers, without a browser.

test_browser.py covers the same page in Chromium. These tests send what a browser would not:
forms without their CSRF token, scopes the page does not offer, and another user's form.
"""

import html
import re

import pytest
from conftest import HTTP_TIMEOUT_SECONDS, FormParser, find_form, is_login_page

PASSWORD = "account page password"

NEW_TOKEN = re.compile(r'<textarea id="new-token"[^>]*>(.*?)</textarea>', re.DOTALL)


@pytest.fixture(scope="module")
def owner(sesame):
    return sesame.add_user(PASSWORD)


@pytest.fixture(scope="module")
def other_user(sesame):
    return sesame.add_user(PASSWORD)


def open_token_page(sesame, browser):
    page = browser.get(f"{sesame.issuer}/account/tokens")
    if is_login_page(page):
        page = browser.sign_in(page)
    assert page.status_code == 200, page.text[:500]
    assert page.url == f"{sesame.issuer}/account/tokens"
    return page


def create_token(browser, page, name: str, scope: str):
    return browser.submit(page, button_id="create", fields={"name": name, "scope": scope})


def new_token_of(page) -> str | None:
    match = NEW_TOKEN.search(page.text)
    return html.unescape(match.group(1)).strip() if match else None


def revoke_action(page, name: str) -> str:
    """Return the action of the form whose button revokes the token `name`."""
    parser = FormParser()
    parser.feed(page.text)
    actions = [
        form.action
        for form in parser.forms
        if any(button.get("aria-label") == f"Revoke {name}" for button in form.buttons)
    ]
    assert len(actions) == 1, f"expected one revoke form for {name!r}, found {actions}"
    return actions[0]


def test_signed_out_visit_goes_to_login(sesame, scripted_user, owner):
    browser = scripted_user(owner, PASSWORD)

    response = browser.http.get(
        f"{sesame.issuer}/account/tokens", allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?return_to=%2Faccount%2Ftokens"


def test_created_token_shown_once(sesame, verifier, userinfo, scripted_user, owner):
    browser = scripted_user(owner, PASSWORD)
    page = open_token_page(sesame, browser)

    created = create_token(browser, page, "scripted token", "read")

    assert created.status_code == 200
    token = new_token_of(created)
    assert token
    claims = verifier.verify(token, sesame.current_personal_access_client_id())
    assert claims["sub"] == str(owner["id"])
    assert claims["scopes"] == ["read"]
    assert userinfo(token).status_code == 200
    reloaded = open_token_page(sesame, browser)
    assert new_token_of(reloaded) is None
    assert "scripted token" in reloaded.text


def test_create_needs_csrf_token(sesame, scripted_user, owner):
    browser = scripted_user(owner, PASSWORD)
    open_token_page(sesame, browser)

    response = browser.http.post(
        f"{sesame.issuer}/account/tokens",
        data={"name": "no csrf", "scope": "read"},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 403
    assert new_token_of(response) is None
    assert "no csrf" not in open_token_page(sesame, browser).text


def test_create_unknown_scope_rejected(sesame, scripted_user, owner):
    browser = scripted_user(owner, PASSWORD)
    page = open_token_page(sesame, browser)

    response = create_token(browser, page, "bad scope", "no-such-scope")

    assert response.status_code == 400
    assert new_token_of(response) is None
    assert 'role="alert"' in response.text
    assert "no-such-scope" in response.text


def test_revoke_other_users_token_ignored(sesame, userinfo, scripted_user, owner, other_user):
    owner_browser = scripted_user(owner, PASSWORD)
    created = create_token(
        owner_browser, open_token_page(sesame, owner_browser), "owner token", "read"
    )
    token = new_token_of(created)
    action = revoke_action(created, "owner token")
    other_browser = scripted_user(other_user, PASSWORD)
    other_page = open_token_page(sesame, other_browser)
    csrf = dict(find_form(other_page.text, button_id="create").fields)["_csrf"]

    response = other_browser.http.post(
        f"{sesame.issuer}{action}",
        data={"_csrf": csrf},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code in (303, 404)
    assert userinfo(token).status_code == 200
    assert "owner token" in open_token_page(sesame, owner_browser).text


def test_revoke_needs_csrf_token(sesame, userinfo, scripted_user, owner):
    browser = scripted_user(owner, PASSWORD)
    created = create_token(browser, open_token_page(sesame, browser), "kept token", "read")
    token = new_token_of(created)
    action = revoke_action(created, "kept token")

    response = browser.http.post(
        f"{sesame.issuer}{action}", data={}, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
    )

    assert response.status_code == 403
    assert userinfo(token).status_code == 200
