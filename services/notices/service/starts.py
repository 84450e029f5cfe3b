"""How the notices' workflows start: ids from business keys, search attributes (organisation, dossier, notice
number, status) and the summary the Temporal Web UI shows. Every start goes through `core.signals` with these."""

from datetime import datetime, timedelta

from core.models import Organisation
from core.settings import Settings
from core.temporal import StartSpec, start_spec
from services.notices.models import Client, LegalEntity, Notice, NoticeRun
from services.notices.service.statuses import LABELS
from workflows.data.notices import MAIL_ROBOT, NOTICE, NOTICE_RUN, NoticeInput, RobotInput, RunInput

CLOSE_AFTER_DUE = timedelta(days=90)  # a notice's workflow ends 90 days after its due date: it is history


def notice_workflow_id(organisation: Organisation, entity: LegalEntity, number: int) -> str:
    return f"avis-{organisation.slug}-{entity.code.lower()}-{number}"


def run_workflow_id(organisation: Organisation, run_id: int) -> str:
    return f"avis-run-{organisation.slug}-{run_id}"


def robot_workflow_id(organisation: Organisation) -> str:
    return f"avis-robot-{organisation.slug}"


def notice_start(notice: Notice, *, organisation: Organisation, entity: LegalEntity, client: Client,
                 settings: Settings, alert_at: datetime | None, due_at: datetime) -> StartSpec:
    inp = NoticeInput(notice.id, organisation.id, settings.mail_task_queue, alert_at, due_at + CLOSE_AFTER_DUE)
    name = " ".join(part for part in (client.title, client.first_name, client.last_name) if part)
    return start_spec(
        notice.workflow_id, NOTICE, inp, task_queue=settings.task_queue,
        summary=f"Avis d'échéance n°{notice.number} ({entity.name}) — {name}, dossier {client.number}",
        RelaisOrganisation=organisation.slug, RelaisDomain="notices", RelaisPerson=client.number,
        RelaisDocument=str(notice.number), RelaisFamily="Avis d'échéance", RelaisStatus=LABELS[notice.status],
        RelaisCampaign=str(notice.run_id) if notice.run_id else None)


def run_start(run: NoticeRun, *, organisation: Organisation, entity: LegalEntity, settings: Settings) -> StartSpec:
    inp = RunInput(run.id, organisation.id, settings.task_queue, settings.mail_task_queue)
    return start_spec(
        run_workflow_id(organisation, run.id), NOTICE_RUN, inp, task_queue=settings.task_queue,
        summary=f"Édition des avis d'échéance n°{run.id} ({entity.name}) par {run.created_by_name}",
        RelaisOrganisation=organisation.slug, RelaisDomain="notices", RelaisCampaign=str(run.id),
        RelaisFamily="Édition des avis d'échéance")


def robot_start(organisation: Organisation, *, settings: Settings) -> StartSpec:
    inp = RobotInput(organisation.id, settings.mail_task_queue, settings.task_queue)
    return start_spec(
        robot_workflow_id(organisation), MAIL_ROBOT, inp, task_queue=settings.task_queue,
        summary=f"Automate d'envoi des avis d'échéance — {organisation.name}",
        RelaisOrganisation=organisation.slug, RelaisDomain="notices", RelaisFamily="Automate d'envoi")
