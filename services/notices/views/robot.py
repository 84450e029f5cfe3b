"""The «Automate d'envoi»: its live state, «Suspendre» / «Reprendre», its settings (the seed's), and the mail
template with its merge fields and a preview on a real notice. Everyone reads; administrators change."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from core.auth import DbSession
from core.db import get_scoped, scoped
from core.maillayout import wrap_mail_html
from core.models import User
from core.settings import get_settings
from core.ui import flash, render_page, today_paris
from services.notices.models import Client, Contract, LegalEntity, Notice, Receipt, RobotSettings
from services.notices.service import mailtemplate, robot
from services.notices.views.roles import Broker, int_or_none

router = APIRouter()
NUMBERS = {"pause_ms": ("Attente après chaque mail (ms)", "AE_WAIT_AFTER_EACH_OPERATION : 800 par défaut"),
           "idle_ms": ("Attente si rien à envoyer (ms)", "AE_WAIT_IF_NOTHING_TO_DO : 10000 par défaut"),
           "error_wait_ms": ("Attente après une erreur (ms)", "AE_WAIT_IF_ERROR : 60000 par défaut"),
           "max_attempts": ("Tentatives avant « KO »",
                            "erreurs temporaires (4xx, connexion) ; un refus 5xx est KO aussitôt"),
           "alert_days": ("Alerte au chargé de clientèle (jours avant l'échéance)",
                          "si l'avis est encore E, B ou KO ; 0 : pas d'alerte")}
TEXTS = {"sender_name": "Nom de l'expéditeur", "from_address": "Adresse d'envoi (From)",
         "reply_to": "Adresse de réponse (Reply-To)", "bcc": "Copie cachée (BCC)"}


def _admin(user: Broker) -> User:
    if user.role != "admin":
        raise HTTPException(403, "Seul un administrateur peut régler l'automate d'envoi.")
    return user


RobotAdmin = Annotated[User, Depends(_admin)]


def _values(row: RobotSettings) -> dict[str, str]:
    values = {name: str(getattr(row, name)) for name in NUMBERS}
    values |= {name: getattr(row, name) or "" for name in TEXTS if name != "bcc"}
    values["bcc"] = "\n".join(row.bcc or [])
    return values


def _robot_page(request: Request, session: DbSession, user: User, *, values: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    row = robot.robot_settings(session, user.organisation_id)
    waiting = session.scalar(select(func.count()).where(Notice.organisation_id == user.organisation_id,
                                                        Notice.status == "V")) or 0
    return render_page(request, "robot.html", status, user=user, row=row, waiting=waiting, today=today_paris(),
                       state_label=robot.STATE_LABELS.get(row.state, row.state), values=values or _values(row),
                       errors=errors or {}, numbers=NUMBERS, texts=TEXTS,
                       domains=sorted(robot.own_domains(session, user.organisation_id)))


@router.get("/automate", response_class=HTMLResponse)
def robot_page(request: Request, user: Broker, session: DbSession) -> HTMLResponse:
    return _robot_page(request, session, user)


@router.post("/automate/parametres", response_class=HTMLResponse)
async def save_settings(request: Request, user: RobotAdmin, session: DbSession) -> Response:
    posted = await request.form()
    raw = {name: str(posted.get(name) or "") for name in (*NUMBERS, *TEXTS)}
    checked = robot.check_settings(session, user.organisation_id, raw)
    if checked.errors:
        return _robot_page(request, session, user, values=raw, errors=checked.errors, status=422)
    row = robot.robot_settings(session, user.organisation_id, lock=True)
    for name, value in checked.values.items():
        setattr(row, name, value)
    robot.wake_robot(session, get_settings(), robot.organisation_of(session, user.organisation_id))
    session.commit()
    flash(request, "Paramètres de l'automate enregistrés.")
    return RedirectResponse("/automate", status_code=303)


def _set_paused(request: Request, user: User, session: DbSession, *, paused: bool, done: str) -> Response:
    robot.set_paused(session, get_settings(), user=user, paused=paused)
    session.commit()
    flash(request, done)
    return RedirectResponse("/automate", status_code=303)


@router.post("/automate/suspendre")
def pause(request: Request, user: RobotAdmin, session: DbSession) -> Response:
    return _set_paused(request, user, session, paused=True,
                       done="Automate suspendu : le mail en cours s'achève, les suivants attendent « Reprendre ».")


@router.post("/automate/reprendre")
def resume(request: Request, user: RobotAdmin, session: DbSession) -> Response:
    return _set_paused(request, user, session, paused=False, done="Automate relancé.")


def _preview(session: DbSession, organisation_id: int, notice_id: int | None,
             parts: dict[str, str]) -> tuple[Notice | None, dict[str, str] | None]:
    stmt = scoped(Notice, organisation_id).order_by(Notice.id.desc())
    notice = get_scoped(session, Notice, notice_id, organisation_id) if notice_id else session.scalars(stmt).first()
    if notice is None:
        return None, None
    client, receipt = session.get(Client, notice.client_id), session.get(Receipt, notice.receipt_id)
    assert client is not None and receipt is not None
    contract, entity = session.get(Contract, receipt.contract_id), session.get(LegalEntity, notice.legal_entity_id)
    assert contract is not None and entity is not None
    fields = mailtemplate.values(notice=notice, client=client, contract=contract, receipt=receipt, entity=entity)
    subject = mailtemplate.subject_line(parts["subject"], fields)
    return notice, {"subject": subject, "text": mailtemplate.merge(parts["text_body"], fields),
                    "html": wrap_mail_html(mailtemplate.merge(parts["html_body"], fields, escape=True), title=subject)}


def _template_page(request: Request, session: DbSession, user: User, parts: dict[str, str], *,
                   notice_id: int | None = None, errors: list[mailtemplate.TemplateError] | None = None,
                   status: int = 200) -> HTMLResponse:
    notice, rendered = _preview(session, user.organisation_id, notice_id, parts)
    notices = list(session.scalars(scoped(Notice, user.organisation_id).order_by(Notice.id.desc()).limit(50)))
    return render_page(request, "mail_template.html", status, user=user, form=parts, errors=errors or [],
                       fields=mailtemplate.FIELDS, notice=notice, rendered=rendered, notices=notices)


@router.get("/automate/modele", response_class=HTMLResponse)
def template_page(request: Request, user: Broker, session: DbSession, avis: str = "") -> HTMLResponse:
    row = robot.robot_settings(session, user.organisation_id)
    parts = {"subject": row.subject, "html_body": row.html_body, "text_body": row.text_body}
    return _template_page(request, session, user, parts, notice_id=int_or_none(avis))


@router.post("/automate/modele", response_class=HTMLResponse)
async def save_template(request: Request, user: RobotAdmin, session: DbSession) -> Response:
    posted = await request.form()
    parts = {part: str(posted.get(part) or "") for part in mailtemplate.PARTS}
    notice_id = int_or_none(str(posted.get("avis") or ""))
    errors = mailtemplate.check(parts)
    if errors:
        return _template_page(request, session, user, parts, notice_id=notice_id, errors=errors, status=422)
    if posted.get("action") == "preview":
        return _template_page(request, session, user, parts, notice_id=notice_id)
    row = robot.robot_settings(session, user.organisation_id, lock=True)
    row.subject, row.html_body, row.text_body = parts["subject"], parts["html_body"], parts["text_body"]
    session.commit()
    flash(request, "Modèle de mail enregistré : les prochains avis partiront avec lui.")
    return RedirectResponse("/automate/modele", status_code=303)
