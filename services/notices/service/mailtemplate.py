"""The notices' mail: subject, HTML and text bodies with the seed's merge fields in braces ({Adr_Nom}…).

Fields are replaced by plain substitution (no template code runs); values are escaped in the HTML body. An unknown
field is refused when the template is saved, with the part and line it is on.
"""

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.notices.models import Client, Contract, LegalEntity, Notice, Receipt
from services.notices.service.fields import civility
from services.notices.service.notice_pdf import euros

FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# name → what it holds (shown on the template page)
FIELDS: dict[str, str] = {
    "Adr_Titre": "Titre du client (M., Mme…)",
    "Adr_Nom": "Nom du client",
    "Adr_Prenom": "Prénom du client",
    "Adr_Adresse": "Adresse du client (rue)",
    "Adr_CP": "Code postal du client",
    "Adr_Ville": "Ville du client",
    "Dossier": "N° de dossier",
    "Charge_Clientele": "Chargé de clientèle",
    "Num_Avis": "N° de l'avis d'échéance",
    "Contrat": "N° de contrat",
    "Compagnie": "Compagnie (assureur)",
    "Categorie": "Catégorie",
    "Periode_Du": "Début de la période (jj/mm/aaaa)",
    "Periode_Au": "Fin de la période (jj/mm/aaaa)",
    "Montant": "Montant total TTC (ex. 1 234,56 €)",
    "Date_Echeance": "Date d'échéance (jj/mm/aaaa)",
    "Entite_Nom": "Nom de l'entité juridique",
    "Entite_Tel": "Téléphone de l'entité",
    "Entite_Email": "E-mail de l'entité",
    "Entite_Ville": "Ville de l'entité",
}
PARTS = {"subject": "Objet", "html_body": "Corps HTML", "text_body": "Corps texte"}


@dataclass(frozen=True)
class TemplateError:
    part: str
    line: int
    field: str

    def __str__(self) -> str:
        if not self.field:
            return f"{PARTS[self.part]} : obligatoire"
        return f"{PARTS[self.part]}, ligne {self.line} : champ inconnu « {{{self.field}}} »"


def check(parts: Mapping[str, str]) -> list[TemplateError]:
    """Every unknown field of every part, with its line (1-based)."""
    errors = []
    for part, text in parts.items():
        for number, line in enumerate(text.splitlines() or [""], start=1):
            errors += [TemplateError(part, number, m.group(1)) for m in FIELD.finditer(line)
                       if m.group(1) not in FIELDS]
    errors += [TemplateError(part, 1, "") for part in PARTS if not parts.get(part, "").strip()]
    return errors


def values(*, notice: Notice, client: Client, contract: Contract, receipt: Receipt,
           entity: LegalEntity) -> dict[str, str]:
    day = "%d/%m/%Y"
    return {
        "Adr_Titre": civility(client.title).title, "Adr_Nom": client.last_name, "Adr_Prenom": client.first_name or "",
        "Adr_Adresse": " ".join(p for p in (client.address1, client.address2) if p), "Adr_CP": client.postal_code,
        "Adr_Ville": client.town, "Dossier": client.number, "Charge_Clientele": client.account_manager or "",
        "Num_Avis": str(notice.number), "Contrat": contract.number, "Compagnie": contract.insurer,
        "Categorie": contract.category, "Periode_Du": receipt.period_start.strftime(day),
        "Periode_Au": receipt.period_end.strftime(day), "Montant": euros(receipt.total_ttc),
        "Date_Echeance": receipt.effect_date.strftime(day), "Entite_Nom": entity.name,
        "Entite_Tel": entity.phone or "", "Entite_Email": entity.email or "", "Entite_Ville": entity.letter_town,
    }


def merge(text: str, fields: Mapping[str, str], *, escape: bool = False) -> str:
    def one(match: re.Match[str]) -> str:
        value = fields.get(match.group(1), match.group(0))
        return html.escape(value) if escape else value

    return FIELD.sub(one, text)


def subject_line(template: str, fields: Mapping[str, str]) -> str:
    """One line, whatever the values hold (a header cannot carry a line break)."""
    return " ".join(merge(template, fields).split())
