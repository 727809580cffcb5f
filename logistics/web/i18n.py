"""Languages of the pages (English, Hindi) and Indian formats of numbers and dates.

The language comes from the remembered switch (a cookie), else the browser's Accept-Language.
Numbers use the en-IN / hi-IN patterns (lakh grouping: 1,00,000); dates and times are shown in
the site time zone (setting site.timezone).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import weakref
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from babel import Locale, dates, numbers
from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale, get_translations
from jinja2 import pass_context
from markupsafe import Markup

from logistics.config import Settings

LANGUAGES = {"en": "English", "hi": "हिन्दी"}
COOKIE = "lang"
# Babel locales giving the Indian patterns of each language.
FORMAT_LOCALES = {"en": "en_IN", "hi": "hi_IN"}
TRANSLATIONS = Path(__file__).parent / "translations"


def select_language() -> str:
    """The remembered choice, else the browser's best match, else English."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def language() -> str:
    """The language of this request ('en' or 'hi')."""
    return str(get_locale() or "en").split("_")[0]


class PageState:
    """What a request's formatting asks for again and again, found once per request.

    A page formats hundreds of numbers, times and strings, and each wants the request's
    language, catalog or time zone. Flask keeps them behind `g`, `request` and `current_app`,
    whose every access costs about as much as formatting a number. So the request's state is
    kept in a context variable of its own, set when the request begins and cleared when it ends
    (init_i18n). Outside a request, or if it was not set, `_per_request` keeps a value on `g` as
    before: the state is only ever a shortcut to the same answers.
    """

    __slots__ = ("fmt_locale", "catalog", "zone", "kept")

    def __init__(self) -> None:
        self.fmt_locale: str | None = None
        self.catalog: Any = None
        self.zone: dt.tzinfo | None = None
        self.kept: dict[Hashable, Any] | None = None  # the catalog's kept texts (_kept)


_PAGE_STATE: contextvars.ContextVar[PageState | None] = contextvars.ContextVar(
    "coldchain_page_state", default=None
)


def _begin_page() -> None:
    _PAGE_STATE.set(PageState())


def _end_page(_error: BaseException | None = None) -> None:
    _PAGE_STATE.set(None)


def _per_request(name: str, find: Callable[[], Any]) -> Any:
    """The request's value of a PageState slot, found once: kept in the request's PageState, or
    on `g` when the request has none (a request context made without before_request)."""
    holder: Any = _PAGE_STATE.get()
    if holder is None:
        holder = g
    value = getattr(holder, name, None)
    if value is None:
        value = find()
        setattr(holder, name, value)
    return value


def _fmt_locale() -> str:
    # Asked once per number: kept for the request (a district's table shows a thousand).
    return str(_per_request("fmt_locale", lambda: FORMAT_LOCALES.get(language(), "en_IN")))


@functools.lru_cache(maxsize=16)
def _number_pattern(digits: int) -> numbers.NumberPattern:
    # Parsed once: a district's table shows a thousand numbers, and parsing dominated its time.
    return numbers.parse_pattern("#,##,##0" + ("." + "0" * digits if digits else ""))


@functools.lru_cache(maxsize=8)
def _babel_locale(code: str) -> Locale:
    return Locale.parse(code)


def number(value: Any, digits: int = 0) -> str:
    """A number with Indian grouping (12,34,567); '—' for none."""
    if value is None:
        return "—"
    if digits == 0 and type(value) is int and _every_language_plain():
        return _indian_grouping(value)  # the same in every language: no need to ask which
    code = _fmt_locale()
    if digits == 0 and type(value) is int and _plain_digits(code):
        return _indian_grouping(value)
    return _number_pattern(digits).apply(value, _babel_locale(code))


def _indian_grouping(value: int) -> str:
    # Whole numbers without babel (a district's table shows hundreds, at 60 us each there):
    # the last three digits, then pairs. Under a lakh that is the Western grouping.
    if -100_000 < value < 100_000:
        return f"{value:,}"
    digits = str(abs(value))
    head, groups = digits[:-3], [digits[-3:]]
    while head:
        groups.insert(0, head[-2:])
        head = head[:-2]
    return ("-" if value < 0 else "") + ",".join(groups)


