"""Campaigns business functions: keyword-only, one unit of work each, organisation-scoped."""

from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped
from core.models import Organisation, OutboxMessage, User
from core.settings import Settings
from core.signals import queue_start
from core.temporal import start_spec
from core.ui import Page, paginate
from services.campaigns.models import Driver, TestMail
from services.campaigns.service.mailtemplates import check_text
from workflows.data.campaigns import TEST_MAIL, TestMailInput


@dataclass
class TestMailRow:
    __test__ = False
    test_mail: TestMail
    driver: Driver
    outbox: OutboxMessage | None


def drivers_for_select(session: Session, *, organisation_id: int) -> list[Driver]:
    """Drivers of the organisation, by name, for a picker."""
    return list(session.scalars(scoped(Driver, organisation_id).order_by(Driver.nom, Driver.prenom, Driver.id)))


def create_test_mail(session: Session, settings: Settings, *, user: User, driver_id: int | None, subject: str,
                     body: str) -> tuple[TestMail | None, dict[str, str]]:
    """Validate the form, store the test mail and queue its workflow's start (sent once this commits); returns
    (row, {}) or (None, errors by field)."""
    errors: dict[str, str] = {}
    driver = get_scoped(session, Driver, driver_id, user.organisation_id) if driver_id else None
    if driver is None:
        errors["driver_id"] = "Choisissez un conducteur de votre organisation."
    elif not driver.email:
        errors["driver_id"] = "Adresse mail manquante dans les infos du conducteur."
    if not subject.strip():
        errors["subject"] = "Le sujet est obligatoire."
    elif "\n" in subject or "\r" in subject:
        errors["subject"] = "Le sujet doit tenir sur une ligne."
    elif problems := check_text(subject, "Sujet", allow_link_field=False):
        errors["subject"] = " ".join(problems)
    if not body.strip():
        errors["body"] = "Le contenu est obligatoire."
    elif problems := check_text(body, "Contenu", allow_link_field=True):
        errors["body"] = " ".join(problems)
    if errors or driver is None:
        return None, errors
    test_mail = TestMail(organisation_id=user.organisation_id, driver_id=driver.id, subject=subject.strip(),
                         body=body, created_by_id=user.id)
    session.add(test_mail)
    session.flush()
    test_mail.workflow_id = f"test-mail-{test_mail.id}"
    organisation = session.get(Organisation, user.organisation_id)
    assert organisation is not None
    queue_start(session, organisation_id=organisation.id, spec=start_spec(
        test_mail.workflow_id, TEST_MAIL, TestMailInput(test_mail.id, settings.mail_task_queue),
        task_queue=settings.task_queue, summary=f"Envoi de test à {driver.prenom} {driver.nom} ({driver.matricule})",
        RelaisOrganisation=organisation.slug, RelaisDomain="campaigns", RelaisFamily="envoi-test",
        RelaisPerson=driver.matricule, RelaisDocument=test_mail.workflow_id))
    return test_mail, {}


def _rows(session: Session, stmt: Select[TestMail, Driver, OutboxMessage]) -> list[TestMailRow]:
    rows = session.execute(stmt).all()
    return [TestMailRow(t, d, o) for t, d, o in rows]


def _test_mail_query(organisation_id: int, status: str | None = None) -> Select[TestMail, Driver, OutboxMessage]:
    stmt = (
        select(TestMail, Driver, OutboxMessage)
        .join(Driver, Driver.id == TestMail.driver_id)
        .outerjoin(OutboxMessage, OutboxMessage.id == TestMail.outbox_id)
        .where(TestMail.organisation_id == organisation_id, Driver.organisation_id == organisation_id)
        .order_by(TestMail.id.desc())
    )
    if status == "pending":
        stmt = stmt.where((OutboxMessage.status == "pending") | (OutboxMessage.id.is_(None)))
    elif status in ("sent", "ko"):
        stmt = stmt.where(OutboxMessage.status == status)
    return stmt


def list_test_mails(session: Session, *, organisation_id: int, status: str | None, page: int) -> Page[TestMailRow]:
    """Recent test mails with their outbox status (filterable, paginated)."""
    stmt = _test_mail_query(organisation_id, status)
    result = paginate(session, stmt.with_only_columns(TestMail.id), page=page, per_page=20)
    ids = result.items
    rows = _rows(session, stmt.where(TestMail.id.in_(ids))) if ids else []
    return Page(rows, result.page, result.per_page, result.total)


def get_test_mail(session: Session, *, organisation_id: int, test_mail_id: int) -> TestMailRow | None:
    rows = _rows(session, _test_mail_query(organisation_id).where(TestMail.id == test_mail_id))
    return rows[0] if rows else None


