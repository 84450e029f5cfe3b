"""The «Automate d'envoi» and its mail template, as an administrator sets them: the seed's settings checked (BCC
only to the cabinet's own domains), «Suspendre» recorded and handed to the robot, an unknown merge field refused
with its part and line and nothing saved, the preview on a real notice; a manager reads but cannot change."""

import httpx
from sqlalchemy import select

from core.db import session_scope
from core.models import WorkflowSignal
from services.notices.models import RobotSettings
from services.notices.service import mailtemplate, robot
from tests.support.notices import make_broker, notices_http, notices_server  # noqa: F401 (fixtures)
from tests.support.web import csrf_from, login, text

SETTINGS = {"pause_ms": "800", "idle_ms": "10000", "error_wait_ms": "60000", "max_attempts": "3",
            "alert_days": "7", "sender_name": "Service envoi mail", "from_address": "", "reply_to": ""}


def _robot(organisation_id: int) -> RobotSettings:
    with session_scope() as session:
        row = robot.robot_settings(session, organisation_id)
        session.expunge(row)
        return row


async def test_settings_pause_and_template(notices_http: httpx.AsyncClient) -> None:  # noqa: F811
    broker = make_broker()
    domain = broker.admin.split("@")[1]
    http = notices_http
    await login(http, broker.manager)
    page = await http.get("/automate")
    assert "Attente après chaque mail (ms)" in text(page) and 'value="800"' in page.text
    assert (await http.post("/automate/suspendre", data={"csrf_token": csrf_from(page.text)})).status_code == 403
    http.cookies.clear()
    await login(http, broker.admin)
    page = await http.get("/automate")
    refused = await http.post("/automate/parametres", data=SETTINGS | {
        "csrf_token": csrf_from(page.text), "bcc": "archives@ailleurs.example", "pause_ms": "-5"})
    assert refused.status_code == 422
    assert "« archives@ailleurs.example » n'est pas une adresse de votre cabinet" in text(refused)
    assert "Un nombre entier entre 0 et 600000 est attendu (reçu « -5 »)." in text(refused)
    assert _robot(broker.id).bcc == [] and _robot(broker.id).pause_ms == 800  # nothing saved
    saved = await http.post("/automate/parametres", data=SETTINGS | {
        "csrf_token": csrf_from(page.text), "bcc": f"archives@{domain}", "reply_to": f"gestion@{domain}",
        "pause_ms": "0"})
    assert saved.status_code == 303
    assert _robot(broker.id).bcc == [f"archives@{domain}"] and _robot(broker.id).pause_ms == 0

    paused = await http.post("/automate/suspendre", data={"csrf_token": csrf_from(page.text)}, follow_redirects=True)
    assert "Automate suspendu" in text(paused) and "Reprendre" in text(paused) and _robot(broker.id).paused
    with session_scope() as session:
        signal = session.scalars(select(WorkflowSignal).where(WorkflowSignal.workflow_id == f"avis-robot-{broker.slug}")
                                 .order_by(WorkflowSignal.id.desc())).first()
        assert signal is not None and signal.payload == {"command": "pause"} and signal.start is not None

    template = await http.get("/automate/modele")
    assert "{Adr_Titre}" in template.text
    assert "Avis d'échéance pour {Adr_Titre} {Adr_Nom} {Adr_Prenom}" in text(template)
    bad = await http.post("/automate/modele", data={
        "csrf_token": csrf_from(template.text), "action": "save", "subject": "Votre avis {Num_Avis}",
        "html_body": "<p>Bonjour,</p>\n<p>{Adr_Nom} {Montant_Du}</p>", "text_body": "Bonjour {Adr_Nom}"})
    assert bad.status_code == 422 and "Corps HTML, ligne 2 : champ inconnu « {Montant_Du} »" in text(bad)
    assert _robot(broker.id).subject == "Avis d'échéance pour {Adr_Titre} {Adr_Nom} {Adr_Prenom}"
    good = await http.post("/automate/modele", data={
        "csrf_token": csrf_from(template.text), "action": "save", "subject": "Votre avis n°{Num_Avis}",
        "html_body": "<p>Bonjour {Adr_Prenom},</p>", "text_body": "Bonjour {Adr_Prenom}"})
    assert good.status_code == 303 and _robot(broker.id).subject == "Votre avis n°{Num_Avis}"


def test_every_published_field_has_a_value_and_unknown_ones_are_found() -> None:
    errors = mailtemplate.check({"subject": "{Adr_Nom}", "html_body": "a\n{Nope}", "text_body": ""})
    assert [str(e) for e in errors] == ["Corps HTML, ligne 2 : champ inconnu « {Nope} »", "Corps texte : obligatoire"]
    assert mailtemplate.merge("{Adr_Nom} & {Autre}", {"Adr_Nom": "<b>"}, escape=True) == "&lt;b&gt; & {Autre}"
