"""Manager templates render in Jinja2's sandbox, with StrictUndefined, escaping HTML only."""

import pytest

from core.rendering import RenderError, render, template_fields, text_to_html


def test_fields_are_substituted_and_html_is_escaped() -> None:
    context = {"prenom": "<b>Zoé</b>", "nom": "Martin"}
    assert render("Bonjour {{prenom}} {{ nom }}", context) == "Bonjour <b>Zoé</b> Martin"
    assert render("Bonjour {{prenom}}", context, html=True) == "Bonjour &lt;b&gt;Zoé&lt;/b&gt;"
    assert text_to_html("A & B\n\nC") == "<p>A &amp; B</p><p>C</p>"
    assert text_to_html("Bonjour <Zoé>,\nà bientôt\n") == "<p>Bonjour &lt;Zoé&gt;,<br>à bientôt</p>"


def test_unknown_field_fails_instead_of_rendering_blank() -> None:
    with pytest.raises(RenderError, match="Champ inconnu"):
        render("Bonjour {{ prenon }}", {"prenom": "Zoé"})


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ prenom.__class__.__init__.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
])
def test_the_sandbox_blocks_python_internals(source: str) -> None:
    with pytest.raises(RenderError):
        render(source, {"prenom": "Zoé"})


def test_template_fields_and_syntax_errors() -> None:
    assert template_fields("{{prenom}} {{ nom }}") == {"prenom", "nom"}
    with pytest.raises(RenderError, match="ligne 2"):
        template_fields("Bonjour\n{{prenom")
