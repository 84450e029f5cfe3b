"""Removals against seed 004, what users still missed (issue 12): each gap seen over HTTP as a user sees it."""

import re

import httpx
from sqlalchemy import update
from temporalio.client import Client

from activities.removals import RemovalActivities
from core.db import session_scope
from core.models import OutboxMessage
from core.settings import get_settings
from services.removals.service import process
from tests.support.removals import create_request, line, make_deposer, make_requester
from tests.support.web import login, text


def words(response: httpx.Response) -> str:
    """The page's text as read: tags dropped, blanks collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", text(response)).split())


async def test_the_request_page_says_which_deposers_are_not_told_yet(removals_http: httpx.AsyncClient,
                                                                     dev_worker: Client) -> None:
    """While a deposer's mail is not accepted by the server its vehicles stay «Nouvelle», and the request's page
    says why: being sent, or refused with the server's reply."""
    requester, a, b = make_requester(3), make_deposer(), make_deposer()
    request_id, number = create_request(requester, [line(requester, requester.vins[0], a),
                                                    line(requester, requester.vins[1], a),
                                                    line(requester, requester.vins[2], b)])
    RemovalActivities(get_settings(), dev_worker).notify_removal_deposers(request_id)  # written, not sent
    await login(removals_http, requester.email)
    page = words(await removals_http.get(f"/demandes/{number}"))
    assert "Déposeurs pas encore prévenus" in page
    assert f"{a.name} ({a.code}) : 2 véhicule(s) — mail en cours d'envoi" in page
    with session_scope() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.key == f"removal-notify-{request_id}-deposer-{a.id}")
                        .values(status="ko", last_reply="550 5.1.1 Adresse inconnue"))
        session.execute(update(OutboxMessage).where(OutboxMessage.key == f"removal-notify-{request_id}-deposer-{b.id}")
                        .values(status="sent"))
        process.mark_notified(session, request_id=request_id, deposer_id=b.id)
    response = await removals_http.get(f"/demandes/{number}")
    page = words(response)
    assert (f"{a.name} ({a.code}) : 2 véhicule(s) — mail refusé par le serveur de messagerie : "
            "550 5.1.1 Adresse inconnue ; vous pouvez annuler ces véhicules") in page
    untold = response.text.split('id="untold"')[1].split("</section>")[0]
    assert b.name not in untold
    assert response.text.count(">Nouvelle</span>") == 2 and response.text.count(">Prévenu</span>") == 1
