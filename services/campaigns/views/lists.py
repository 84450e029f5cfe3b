"""Listes de diffusion: table, create / edit with filters, "Afficher les destinataires", delete."""

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from core.auth import CurrentUser, DbSession, Manager
from core.models import User
from core.ui import author_names, flash, paginate, render_page
from services.campaigns.departements import DEPARTEMENTS
from services.campaigns.models import DistributionList
from services.campaigns.service import lists as service

router = APIRouter(prefix="/listes")


def _list(session: DbSession, user: User, list_id: int) -> DistributionList:
    dlist = service.get_list(session, organisation_id=user.organisation_id, list_id=list_id)
    if dlist is None:
        raise HTTPException(404, "Cette liste de diffusion n'existe pas.")
    return dlist


def _form_page(request: Request, session: DbSession, user: User, form: service.ListForm, errors: dict[str, str],
               dlist: DistributionList | None, status: int = 200) -> HTMLResponse:
    return render_page(request, "list_form.html", status, user=user, form=form, errors=errors, dlist=dlist,
                       departements=DEPARTEMENTS, modes=service.MODES, flag_fields=service.FLAG_FIELDS,
                       code_fields=service.CODE_FIELDS, pick_keys=service.PICK_KEYS,
                       pick_choices=service.pick_choices(session, organisation_id=user.organisation_id),
                       code_values=service.code_values(session, organisation_id=user.organisation_id))


@router.get("", response_class=HTMLResponse)
def list_lists(request: Request, user: CurrentUser, session: DbSession) -> HTMLResponse:
    lists = service.list_lists(session, organisation_id=user.organisation_id)
    return render_page(request, "lists.html", user=user, lists=lists, names=author_names(session, lists))


@router.get("/nouvelle", response_class=HTMLResponse)
def new_list(request: Request, user: Manager, session: DbSession) -> HTMLResponse:
    return _form_page(request, session, user, service.ListForm(), {}, None)


class ListFormIn(BaseModel):
    """The posted form: multi-selects arrive as repeated fields."""

    name: str = ""
    departements: list[str] = []
    immatriculation: str = ""
    plaques: list[str] = []
    valideur: str = ""
    valideurs: list[str] = []
    responsable: str = ""
    responsables: list[str] = []
    code_groupe_mode: str = ""
    code_groupe: list[str] = []
    code_societe_mode: str = ""
    code_societe: list[str] = []
    code_imputation_mode: str = ""
    code_imputation: list[str] = []

    def to_form(self) -> service.ListForm:
        return service.ListForm(
            name=self.name, departements=self.departements,
            flags={name: getattr(self, name) for name in service.FLAG_FIELDS},
            codes={name: {"mode": getattr(self, f"{name}_mode"), "values": getattr(self, name)}
                   for name in service.CODE_FIELDS},
            picks={name: getattr(self, key) for name, key in service.PICK_KEYS.items()},
        )


PostedList = Annotated[ListFormIn, Form()]


def _submit(request: Request, session: DbSession, user: User, form: service.ListForm,
            dlist: DistributionList | None) -> Response:
    errors = service.validate(session, organisation_id=user.organisation_id, form=form,
                              list_id=dlist.id if dlist else None, departements=DEPARTEMENTS)
    if errors:
        return _form_page(request, session, user, form, errors, dlist, 422)
    saved = service.save(session, user=user, form=form, dlist=dlist)
    flash(request, f"La liste « {saved.name} » est enregistrée.")
    return RedirectResponse(f"/listes/{saved.id}/destinataires", status_code=303)


@router.post("/nouvelle", response_class=HTMLResponse)
def create_list(request: Request, user: Manager, session: DbSession, posted: PostedList) -> Response:
    return _submit(request, session, user, posted.to_form(), None)


@router.get("/{list_id}/modifier", response_class=HTMLResponse)
def edit_list(request: Request, list_id: int, user: Manager, session: DbSession) -> HTMLResponse:
    dlist = _list(session, user, list_id)
    return _form_page(request, session, user, service.ListForm.from_list(dlist), {}, dlist)


@router.post("/{list_id}/modifier", response_class=HTMLResponse)
def update_list(request: Request, list_id: int, user: Manager, session: DbSession, posted: PostedList) -> Response:
    return _submit(request, session, user, posted.to_form(), _list(session, user, list_id))


@router.get("/{list_id}/destinataires", response_class=HTMLResponse)
def recipients(request: Request, list_id: int, user: CurrentUser, session: DbSession, page: int = 1) -> HTMLResponse:
    dlist = _list(session, user, list_id)
    drivers = paginate(session, service.recipients_query(user.organisation_id, dlist.filters), page=page, per_page=50)
    return render_page(request, "list_recipients.html", user=user, dlist=dlist, page=drivers,
                       departements=DEPARTEMENTS, summary=service.describe(dlist.filters, DEPARTEMENTS))


@router.post("/{list_id}/supprimer")
def delete_list(request: Request, list_id: int, user: Manager, session: DbSession) -> RedirectResponse:
    dlist = _list(session, user, list_id)
    if campaign := service.used_by(session, dlist):
        flash(request, f"La liste « {dlist.name} » est utilisée par la campagne « {campaign} » : "
                       "elle ne peut pas être supprimée.", "error")
    else:
        session.delete(dlist)
        flash(request, f"La liste « {dlist.name} » est supprimée.")
    return RedirectResponse("/listes", status_code=303)
