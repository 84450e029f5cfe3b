"""Campagnes: table, create / edit, recipients, launch (once), live progress, result lists and exports."""

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.auth import CurrentUser, DbSession, Manager
from core.db import scoped
from core.excel import write_xlsx
from core.models import User
from core.settings import get_settings
from core.ui import author_names, flash, paginate, render_page
from services.campaigns.models import Campaign, WorkflowDefinition
from services.campaigns.service import campaigns as service
from services.campaigns.service import launch, reach
from services.campaigns.service.lists import list_lists, recipients_query
from services.campaigns.service.mailtemplates import list_templates

router = APIRouter(prefix="/campagnes")
RESULT_STATES = {"envoyes": ("sent", "Liste des envois réussis"), "erreurs": ("error", "Liste des envois en erreur")}


def _campaign(session: DbSession, user: User, campaign_id: int) -> Campaign:
    campaign = service.get_campaign(session, organisation_id=user.organisation_id, campaign_id=campaign_id)
    if campaign is None:
        raise HTTPException(404, "Cette campagne n'existe pas.")
    return campaign


def _form_page(request: Request, session: DbSession, user: User, form: service.CampaignForm,
               errors: dict[str, str], campaign: Campaign | None, status: int = 200) -> HTMLResponse:
    return render_page(request, "campaign_form.html", status, user=user, form=form, errors=errors, campaign=campaign,
                       lists=list_lists(session, organisation_id=user.organisation_id),
                       templates=list_templates(session, organisation_id=user.organisation_id),
                       definitions=_definitions(session, user, for_campaigns=True), kinds=service.KIND_LABELS)


def _definitions(session: DbSession, user: User, *, for_campaigns: bool = False) -> list[WorkflowDefinition]:
    """The organisation's workflows; `for_campaigns`: only those a campaign may use (Contraventions ones follow
    fines up, they are never offered in the campaign form's picker)."""
    stmt = scoped(WorkflowDefinition, user.organisation_id).order_by(WorkflowDefinition.name)
    if for_campaigns:
        stmt = stmt.where(WorkflowDefinition.family != "contraventions")
    return list(session.scalars(stmt))


@router.get("", response_class=HTMLResponse)
def list_campaigns(request: Request, user: CurrentUser, session: DbSession, statut: str = "", archivees: bool = False,
                   page: int = 1) -> HTMLResponse:
    result = paginate(session, service.campaigns_query(user.organisation_id, archived=archivees, status=statut),
                      page=page)
    counts = service.progress_by_campaign(session, [c.id for c in result.items])
    templates = {t.id: t.name for t in list_templates(session, organisation_id=user.organisation_id)}
    definitions = {d.id: d.name for d in _definitions(session, user)}
    return render_page(request, "campaigns.html", user=user, page=result, counts=counts, templates=templates,
                       definitions=definitions, kinds=service.KIND_LABELS,
                       names=author_names(session, result.items), statut=statut, archivees=archivees,
                       status_labels=service.STATUS_LABELS)


@router.get("/nouvelle", response_class=HTMLResponse)
def new_campaign(request: Request, user: Manager, session: DbSession) -> HTMLResponse:
    return _form_page(request, session, user, service.CampaignForm(), {}, None)


@router.post("/nouvelle", response_class=HTMLResponse)
def create_campaign(request: Request, user: Manager, session: DbSession, name: Annotated[str, Form()] = "",
                    list_id: Annotated[int | None, Form()] = None, kind: Annotated[str, Form()] = "email",
                    template_id: Annotated[int | None, Form()] = None,
                    workflow_definition_id: Annotated[int | None, Form()] = None) -> Response:
    form = service.CampaignForm(name, list_id, kind, template_id, workflow_definition_id)
    return _submit(request, session, user, form, None)


@router.get("/{campaign_id}", response_class=HTMLResponse)
def show_campaign(request: Request, campaign_id: int, user: CurrentUser, session: DbSession) -> HTMLResponse:
    campaign = _campaign(session, user, campaign_id)
    settings = get_settings()
    unable, unable_total = (reach.unable_recipients(session, campaign=campaign) if campaign.status == "pending"
                            else ([], 0))
    return render_page(request, "campaign.html", user=user, campaign=campaign, unable=unable,
                       unable_total=unable_total,
                       progress=service.progress(session, campaign), status_labels=service.STATUS_LABELS,
                       names=author_names(session, [campaign]), templates={t.id: t.name for t in list_templates(
                           session, organisation_id=user.organisation_id)},
                       lists={dl.id: dl.name for dl in list_lists(session, organisation_id=user.organisation_id)},
                       definitions={d.id: d.name for d in _definitions(session, user)}, kinds=service.KIND_LABELS,
                       temporal_url=f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
                                    f"/workflows/campaign-{campaign.id}")


@router.get("/{campaign_id}/progression", response_class=HTMLResponse)
def campaign_progress(request: Request, campaign_id: int, user: CurrentUser, session: DbSession) -> HTMLResponse:
    campaign = _campaign(session, user, campaign_id)
    return render_page(request, "_campaign_progress.html", campaign=campaign,
                       progress=service.progress(session, campaign), status_labels=service.STATUS_LABELS)


@router.get("/{campaign_id}/modifier", response_class=HTMLResponse)
def edit_campaign(request: Request, campaign_id: int, user: Manager, session: DbSession) -> Response:
    campaign = _campaign(session, user, campaign_id)
    if campaign.status != "pending":
        flash(request, "Une campagne lancée ne peut plus être modifiée.", "error")
        return RedirectResponse(f"/campagnes/{campaign.id}", status_code=303)
    form = service.CampaignForm(campaign.name, campaign.list_id, campaign.kind, campaign.template_id,
                                campaign.workflow_definition_id)
    return _form_page(request, session, user, form, {}, campaign)


