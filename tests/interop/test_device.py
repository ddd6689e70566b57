"""The device authorization grant (RFC 8628) with authlib's OAuth2Session as the device.

The device polls from a thread while a ScriptedUser signs in, types the user code and decides
on the verification page. test_browser.py runs the same user steps in Chromium.
"""

import re

import pytest
from authlib.integrations.base_client import OAuthError
from conftest import DEVICE_CODE_GRANT, DevicePoller, is_login_page, request_device_code

PASSWORD = "device flow password"

# Sesame's user codes: eight consonants in two groups of four.
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")

# How long a test waits for the device to see the user's decision: two poll intervals of
# 5 s, and time for a slow debug build.
DECISION_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="module")
def user(sesame):
    return sesame.add_user(PASSWORD)


@pytest.fixture
def browser(scripted_user, user):
    return scripted_user(user, PASSWORD)


@pytest.fixture
def device_client(sesame):
    return sesame.add_client("device", scopes=["read", "profile"])


@pytest.fixture
def device_session(oauth_session, device_client):
    """Return an OAuth2Session of the public device client, which sends only its client_id."""
    return oauth_session(device_client, token_endpoint_auth_method="none")


def poll_once(sesame, session, authorization) -> dict:
    return session.fetch_token(
        sesame.token_endpoint,
        grant_type=DEVICE_CODE_GRANT,
        device_code=authorization["device_code"],
    )


def open_confirmation(browser, user_code: str):
    """Sign in on the verification page, enter `user_code` and return the confirmation page."""
    entry = browser.get(f"{browser.issuer}/oauth/device")
    if is_login_page(entry):
        entry = browser.sign_in(entry)
    assert entry.status_code == 200, entry.text[:500]
    return browser.submit(entry, action="/oauth/device", fields={"user_code": user_code})


def decide(browser, user_code: str, button_id: str):
    confirmation = open_confirmation(browser, user_code)
    assert confirmation.status_code == 200, confirmation.text[:500]
    return browser.submit(confirmation, button_id=button_id)


def test_device_authorization_response(sesame, device_session):
    authorization = request_device_code(sesame, device_session, "read")

    assert authorization["device_code"]
    assert USER_CODE.fullmatch(authorization["user_code"])
    assert authorization["verification_uri"] == f"{sesame.issuer}/oauth/device"
    assert authorization["verification_uri_complete"].startswith(
        authorization["verification_uri"] + "?"
    )
    assert authorization["user_code"] in authorization["verification_uri_complete"]
    assert authorization["interval"] == 5
    assert authorization["expires_in"] == 600


def test_device_flow_approved(
    sesame, verifier, userinfo, device_session, device_client, browser, user
):
    authorization = request_device_code(sesame, device_session, "read profile")
    poller = DevicePoller(device_session, sesame.token_endpoint, authorization)
    poller.start()
    poller.wait_for_first_response()

    confirmation = open_confirmation(browser, authorization["user_code"])
    assert confirmation.status_code == 200
    assert device_client["name"] in confirmation.text
    assert "<code>read</code>" in confirmation.text
    assert "<code>profile</code>" in confirmation.text
    assert authorization["user_code"] in confirmation.text
    approved = browser.submit(confirmation, button_id="approve")
    assert approved.status_code == 200
    assert "Device connected" in approved.text

    token = poller.result(DECISION_TIMEOUT_SECONDS)
    assert token is not None, f"polling ended with {poller.errors}"
    assert poller.errors[0] == "authorization_pending"
    assert set(poller.errors) == {"authorization_pending"}
    assert token["scope"] == "read profile"
    claims = verifier.verify(token["access_token"], device_client["id"], token["expires_in"])
    assert claims["sub"] == str(user["id"])
    assert userinfo(token["access_token"]).json()["preferred_username"] == user["name"]

    refreshed = device_session.refresh_token(
        sesame.token_endpoint, refresh_token=token["refresh_token"]
    )
    refreshed_claims = verifier.verify(refreshed["access_token"], device_client["id"])
    assert refreshed_claims["sub"] == str(user["id"])


