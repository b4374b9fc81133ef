"""A forgotten password set again in Chromium, in Danish: the login page's link, the address, the
mail the outbox sends to a real SMTP server, its link, the new password, and a login with it."""

import pytest

from tests.conftest import PASSWORD
from tests.support.browser import chromium, screenshot
from tests.support.passwords import NEW_PASSWORD, link_in, smtp_mailbox
from tests.support.smtp import send_queued_mail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_forgotten_password_is_set_again_from_the_mail(live_server, settings, staff_a):
    with smtp_mailbox(settings, live_server.url) as mailbox, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/login/")
        assert page.locator("html").get_attribute("lang") == "da"
        screenshot(page, "password-login")
        page.click('main a[href="/account/password-reset/"]')
        page.wait_for_url("**/account/password-reset/")
        page.fill("#id_email", staff_a.email)
        screenshot(page, "password-reset-form")
        page.click("main button[type=submit]")
        page.wait_for_url("**/account/password-reset/sent/")
        screenshot(page, "password-reset-sent")

        send_queued_mail()  # the outbox's worker sends the queued mail
        [message] = mailbox.messages()
        page.goto(live_server.url + link_in(message))
        page.wait_for_url("**/set-password/")
        page.fill("#id_new_password1", NEW_PASSWORD)
        page.fill("#id_new_password2", NEW_PASSWORD)
        screenshot(page, "password-reset-new")
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live_server.url}/login/")
        screenshot(page, "password-reset-done")

        page.fill("#id_username", "staff-a")
        page.fill("#id_password", NEW_PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        page.click('.portal-user a[href="/account/"]')
        page.wait_for_url("**/account/")
        assert "staff-a@example.invalid" in page.content()
        screenshot(page, "password-my-account")
        # On a phone the link is in the menu drawer, with the name and "Log out".
        page.set_viewport_size({"width": 400, "height": 800})
        page.click(".js-menu-open")
        drawer_link = page.locator('.portal-info-mobile a[href="/account/"]')
        drawer_link.wait_for(state="visible")
        page.wait_for_timeout(600)  # the drawer slides in
        screenshot(page, "password-my-account-phone-menu")
        page.set_viewport_size({"width": 1280, "height": 900})

        # The link is spent.
        page.goto(live_server.url + link_in(message))
        assert page.locator('main a[href="/account/password-reset/"]').count() == 1
        screenshot(page, "password-reset-link-spent")
    staff_a.refresh_from_db()
    assert staff_a.check_password(NEW_PASSWORD) and not staff_a.check_password(PASSWORD)
