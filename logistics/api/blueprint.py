"""The API's blueprints: flask-smorest's, with each schema built once per process.

webargs builds a new instance of an argument schema class for every request, and the edge did the
same for every answer it dumps. Building a schema deep-copies its declared fields (and a nested
schema's, once per parent instance): for a movement that was a tenth of its time (issue 17). The
schemas keep no state between loads and dumps, so one instance per class serves every request.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

SchemaT = TypeVar("SchemaT", bound=ma.Schema)


@functools.cache
def kept_schema(schema_class: type[SchemaT]) -> SchemaT:
    """The one instance of a schema class (built with no options) shared by all requests."""
    return schema_class()


class KeptSchemaParser(FlaskParser):
    """webargs' Flask parser, taking a schema class's kept instance instead of a new one."""

    def _get_schema(self, argmap: Any, req: Any) -> ma.Schema:
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            return kept_schema(argmap)
        return super()._get_schema(argmap, req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint whose arguments are parsed with kept schema instances."""

    ARGUMENTS_PARSER = KeptSchemaParser()
