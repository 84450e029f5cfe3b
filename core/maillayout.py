"""The one responsive mail layout: every HTML mail of every service is a document of `mail/layout.html`.

Developer-written mails extend the layout (`{% extends "mail/layout.html" %}`, environment from `mail_environment`);
manager-written bodies, already rendered in the sandbox, are put inside it by `wrap_mail_html`.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

CORE_TEMPLATES = Path(__file__).parent / "templates"


def mail_environment(*directories: Path, **options: Any) -> Environment:
    """Autoescaped, strict environment over `directories` then `core/templates` (where `mail/` lives)."""
    loader = ChoiceLoader([FileSystemLoader(str(d)) for d in directories] + [FileSystemLoader(str(CORE_TEMPLATES))])
    return Environment(loader=loader, autoescape=True, undefined=StrictUndefined, **options)


@lru_cache
def _env() -> Environment:
    return mail_environment()


def wrap_mail_html(body_html: str, *, title: str, preheader: str = "", footer: str = "") -> str:
    """`body_html` (trusted HTML: a sandbox-rendered, escaped body) inside the layout; the rest is escaped text."""
    body = Markup(body_html)  # noqa: S704 (the caller's contract: already rendered and escaped)
    return _env().get_template("mail/layout.html").render(body=body, title=title, preheader=preheader, footer=footer)


def button_html(url: str, label: str, *, secondary: bool = False) -> Markup:
    """A link as a button big enough to tap (44 px high), for bodies built in Python."""
    macros: Any = _env().get_template("mail/macros.html").module
    html: Markup = macros.button(url, label, secondary)  # a macro of an autoescaped environment returns Markup
    return html
