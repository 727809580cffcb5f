"""The templates' _(): what Jinja's newstyle gettext shows, in the request's language."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

SHOWN = [
    # (template, language, text), written out from the Hindi catalog
    ('{{ _("Home") }}', "en", "Home"),
    ('{{ _("Home") }}', "hi", "मुखपृष्ठ"),
    ('{{ _("%(n)s open alerts", n=3) }}', "en", "3 open alerts"),
    ('{{ _("%(n)s open alerts", n=3) }}', "hi", "3 खुले अलर्ट"),
    # variables are escaped, the translation itself is markup
    ('{{ _("%(n)s open alerts", n="<b>") }}', "en", "&lt;b&gt; open alerts"),
    ('{{ _("a <b>bold</b> word") }}', "en", "a <b>bold</b> word"),
    # always a format string: %% is one %, with or without variables
    ('{{ _("100%% sure") }}', "hi", "100% sure"),
    ('{{ _("%(n)s%% sure", n=5) }}', "en", "5% sure"),
    # without autoescape, variables are not escaped
    (
        '{% autoescape false %}{{ _("%(n)s open alerts", n="<b>") }}{% endautoescape %}',
        "en",
        "<b> open alerts",
    ),
]


@pytest.mark.parametrize(("source", "language", "text"), SHOWN)
def test_a_string_is_shown_as_jinja_shows_it(app, source, language, text):
    template = app.jinja_env.from_string(source)
    with app.test_request_context("/", headers={"Accept-Language": language}):
        assert [template.render(), template.render()] == [text, text]


def test_languages_alternating_each_get_their_own_text(app):
    template = app.jinja_env.from_string('{{ _("Home") }}')
    shown = []
    for language in ("hi", "en", "hi", "en"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            shown.append(template.render())
    assert shown == ["मुखपृष्ठ", "Home", "मुखपृष्ठ", "Home"]