@functools.lru_cache(maxsize=1)
def _every_language_plain() -> bool:
    """Whether every language of the pages writes whole numbers as _indian_grouping does.

    Then a whole number's text does not depend on the request's language, which costs a look-up
    in the request's context per number (a district's planner shows five hundred).
    """
    return all(_plain_digits(code) for code in FORMAT_LOCALES.values())


@functools.lru_cache(maxsize=8)
def _plain_digits(code: str) -> bool:
    """Whether the locale writes whole numbers as _indian_grouping does (Latin digits, ',', '-')."""
    samples = (0, 7, 999, 1000, 123456, -1234567, 10**12)
    locale = _babel_locale(code)
    return all(_number_pattern(0).apply(n, locale) == _indian_grouping(n) for n in samples)


def date(value: dt.date | None, style: str = "medium") -> str:
    """A calendar date in the language's Indian format."""
    if value is None:
        return "—"
    code = _fmt_locale()
    if style in ("short", "medium", "long", "full") and type(value) is dt.date:
        # A day's text in a style is the same all day: kept (babel's format_date looks the
        # pattern up and parses it on every call, and planners and lists show many dates).
        return _date_text(code, style, value)
    return dates.format_date(value, format=style, locale=code)


@functools.lru_cache(maxsize=16)
def _datetime_patterns(code: str, style: str) -> tuple[str, Any, Any]:
    # What babel's format_datetime looks up and parses on every call, once: a movements list
    # shows a hundred timestamps, and the look-ups were most of the lot trace page's time.
    locale = _babel_locale(code)
    return (
        str(locale.datetime_formats[style]).replace("'", ""),
        dates.parse_pattern(locale.date_formats[style]),
        dates.parse_pattern(locale.time_formats[style]),
    )


@functools.lru_cache(maxsize=8)
def _zone(name: str) -> dt.tzinfo:
    return dates.get_timezone(name)


def _site_zone() -> dt.tzinfo:
    from flask import current_app

    zone: dt.tzinfo = _per_request(
        "zone", lambda: _zone(current_app.extensions["coldchain"].settings.site_timezone)
    )
    return zone


def datetime(value: dt.datetime | None, style: str = "short") -> str:
    """A timestamp shown in the site time zone (babel's format_datetime, patterns kept)."""
    if value is None:
        return "—"
    if value.tzinfo is None:  # naive means UTC, as babel takes it
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(_site_zone())
    code = _fmt_locale()
    joined, date_pattern, time_pattern = _datetime_patterns(code, style)
    if _parts_apart(code, style):
        # The date's text depends on the day only and the time's on the time of day only: a
        # movements list repeats both, and each babel apply costs tens of microseconds.
        shown = local.timetz().replace(microsecond=0)
        time_text = _time_text(
            code, style, shown if _shows_seconds(code, style) else shown.replace(second=0)
        )
        date_text = _date_text(code, style, local.date())
    else:
        locale = _babel_locale(code)
        time_text, date_text = time_pattern.apply(local, locale), date_pattern.apply(local, locale)
    return joined.replace("{0}", time_text).replace("{1}", date_text)


@functools.lru_cache(maxsize=16)
def _parts_apart(code: str, style: str) -> bool:
    """Whether the style's time shows no zone and no fraction of a second: its text then follows
    from the time of day to the second alone, and the date's from the day alone."""
    _, _, time_pattern = _datetime_patterns(code, style)
    return not any(letter in time_pattern.pattern for letter in "zZvVOXxSA")


@functools.lru_cache(maxsize=16)
def _shows_seconds(code: str, style: str) -> bool:
    return "s" in _datetime_patterns(code, style)[2].pattern


@functools.lru_cache(maxsize=4096)
def _date_text(code: str, style: str, day: dt.date) -> str:
    return _datetime_patterns(code, style)[1].apply(day, _babel_locale(code))


