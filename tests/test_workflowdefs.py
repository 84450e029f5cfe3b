"""Workflows (definitions): the server-side step editor, every validation rule, edit, delete, scoping and roles."""

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import delete, select

from core.db import session_scope, utcnow
from core.models import Organisation, User
from core.security import hash_password
from services.campaigns.models import Campaign, DistributionList, MailTemplate, WorkflowDefinition
from services.campaigns.service import workflowdefs as service
from tests.support.factories import PASSWORD, make_org
from tests.support.web import csrf_from, login, text


class FormFields(HTMLParser):
    """What a browser would post from the page's form: inputs, checked boxes, selected options (no button)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and "name" in a and (a.get("type") != "checkbox" or "checked" in a):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a["name"]
            self.fields.setdefault(a["name"], "")  # no option selected: the first one (all ours start with "")
        elif tag == "option" and self._select and "selected" in a:  # options only ever appear in a select
            self.fields[self._select] = a["value"]


def form_fields(response: httpx.Response) -> dict[str, str]:
    parser = FormFields()
    parser.feed(response.text.split('<form method="post" novalidate>', 1)[1])
    return parser.fields


def make_template(org_id: int, name: str = "Demande d'infos permis") -> int:
    with session_scope() as session:
        template = MailTemplate(organisation_id=org_id, name=name, subject="Votre permis", body="Bonjour {{prenom}}")
        session.add(template)
        session.flush()
        return template.id


def definitions(org_id: int) -> list[WorkflowDefinition]:
    with session_scope() as session:
        rows = list(session.scalars(select(WorkflowDefinition).where(WorkflowDefinition.organisation_id == org_id)
                                    .order_by(WorkflowDefinition.id)))
        session.expunge_all()
        return rows


def mail(template_id: int | str, name: str = "", to: str = "utilisateur", cc: str = "responsable") -> dict[str, Any]:
    return {"type": "mail", "name": name, "to": to, "cc": cc, "template_id": str(template_id), "days": ""}


def wait(days: int | str, name: str = "") -> dict[str, Any]:
    return {"type": "attente", "name": name, "to": "utilisateur", "cc": "", "template_id": "", "days": str(days)}


def posted(token: str, steps: list[dict[str, Any]], *, name: str = "Infos permis",
           family: str = "informations") -> dict[str, str]:
    data = {"csrf_token": token, "name": name, "family": family, "enabled": "1", "action": "save"}
    for i, step in enumerate(steps):
        data.update({f"steps-{i}-{key}": str(value) for key, value in step.items()})
    return data


def error_next_to(response: httpx.Response, field: str, message: str) -> bool:
    return f'<p class="field-error" id="{field}-error">{message}' in text(response)


def test_parse_and_edit_the_step_list() -> None:
    form = service.parse_form({"name": "N", "family": "autres", "steps-1-type": "attente", "steps-1-days": "5",
                       "steps-0-type": "mail", "steps-0-template_id": "7", "steps-x-type": "mail", "action": "add"})
    assert not form.enabled and [s.type for s in form.steps] == ["mail", "attente"]
    assert form.default_names() == ["Envoi mail", "Attente 5j"]
    assert service.apply_action(form, "add") and service.apply_action(form, "insert-0") and len(form.steps) == 4
    assert form.steps[1] == service.StepForm() and form.steps[2].days == "5"
    assert form.default_names() == ["Envoi mail", "Relance", "Attente 5j", "Relance"]
    assert service.apply_action(form, "delete-1") and [s.type for s in form.steps] == ["mail", "attente", "mail"]
    assert not any(service.apply_action(form, bad) for bad in ("delete-3", "insert-9", "delete--1", "x-0", "delete-١"))
    assert len(form.steps) == 3 and service.WorkflowForm().steps == [service.StepForm()]  # starts with a Mail


def test_enabled_contraventions_definition() -> None:
    org, other = make_org(), make_org()

    def add(org_id: int, name: str, family: str, enabled: bool, updated: Any = None) -> int:
        with session_scope() as session:
            row = WorkflowDefinition(organisation_id=org_id, name=name, family=family, enabled=enabled,
                                     steps=[{"type": "attente", "name": "Attente 1j", "days": 1}],
                                     updated_at=updated or utcnow())
            session.add(row)
            session.flush()
            return row.id

    def found(org_id: int) -> int | None:
        with session_scope() as session:
            return getattr(service.enabled_contraventions_definition(session, organisation_id=org_id), "id", None)

    add(other.id, "FPS ailleurs", "contraventions", True)
    assert found(org.id) is None
    add(org.id, "FPS désactivé", "contraventions", False)
    add(org.id, "Infos", "informations", True)
    assert found(org.id) is None
    recent = add(org.id, "FPS récent", "contraventions", True)
    add(org.id, "FPS ancien", "contraventions", True, updated=utcnow() - timedelta(days=3))
    assert found(org.id) == recent


async def test_build_steps_with_add_insert_delete_then_save(http: httpx.AsyncClient) -> None:
    org = make_org()
    permis, relance = make_template(org.id), make_template(org.id, "Relance permis")
    await login(http, org.manager_email)
    page = await http.get("/workflows/nouveau")
    assert page.status_code == 200 and "Paramètres du workflow" in text(page) and "Workflow activé" in text(page)
    assert "Demande d'infos permis" in text(page) and "concerne la gestion des FPS" in text(page)
    fields = form_fields(page)
    assert fields["enabled"] == "1" and fields["steps-0-type"] == "mail" and "steps-1-type" not in fields

    async def press(action: str, **changes: str) -> dict[str, str]:
        response = await http.post("/workflows/nouveau", data={**fields, **changes, "action": action})
        assert response.status_code == 200 and definitions(org.id) == []  # nothing saved until "save"
        return form_fields(response)

    fields = await press("add", name="Infos permis", family="informations", **{
        "steps-0-template_id": str(permis), "steps-0-cc": "responsable"})
    assert fields["steps-0-template_id"] == str(permis) and fields["steps-0-cc"] == "responsable"
    assert fields["steps-1-type"] == "mail" and fields["name"] == "Infos permis" and "steps-2-type" not in fields
    fields = await press("insert-0", **{"steps-1-template_id": str(relance), "steps-1-name": "Relance"})
    assert fields["steps-1-template_id"] == "" and fields["steps-2-template_id"] == str(relance)
    assert fields["steps-2-name"] == "Relance"
    fields = await press("add", **{"steps-1-type": "attente", "steps-1-days": "5"})
    assert fields["steps-1-type"] == "attente" and fields["steps-1-days"] == "5" and "steps-3-type" in fields
    assert "steps-4-type" in (fields := await press("add", **{"steps-3-type": "attente", "steps-3-days": "5"}))
    fields = await press("delete-4")
    assert "steps-4-type" not in fields and fields["steps-3-days"] == "5"
    for unknown in ("delete-4", "explode"):  # a stale or forged button: refused, nothing saved
        assert (await http.post("/workflows/nouveau", data={**fields, "action": unknown})).status_code == 400
    saved = await http.post("/workflows/nouveau", data={**fields, "action": "save"})
    assert saved.status_code == 303 and saved.headers["location"] == "/workflows"
    [definition] = definitions(org.id)
    assert (definition.name, definition.family, definition.enabled) == ("Infos permis", "informations", True)
    assert definition.steps == [
        {"type": "mail", "name": "Envoi mail", "to": "utilisateur", "cc": "responsable", "template_id": permis},
        {"type": "attente", "name": "Attente 5j", "days": 5},
        {"type": "mail", "name": "Relance", "to": "utilisateur", "cc": "", "template_id": relance},
        {"type": "attente", "name": "Attente 5j", "days": 5},
    ]
    page_text = text(await http.get("/workflows"))
    assert "Le workflow « Infos permis » est enregistré." in page_text and "+ Créer un Workflow" in page_text
    for column in ("Nom du workflow", "Famille", "Créé par", "Créé le", "Modifié par", "Modifié le", "Actions"):
        assert f"<th>{column}</th>" in page_text
    assert "<td>Informations</td>" in page_text and "<td>Gestionnaire Test</td>" in page_text
    assert 'data-confirm="Voulez-vous vraiment supprimer le workflow « Infos permis » ?"' in page_text


async def test_each_validation_error_is_shown_next_to_its_field_and_saves_nothing(http: httpx.AsyncClient) -> None:
    org, other = make_org(), make_org()
    template, foreign = make_template(org.id), make_template(other.id)
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/workflows/nouveau")).text)
    assert (await http.post("/workflows/nouveau", data=posted(token, [mail(template)], name="WF-FPS"))).is_redirect
    not_whole, unknown = "Le nombre de jours doit être un nombre entier.", "Ce modèle d'email n'existe pas"
    cases: list[tuple[dict[str, str], str, str]] = [
        (posted(token, [wait(5), mail(template)]), "steps", "La première étape doit être un Mail."),
        (posted(token, []), "steps", "Ajoutez au moins une étape."),
        (posted(token, [mail(template), wait(0)]), "steps-1-days", "Une attente dure au moins un jour."),
        (posted(token, [mail(template), wait("abc")]), "steps-1-days", not_whole),
        (posted(token, [mail(template), wait("2.5")]), "steps-1-days", not_whole),
        (posted(token, [mail(template), wait(5), mail(999_999_999)]), "steps-2-template_id", unknown),
        (posted(token, [mail(template), wait(5), mail(foreign)]), "steps-2-template_id", unknown),
        (posted(token, [mail("")]), "steps-0-template_id", "Choisissez le modèle d'email à envoyer."),
        (posted(token, [mail(template, to="chef")]), "steps-0-to",
         "Choisissez le destinataire : @utilisateur ou @responsable."),
        (posted(token, [mail(template)], name="  "), "name", "Le nom du workflow est obligatoire."),
        (posted(token, [mail(template)], name="wf-fps"), "name", "Un workflow porte déjà ce nom."),
        (posted(token, [mail(template)], family="amendes"), "family", "Choisissez la famille du workflow."),
    ]
    for data, field, message in cases:
        response = await http.post("/workflows/nouveau", data=data)
        assert response.status_code == 422, (field, message)
        assert error_next_to(response, field, message), (field, message)
    [definition] = definitions(org.id)  # only the first one; the same rules on edit leave it as it was
    refused = await http.post(f"/workflows/{definition.id}/modifier", data=posted(token, [wait(3)], name="Autre"))
    assert refused.status_code == 422 and error_next_to(refused, "steps", "La première étape doit être un Mail.")
    [after] = definitions(org.id)
    assert (after.name, after.steps, after.updated_by_id) == ("WF-FPS", definition.steps, None)


async def test_edit_shows_modifie_par_and_toggles_active(http: httpx.AsyncClient) -> None:
    org = make_org()
    template = make_template(org.id)
    with session_scope() as session:
        session.add(User(organisation_id=org.id, email=f"second@{org.slug}.example", full_name="Seconde Gestionnaire",
                         role="manager", password_hash=hash_password(PASSWORD)))
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/workflows/nouveau")).text)
    data = posted(token, [mail(template)], name="WF-Relevé KM", family="compteurs")
    assert (await http.post("/workflows/nouveau", data=data)).status_code == 303
    [definition] = definitions(org.id)
    assert "<td>-</td>" in text(await http.get("/workflows"))  # never modified yet
    await http.post("/logout", data={"csrf_token": token})
    await login(http, f"second@{org.slug}.example")
    edit = await http.get(f"/workflows/{definition.id}/modifier")
    fields = form_fields(edit)
    assert edit.status_code == 200 and fields["name"] == "WF-Relevé KM" and fields["family"] == "compteurs"
    assert fields["enabled"] == "1" and fields["steps-0-template_id"] == str(template)
    del fields["enabled"]  # untick "Workflow activé"
    fields.update({"steps-0-name": "Demande de relevé", "steps-1-type": "attente", "steps-1-days": "7"})
    assert (await http.post(f"/workflows/{definition.id}/modifier", data={**fields, "action": "save"})).is_redirect
    [after] = definitions(org.id)
    assert after.enabled is False and after.created_by_id == definition.created_by_id
    assert after.steps == [{"type": "mail", "name": "Demande de relevé", "to": "utilisateur", "cc": "responsable",
                            "template_id": template}, {"type": "attente", "name": "Attente 7j", "days": 7}]
    listing = text(await http.get("/workflows"))
    assert "<td>Gestionnaire Test</td>" in listing and "<td>Seconde Gestionnaire</td>" in listing
    assert "Désactivé" in listing
    fields = form_fields(await http.get(f"/workflows/{definition.id}/modifier"))
    assert "enabled" not in fields
    await http.post(f"/workflows/{definition.id}/modifier", data={**fields, "enabled": "1", "action": "save"})
    assert definitions(org.id)[0].enabled is True


async def test_delete_is_refused_while_a_campaign_uses_the_workflow(http: httpx.AsyncClient) -> None:
    org = make_org()
    template = make_template(org.id)
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/workflows/nouveau")).text)
    for name in ("WF utilisé", "WF libre"):
        created = await http.post("/workflows/nouveau", data=posted(token, [mail(template)], name=name))
        assert created.status_code == 303
        await http.get(created.headers["location"])  # as a browser does: shows (and consumes) the flash
    used, free = definitions(org.id)
    with session_scope() as session:
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        session.add(dlist)
        session.flush()
        session.add(Campaign(organisation_id=org.id, name="Infos permis 2026", kind="workflow", list_id=dlist.id,
                             workflow_definition_id=used.id))
    assert (await http.post(f"/workflows/{used.id}/supprimer", data={"csrf_token": token})).status_code == 303
    message = "Ce workflow est utilisé par la campagne « Infos permis 2026 » : il ne peut pas être supprimé."
    assert message in text(await http.get("/workflows"))
    assert [d.id for d in definitions(org.id)] == [used.id, free.id]
    deleted = await http.post(f"/workflows/{free.id}/supprimer", data={"csrf_token": token})
    assert deleted.status_code == 303 and [d.id for d in definitions(org.id)] == [used.id]
    assert "Le workflow « WF libre » est supprimé." in text(await http.get("/workflows"))


async def test_another_organisations_workflow_is_not_found(http: httpx.AsyncClient) -> None:
    org, other = make_org(), make_org()
    with session_scope() as session:
        theirs = WorkflowDefinition(organisation_id=other.id, name="Le leur", family="autres", enabled=True,
                                    steps=[{"type": "attente", "name": "Attente 2j", "days": 2}])
        session.add(theirs)
        session.flush()
        theirs_id = theirs.id
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/workflows/nouveau")).text)
    assert "Le leur" not in text(await http.get("/workflows"))
    assert (await http.get(f"/workflows/{theirs_id}/modifier")).status_code == 404
    for path in ("modifier", "supprimer"):
        data = posted(token, [], name="Pris")
        assert (await http.post(f"/workflows/{theirs_id}/{path}", data=data)).status_code == 404
    assert [d.name for d in definitions(other.id)] == ["Le leur"]


async def test_a_viewer_sees_the_table_but_cannot_change_anything(http: httpx.AsyncClient) -> None:
    with session_scope() as session:
        garonne = session.scalar(select(Organisation.id).where(Organisation.slug == "garonne")) or 0
        definition = WorkflowDefinition(organisation_id=garonne, name=f"WF lecture {uuid4().hex[:6]}",
                                        family="autres", enabled=False, steps=[])
        session.add(definition)
        session.flush()
        definition_id = definition.id
    before = [(d.id, d.name, d.steps) for d in definitions(garonne)]
    try:
        await login(http, "lecture@garonne.example")
        listing = await http.get("/workflows")
        assert listing.status_code == 200 and "WF lecture" in text(listing)
        assert "+ Créer un Workflow" not in text(listing) and "/supprimer" not in text(listing)
        token = csrf_from(listing.text)
        assert (await http.get("/workflows/nouveau")).status_code == 403
        for path in ("nouveau", f"{definition_id}/modifier", f"{definition_id}/supprimer"):
            response = await http.post(f"/workflows/{path}", data=posted(token, [], name="Interdit"))
            assert response.status_code == 403, path
        assert [(d.id, d.name, d.steps) for d in definitions(garonne)] == before
    finally:  # the demo organisation is shared by other tests
        with session_scope() as session:
            session.execute(delete(WorkflowDefinition).where(WorkflowDefinition.id == definition_id))


async def test_a_workflow_cannot_be_saved_with_a_deleted_template(http: httpx.AsyncClient) -> None:
    """The manager opened the form, the template was deleted meanwhile: the save is refused next to the step."""
    org = make_org()
    kept, gone = make_template(org.id, "Relevé KM"), make_template(org.id, "Ancien modèle")
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/workflows/nouveau")).text)
    deleted = await http.post(f"/modeles/{gone}/supprimer", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert "Le modèle « Ancien modèle » est supprimé." in text(await http.get("/modeles"))
    refused = await http.post("/workflows/nouveau", data=posted(token, [mail(kept), wait(5), mail(gone)]))
    assert refused.status_code == 422
    assert error_next_to(refused, "steps-2-template_id",
                         "Ce modèle d'email n'existe pas (ou plus) dans votre organisation : choisissez-en un autre.")
    assert definitions(org.id) == []


def test_the_template_check_locks_the_templates_until_the_definition_is_saved() -> None:
    """A deletion waits for a definition being saved with the template, then sees it and refuses."""
    import threading

    from services.campaigns.service import mailtemplates

    org = make_org()
    template_id = make_template(org.id, "Relevé KM")
    with session_scope() as saving:
        step = service.StepForm(template_id=str(template_id))
        form = service.WorkflowForm("WF concurrent", "compteurs", True, [step])
        assert service.validate(saving, organisation_id=org.id, form=form) == {}
        refusal: list[str | None] = []

        def delete_meanwhile() -> None:
            with session_scope() as deleting:
                template = deleting.get(MailTemplate, template_id)
                assert template is not None
                refusal.append(mailtemplates.delete(deleting, template=template))

        deleter = threading.Thread(target=delete_meanwhile)
        deleter.start()
        deleter.join(timeout=1)
        assert deleter.is_alive()  # waiting on the share lock taken by the validation
        saving.add(WorkflowDefinition(organisation_id=org.id, name=form.name, family=form.family,
                                      steps=form.steps_json()))
    deleter.join(timeout=10)
    assert refusal == ["Le modèle « Relevé KM » est utilisé par le workflow « WF concurrent » (étape « Envoi mail ») : "
                       "retirez-le du workflow avant de le supprimer."]
    with session_scope() as session:
        assert session.get(MailTemplate, template_id) is not None


async def test_a_workflow_used_by_a_campaign_cannot_become_contraventions(http: httpx.AsyncClient) -> None:
    org = make_org()
    template = make_template(org.id)
    await login(http, org.manager_email)
    token = csrf_from((await http.get("/workflows/nouveau")).text)
    created = await http.post("/workflows/nouveau", data=posted(token, [mail(template)], family="informations"))
    assert created.status_code == 303
    [definition] = definitions(org.id)
    with session_scope() as session:
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        session.add(dlist)
        session.flush()
        session.add(Campaign(organisation_id=org.id, name="Infos permis 2026", kind="workflow", list_id=dlist.id,
                             workflow_definition_id=definition.id))
    refused = await http.post(f"/workflows/{definition.id}/modifier",
                              data=posted(token, [mail(template)], family="contraventions"))
    assert refused.status_code == 422
    assert error_next_to(refused, "family", "Ce workflow est utilisé par la campagne « Infos permis 2026 » : il ne "
                                            "peut pas passer dans la famille Contraventions (réservée au suivi des "
                                            "amendes).")
    assert [d.family for d in definitions(org.id)] == ["informations"]