@router.post("/{campaign_id}/modifier", response_class=HTMLResponse)
def update_campaign(request: Request, campaign_id: int, user: Manager, session: DbSession,
                    name: Annotated[str, Form()] = "", list_id: Annotated[int | None, Form()] = None,
                    kind: Annotated[str, Form()] = "email", template_id: Annotated[int | None, Form()] = None,
                    workflow_definition_id: Annotated[int | None, Form()] = None) -> Response:
    campaign = _campaign(session, user, campaign_id)
    form = service.CampaignForm(name, list_id, kind, template_id, workflow_definition_id)
    return _submit(request, session, user, form, campaign)


def _submit(request: Request, session: DbSession, user: User, form: service.CampaignForm,
            campaign: Campaign | None) -> Response:
    errors = service.validate(session, organisation_id=user.organisation_id, form=form)
    if errors:
        return _form_page(request, session, user, form, errors, campaign, 422)
    try:
        saved = service.save(session, user=user, form=form, campaign=campaign)
    except service.CampaignRefused as exc:
        flash(request, str(exc), "error")
        return RedirectResponse(f"/campagnes/{campaign.id if campaign else ''}", status_code=303)
    flash(request, f"La campagne « {saved.name} » est enregistrée.")
    return RedirectResponse(f"/campagnes/{saved.id}", status_code=303)


@router.get("/{campaign_id}/destinataires", response_class=HTMLResponse)
def campaign_recipients(request: Request, campaign_id: int, user: CurrentUser, session: DbSession,
                        page: int = 1) -> HTMLResponse:
    """The drivers the campaign's list selects now (after launch: those it was sent to)."""
    campaign = _campaign(session, user, campaign_id)
    dlist = next(dl for dl in list_lists(session, organisation_id=user.organisation_id) if dl.id == campaign.list_id)
    drivers = paginate(session, recipients_query(user.organisation_id, dlist.filters), page=page, per_page=50)
    return render_page(request, "campaign_recipients.html", user=user, campaign=campaign, dlist=dlist, page=drivers)


@router.post("/{campaign_id}/lancer")
def launch_campaign(request: Request, campaign_id: int, user: Manager, session: DbSession,
                    leave_out: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "") -> RedirectResponse:
    """Launch from the campaign's page, or from the table's icon (`back=liste`: the answer shows on the table)."""
    campaign = _campaign(session, user, campaign_id)
    page = "/campagnes" if back == "liste" else f"/campagnes/{campaign.id}"
    try:
        if back == "liste" and campaign.status == "pending":
            launch.check_launchable(session, campaign=campaign)
            if unable := reach.unable_recipients(session, campaign=campaign)[1]:
                # Leaving out who cannot answer, or not, is chosen on the campaign's page before the launch.
                flash(request, f"Avant le lancement : {unable} destinataire(s) ne pourront pas répondre. Choisissez "
                               "ci-dessous de les laisser de côté ou non, puis lancez la campagne.", "error")
                return RedirectResponse(f"/campagnes/{campaign.id}", status_code=303)
        launch.launch_campaign(session, get_settings(), campaign=campaign, user=user, leave_out_unable=leave_out == "1")
    except service.CampaignRefused as exc:
        session.rollback()
        flash(request, str(exc), "error")
        return RedirectResponse(page, status_code=303)
    session.commit()
    flash(request, f"Lancement de la campagne : « {campaign.name} » réussi")
    return RedirectResponse(page, status_code=303)


@router.post("/{campaign_id}/archiver")
def archive_campaign(request: Request, campaign_id: int, user: Manager, session: DbSession) -> RedirectResponse:
    campaign = _campaign(session, user, campaign_id)
    try:
        service.archive(session, campaign=campaign, user=user)
    except service.CampaignRefused as exc:
        flash(request, str(exc), "error")
        return RedirectResponse(f"/campagnes/{campaign.id}", status_code=303)
    flash(request, f"La campagne « {campaign.name} » est archivée.")
    return RedirectResponse("/campagnes", status_code=303)


@router.post("/{campaign_id}/desarchiver")
def unarchive_campaign(request: Request, campaign_id: int, user: Manager, session: DbSession) -> RedirectResponse:
    campaign = _campaign(session, user, campaign_id)
    try:
        service.unarchive(session, campaign=campaign, user=user)
    except service.CampaignRefused as exc:
        flash(request, str(exc), "error")
        return RedirectResponse(f"/campagnes/{campaign.id}", status_code=303)
    flash(request, f"La campagne « {campaign.name} » est désarchivée.")
    return RedirectResponse("/campagnes", status_code=303)


@router.get("/{campaign_id}/{kind}", response_class=HTMLResponse)
def campaign_results(request: Request, campaign_id: int, kind: str, user: CurrentUser, session: DbSession,
                     page: int = 1) -> Response:
    """"Liste des envois réussis" / "en erreur", or their XLSX export (`…/envoyes.xlsx`)."""
    name, _, extension = kind.partition(".")
    if name not in RESULT_STATES or extension not in ("", "xlsx"):
        raise HTTPException(404, "Page introuvable.")
    campaign = _campaign(session, user, campaign_id)
    state, title = RESULT_STATES[name]
    if extension == "xlsx":
        data = write_xlsx(service.RESULT_HEADERS, service.result_rows(session, campaign, state), sheet_title=title[:31])
        filename = f"campagne-{campaign.id}-{name}.xlsx"
        return Response(data, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    rows = paginate(session, service.results_query(campaign, state), page=page, per_page=50)
    return render_page(request, "campaign_results.html", user=user, campaign=campaign, page=rows, title=title,
                       kind=name)