@functools.lru_cache(maxsize=4096)
def _time_text(code: str, style: str, time: dt.time) -> str:
    moment = dt.datetime.combine(dt.date(2000, 1, 1), time)
    return _datetime_patterns(code, style)[2].apply(moment, _babel_locale(code))


def in_request_language(function: Callable[..., Any]) -> Callable[..., Any]:
    """A template filter whose text depends on the request's language.

    Jinja folds a filter of constant arguments (`1|vvm`) into the compiled template, which is
    compiled once per process: the text would stay in the language of the first request that
    used the template. A filter that takes the template's context is never folded.
    """

    @pass_context
    def in_language(_context: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return in_language


@pass_context
def _num(_context: Any, value: Any, digits: int = 0) -> str:
    """The `num` filter: number() in the request's language (as in_request_language makes it),
    with a whole number under a lakh written at once when every language writes it alike: a
    district's tables show hundreds, mostly small counts."""
    if (
        digits == 0
        and type(value) is int
        and -100_000 < value < 100_000
        and _every_language_plain()
    ):
        return f"{value:,}"
    return number(value, digits)


def init_i18n(app: Flask, settings: Settings) -> None:
    """Install flask-babel with the pages' translations and the format filters."""
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DEFAULT_TIMEZONE"] = settings.site_timezone
    Babel(app, locale_selector=select_language, timezone_selector=lambda: settings.site_timezone)
    app.before_request(_begin_page)
    app.teardown_request(_end_page)
    app.jinja_env.filters.update(
        num=_num,
        day=in_request_language(date),
        when=in_request_language(datetime),
    )
    app.jinja_env.add_extension("jinja2.ext.i18n")
    # flask-babel's template gettext looks up the domain, the context and the locale again for
    # every string (a store page has over a hundred); these take the request's catalog once.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: _catalog().ugettext(s),
        ngettext=lambda s, p, n: _catalog().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _catalog().upgettext(c, s),
        npgettext=lambda c, s, p, n: _catalog().unpgettext(c, s, p, n),
    )
    app.jinja_env.globals["_"] = template_gettext


# Texts as pages show them, per catalog: a template's strings (by the string) and the words of
# codes (by a tuple). flask-babel keeps one catalog per language for the life of the process; the
# weak keys let a catalog it drops go with its texts.
_KEPT: weakref.WeakKeyDictionary[Any, dict[Hashable, Any]] = weakref.WeakKeyDictionary()
_MAX_KEPT = 5000  # templates and codes make a few hundred: a bound, should one translate data


def _kept(catalog: Any) -> dict[Hashable, Any]:
    kept = _KEPT.get(catalog)
    if kept is None or len(kept) >= _MAX_KEPT:
        kept = _KEPT[catalog] = {}
    return kept


def kept_translation(key: tuple[Hashable, ...], translate: Callable[[], str]) -> str:
    """translate() in the request's language, kept per language for later requests.

    For the words of codes (labels): translate must give the same text for the same key in the
    same language. Outside a request it is simply called.
    """
    if not has_request_context():
        return translate()
    kept: dict[Hashable, Any] = _per_request("kept", lambda: _kept(_catalog()))
    text = kept.get(key)
    if text is None:
        text = kept[key] = translate()
    return str(text)


@pass_context
def template_gettext(context: Any, string: str, /, **variables: Any) -> str:
    """The templates' `_()`: Jinja's newstyle gettext, with a string's shown text kept.

    Same answer as Jinja's: the translation is always a format string (`%%` shows one `%`), and
    under autoescape it is markup whose variables are escaped. A page shows a hundred constant
    strings, and each went through two context calls, a catalog look-up, a Markup and a `%`:
    a string without variables is now looked up once per catalog.
    """
    catalog = _catalog()
    if not context.eval_ctx.autoescape:
        return str(catalog.ugettext(string) % variables)
    if variables:
        return Markup(catalog.ugettext(string)) % variables
    kept = _kept(catalog)
    text: Markup | None = kept.get(string)
    if text is None:
        text = kept[string] = Markup(catalog.ugettext(string)) % {}
    return text


def _catalog() -> Any:
    """The request's translations (flask-babel's), kept for the rest of the request."""
    return _per_request("catalog", get_translations)
