"""Action links: signed, expiring, purpose-bound, single-use; GET never changes anything."""

import time

import httpx
import pytest

from core import links
from core.db import session_scope
from core.models import Organisation
from core.settings import get_settings
from services.campaigns.links import ACK_PATH, ACK_PURPOSE, ack_url
from services.campaigns.models import Driver, TestMail
from tests.support.web import text


def _test_mail() -> int:
    with session_scope() as session:
        org_id = session.query(Organisation.id).filter_by(slug="garonne").scalar()
        driver = session.query(Driver).filter_by(organisation_id=org_id).first()
        assert driver is not None
        test_mail = TestMail(organisation_id=org_id, driver_id=driver.id, subject="Sujet", body="Corps")
        session.add(test_mail)
        session.flush()
        return test_mail.id


def _acknowledged(test_mail_id: int) -> bool:
    with session_scope() as session:
        test_mail = session.get(TestMail, test_mail_id)
        return test_mail is not None and test_mail.acknowledged_at is not None


def _tamper(token: str) -> str:
    payload, _, signature = token.rpartition(".")
    return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def test_token_round_trip_and_refusals() -> None:
    token = links.make_token("p.one", "thing-1", data={"x": 1})
    link = links.read_token(token, "p.one")
    assert (link.subject, link.data) == ("thing-1", {"x": 1})
    with pytest.raises(links.LinkInvalid):
        links.read_token(_tamper(token), "p.one")
    with pytest.raises(links.LinkInvalid):
        links.read_token(token, "p.other")  # wrong purpose
    with pytest.raises(links.LinkInvalid):
        links.read_token("not-a-token", "p.one")
    old = links.make_token("p.one", "thing-1", max_age_seconds=60, now=time.time() - 3600)
    with pytest.raises(links.LinkExpired):
        links.read_token(old, "p.one")


def test_links_are_built_from_the_configured_base_url() -> None:
    url = ack_url(get_settings(), 7)
    assert url.startswith(f"{get_settings().campaigns_url}{ACK_PATH}/")


async def test_get_changes_nothing_post_acts_once(http: httpx.AsyncClient) -> None:
    test_mail_id = _test_mail()
    url = ack_url(get_settings(), test_mail_id)
    for _ in range(3):  # a mail scanner may open the link many times
        page = await http.get(url)
        assert page.status_code == 200 and "Confirmer la réception" in text(page)
    assert not _acknowledged(test_mail_id)
    done = await http.post(url)
    assert done.status_code == 200 and _acknowledged(test_mail_id)
    replay = await http.post(url)
    assert replay.status_code == 409 and "Ce lien a déjà été utilisé" in text(replay)
    reopened = await http.get(url)
    assert reopened.status_code == 409 and "déjà été utilisé" in text(reopened)


async def test_tampered_wrong_purpose_and_expired_links(http: httpx.AsyncClient) -> None:
    test_mail_id = _test_mail()
    base = f"{get_settings().campaigns_url}{ACK_PATH}"
    good = links.make_token(ACK_PURPOSE, f"test-mail-{test_mail_id}")
    tampered = await http.post(f"{base}/{_tamper(good)}")
    assert tampered.status_code == 404 and "Ce lien n'existe pas" in text(tampered)
    other_purpose = links.make_token("removals.accept", f"test-mail-{test_mail_id}")
    assert (await http.post(f"{base}/{other_purpose}")).status_code == 404
    expired = links.make_token(ACK_PURPOSE, f"test-mail-{test_mail_id}", max_age_seconds=60,
                               now=time.time() - 7200)
    for response in (await http.get(f"{base}/{expired}"), await http.post(f"{base}/{expired}")):
        assert response.status_code == 410 and "Ce lien a expiré" in text(response)
        assert response.headers["cache-control"] == "no-store"
    assert not _acknowledged(test_mail_id)
    # None of the refusals consumed the link: the genuine one still works.
    assert (await http.post(f"{base}/{good}")).status_code == 200 and _acknowledged(test_mail_id)