def test_device_flow_denied(sesame, device_session, browser):
    authorization = request_device_code(sesame, device_session, "read")
    poller = DevicePoller(device_session, sesame.token_endpoint, authorization)
    poller.start()
    poller.wait_for_first_response()

    # Typed as a user might: lower case, without the dash.
    typed = authorization["user_code"].replace("-", "").lower()
    denied = decide(browser, typed, "deny")

    assert denied.status_code == 200
    assert "Request denied" in denied.text
    assert poller.result(DECISION_TIMEOUT_SECONDS) is None
    assert poller.errors[-1] == "access_denied"


def test_device_code_redeemed_once(sesame, device_session, browser):
    authorization = request_device_code(sesame, device_session, "read")
    decide(browser, authorization["user_code"], "approve")
    poll_once(sesame, device_session, authorization)

    with pytest.raises(OAuthError) as raised:
        poll_once(sesame, device_session, authorization)

    assert raised.value.error == "invalid_grant"


def test_user_code_decided_once(sesame, device_session, browser):
    authorization = request_device_code(sesame, device_session, "read")
    confirmation = open_confirmation(browser, authorization["user_code"])
    browser.submit(confirmation, button_id="approve")

    repeated = browser.submit(confirmation, button_id="deny")

    # The same user sees that the first decision is final, and the resubmit is not a guess.
    assert repeated.status_code == 409
    assert "You already approved this code" in repeated.text
    token = poll_once(sesame, device_session, authorization)
    assert token["access_token"]


def test_polling_too_fast_slows_down(sesame, device_session):
    authorization = request_device_code(sesame, device_session, "read")

    with pytest.raises(OAuthError) as first:
        poll_once(sesame, device_session, authorization)
    with pytest.raises(OAuthError) as second:
        poll_once(sesame, device_session, authorization)

    assert first.value.error == "authorization_pending"
    assert second.value.error == "slow_down"


def test_device_code_of_other_client(sesame, oauth_session, device_session):
    authorization = request_device_code(sesame, device_session, "read")
    other = oauth_session(sesame.add_client("device"), token_endpoint_auth_method="none")

    with pytest.raises(OAuthError) as raised:
        poll_once(sesame, other, authorization)

    assert raised.value.error == "invalid_grant"


def test_unknown_user_code_rejected(sesame, browser):
    # A wrong code counts towards Sesame's per-address back-off (5 wrong codes in 15 minutes),
    # which all tests share because they connect from one loopback address, so the suite
    # enters only one or two codes that are not pending.
    confirmation = open_confirmation(browser, "BBBB-BBBB")

    assert confirmation.status_code == 400
    assert "That code is not valid" in confirmation.text
    assert "id=\"approve\"" not in confirmation.text


def test_verification_uri_complete_fills_code(sesame, device_session, browser):
    authorization = request_device_code(sesame, device_session, "read")

    page = browser.get(authorization["verification_uri_complete"])
    if is_login_page(page):
        page = browser.sign_in(page)

    assert page.status_code == 200
    assert f'value="{authorization["user_code"]}"' in page.text


def test_device_code_unknown_scope(sesame, device_session):
    response = device_session.post(
        sesame.device_authorization_endpoint,
        data={"scope": "no-such-scope"},
        auth=device_session.client_auth("none"),
        withhold_token=True,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_web_client_cannot_start_device_flow(sesame, oauth_session, redirect_receiver):
    client = sesame.add_web_client(redirect_receiver.url, scopes=["read"])
    session = oauth_session(client)

    response = session.post(
        sesame.device_authorization_endpoint,
        data={"scope": "read"},
        auth=session.client_auth("client_secret_basic"),
        withhold_token=True,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
