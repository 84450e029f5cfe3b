"""Rendering of manager-written templates: Jinja2 sandbox, StrictUndefined, autoescape for HTML."""

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment


class RenderError(Exception):
    """A template that cannot be rendered; the message is French and says where."""


# HTML bodies are autoescaped: a driver named "<script>" stays text. Subjects and text bodies
# are plain text, so they get their own environment without escaping.
_html_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
_text_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def template_fields(source: str) -> set[str]:
    """Names a template reads (`{{prenom}}` → "prenom"); raises RenderError on a syntax error."""
    try:
        return set(meta.find_undeclared_variables(_text_env.parse(source)))
    except TemplateError as exc:
        raise RenderError(f"Modèle illisible (ligne {getattr(exc, 'lineno', '?')}) : {exc}") from exc


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> Template:
    """Compiling costs far more than rendering: a campaign compiles its template once, not per recipient."""
    return (_html_env if html else _text_env).from_string(source)


def render(source: str, context: dict[str, Any], *, html: bool = False) -> str:
    try:
        return _compiled(source, html).render(context)
    except UndefinedError as exc:
        raise RenderError(f"Champ inconnu dans le modèle : {exc.message}") from exc
    except TemplateError as exc:
        raise RenderError(f"Modèle invalide : {exc}") from exc


def render_text_as_html(source: str, context: dict[str, Any]) -> str:
    """A plain-text template as HTML: values escaped (Markup values kept), blank lines make paragraphs."""
    rendered = render(source, context, html=True)
    paragraphs = [p.strip("\n") for p in rendered.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join("<p>" + p.replace("\n", "<br>") + "</p>" for p in paragraphs)


def text_to_html(text: str) -> str:
    """Plain text body → minimal HTML (escaped, paragraphs kept)."""
    from markupsafe import escape

    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    # str() first: Markup.replace would escape the "<br>" it inserts.
    return "".join("<p>" + str(escape(p.strip("\n"))).replace("\n", "<br>") + "</p>" for p in paragraphs)
