"""«Mot de passe oublié ?» over HTTP: the mail through the outbox, the worker and the real SMTP sink, the link in it,
a new password; a replayed, expired or forged link refused in French; the same answer for an unknown address; the
rate limits; the «Support» link."""

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete, select

from core import passwordreset
from core.db import session_scope, utcnow
from core.models import OutboxMessage, PasswordResetRequest, User
from core.settings import get_settings
from tests.support.factories import make_org
from tests.support.smtp import SmtpSink, body_html, body_text
from tests.support.waiting import wait_until
from tests.support.web import csrf_from, login, text

LINK = re.compile(r"https?://\S+/mot-de-passe/nouveau/[\w.\-]+")
SENT = "un e-mail vient de lui être envoyé avec un lien pour choisir un nouveau mot de passe, valable 60 minutes"


@pytest.fixture(autouse=True)
def fresh_window() -> Iterator[None]:
    """Every test here asks from 127.0.0.1: start each with no request counted against it."""
    with session_scope() as session:
        session.execute(delete(PasswordResetRequest))
    yield


async def _ask(http: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await http.get("/mot-de-passe-oublie")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    return await http.post("/mot-de-passe-oublie", data={"email": email, "csrf_token": csrf_from(page.text)})


async def _set(http: httpx.AsyncClient, link: str, password: str, confirm: str | None = None) -> httpx.Response:
    page = await http.get(link)
    token = csrf_from(page.text) if page.status_code == 200 else csrf_from((await http.get("/login")).text)
    return await http.post(link, data={"password": password, "confirm": password if confirm is None else confirm,
                                       "csrf_token": token})


def _hash(email: str) -> str:
    with session_scope() as session:
        return session.scalars(select(User.password_hash).where(User.email == email)).one()


async def test_login_page_offers_the_reset_and_the_support_link(http: httpx.AsyncClient) -> None:
    page = text(await http.get("/login"))
    assert '<a href="/mot-de-passe-oublie">Mot de passe oublié ?</a>' in page
    assert get_settings().support_url == "mailto:support@relais.local"  # SUPPORT_URL's default
    assert '<a href="mailto:support@relais.local">Support</a>' in page
    assert "Support" in text(await http.get("/mot-de-passe-oublie"))


async def test_forgotten_password_by_mail_link_then_login(http: httpx.AsyncClient, campaigns_server: str,
                                                          sink: SmtpSink) -> None:
    email = make_org().manager_email
    old_hash = _hash(email)
    # Without the form's CSRF token, nothing is asked.
    assert (await http.post("/mot-de-passe-oublie", data={"email": email})).status_code == 403

    first = await _ask(http, email)
    assert first.status_code == 200 and SENT in text(first) and f"« {email} »" in text(first)
    await wait_until(lambda: len(sink.to(email)) == 1, what="the reset mail in the SMTP sink")
    mail = sink.to(email)[0]
    assert mail["Subject"] == "Relais : choisissez un nouveau mot de passe"
    link = LINK.findall(body_text(mail))[0]
    assert link.startswith(f"{campaigns_server}/mot-de-passe/nouveau/")  # the configured URL, not the Host header
    assert link in body_html(mail) and "Choisir un nouveau mot de passe" in body_html(mail)
    assert (await http.get(link)).status_code == 200  # a GET changes nothing: still usable after
    # A second request: its link, used first, kills the first one (bound to the password it replaces).
    await _ask(http, email)
    await wait_until(lambda: len(sink.to(email)) == 2, what="the second reset mail")
    second = LINK.findall(body_text(sink.to(email)[1]))[0]
    assert second != link

    form = await http.get(second)
    assert form.status_code == 200 and email in text(form) and form.headers["referrer-policy"] == "no-referrer"
    short = await _set(http, second, "court")
    assert short.status_code == 422 and "au moins 10 caractères" in text(short)
    mismatch = await _set(http, second, "nouveau-mot-de-passe", "autre-mot-de-passe")
    assert mismatch.status_code == 422 and "ne sont pas identiques" in text(mismatch)
    assert _hash(email) == old_hash  # refused: nothing written, the link still good
    done = await _set(http, second, "nouveau-mot-de-passe")
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert "Votre mot de passe a été changé" in text(await http.get("/login"))
    new_hash = _hash(email)
    assert new_hash != old_hash and new_hash.startswith("$argon2id$")

    assert (await login(http, email, "relais-demo")).status_code == 401
    assert (await login(http, email, "nouveau-mot-de-passe")).status_code == 303
    # Replayed: refused, in French, and the password stays as it is.
    for used in (second, link):
        again = await http.get(used)
        assert again.status_code == 409 and "Ce lien a déjà servi" in text(again)
        replay = await _set(http, used, "encore-un-autre-mot")
        assert replay.status_code == 409 and "Ce lien a déjà servi" in text(replay)
    assert _hash(email) == new_hash
    forged = await http.get(second[:-4] + "abcd")
    assert forged.status_code == 404 and "Ce lien n'existe pas" in text(forged)


async def test_unknown_address_gets_the_same_answer_and_no_mail(http: httpx.AsyncClient) -> None:
    known, unknown = make_org().manager_email, "personne@inconnu.example"
    answers = [text(await _ask(http, address)).replace(address, "ADRESSE") for address in (known, unknown)]
    assert answers[0] == answers[1] and SENT in answers[1]
    with session_scope() as session:
        recipients = session.scalars(select(OutboxMessage.recipients)
                                     .where(OutboxMessage.key.like("password-reset-%"))).all()
    assert [known] in recipients and not [r for r in recipients if unknown in r]
    empty = await _ask(http, "")
    assert empty.status_code == 422 and "Indiquez l'adresse e-mail de votre compte." in text(empty)


async def test_expired_link_is_refused(http: httpx.AsyncClient, campaigns_server: str) -> None:
    email = make_org().manager_email
    settings = get_settings()
    asked = utcnow() - timedelta(minutes=settings.password_reset_minutes + 1)
    with session_scope() as session:
        passwordreset.request_reset(session, settings, email=email, client="192.0.2.7", base_url=campaigns_server,
                                    now=asked)
    with session_scope() as session:
        body = session.scalars(select(OutboxMessage.text_body).where(OutboxMessage.recipients == [email])).one()
    link = LINK.findall(body)[0]
    expired = await http.get(link)
    assert expired.status_code == 410 and "Ce lien a expiré" in text(expired)
    assert (await _set(http, link, "nouveau-mot-de-passe")).status_code == 410


async def test_requests_are_rate_limited_per_address_and_per_client(http: httpx.AsyncClient,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    limited = "Trop de demandes de réinitialisation pour cette adresse ou depuis ce poste : réessayez dans une heure."
    for _ in range(get_settings().password_reset_per_address):  # 3 an hour, known address or not
        assert (await _ask(http, "inconnu@limite.example")).status_code == 200
    refused = await _ask(http, "INCONNU@limite.example ")
    assert refused.status_code == 429 and limited in text(refused)
    assert (await _ask(http, "autre@limite.example")).status_code == 200  # another address may still ask

    monkeypatch.setattr(get_settings(), "password_reset_per_client", 5)  # 4 asked from 127.0.0.1 so far
    assert (await _ask(http, "encore@limite.example")).status_code == 200
    client_refused = await _ask(http, "nouvelle@limite.example")
    assert client_refused.status_code == 429 and limited in text(client_refused)
