"""The error responses a route documents, each answering the API's Error schema."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from api.openapi import Blueprint, Decorator

View = TypeVar("View", bound=Callable[..., Any])


def documents_errors(blp: Blueprint, *codes: int) -> Decorator:
    """Stack `alt_response` for each status (400 comes with `@blp.arguments` already)."""

    def decorate(view: View) -> View:
        for code in codes:
            view = blp.alt_response(code, response=HTTPStatus(code).name)(view)
        return view

    return decorate
