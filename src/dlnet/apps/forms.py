"""The server's form fields, made from a typed config's field metadata, as the command line's flags are.

:func:`form_options` decorates a FastAPI endpoint with one ``Form`` field per option it names,
each made from the option's declaration (:mod:`dlnet.config`): its help is the field's
description, its range FastAPI's bounds (``ge``, ``le``, ``gt``), its choices a ``Literal``. So
``POST /v1/colorize`` documents and checks ``size``, ``saturation``, ``format``... exactly as
:class:`~dlnet.infer.options.InferenceOptions` declares them (a value out of range is a 422
naming the field), and nothing is typed twice. The endpoint receives the fields a request gave
as one dict, ``options``.

Example:
    >>> from dlnet.infer.options import InferenceOptions
    >>> form = form_parameter(InferenceOptions, "quality").annotation.__metadata__[0]
    >>> form.description, form.metadata
    ('JPEG and WebP quality (default: 95)', [Ge(ge=1), Le(le=100)])
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import MISSING
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Literal, Optional

from fastapi import Form

from dlnet.config import options as options_of
from dlnet.config import value_type

__all__ = ["form_options", "form_parameter"]


def form_parameter(config: type, name: str, default_text: object = None, **bounds) -> inspect.Parameter:
    """The keyword parameter that makes field ``name`` of ``config`` a form field (None when not
    sent). ``bounds`` override the declared ones (``le=`` the server's own limit; ``choices=`` a
    subset it can answer with); ``default_text`` says what a request that sends nothing gets."""
    spec = options_of(config)[name]
    choices = bounds.pop("choices", spec.choices)
    kind = Literal[tuple(choices)] if choices is not None else value_type(config, name)
    limits = {"ge": spec.low, "le": spec.high, "gt": 0 if spec.positive else None, **bounds}
    declared = {f.name: f.default for f in dataclasses.fields(config)}[name]
    default = next((d for d in (default_text, spec.none, declared) if d is not None and d is not MISSING), None)
    description = spec.help + (f" (default: {default})" if default is not None else "")
    form = Form(description=description, **{k: v for k, v in limits.items() if v is not None})
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Optional[kind], form])


def form_options(config: type, skip: Sequence[str] = (), defaults: Mapping[str, object] | None = None,
                 bounds: Mapping[str, Mapping] | None = None) -> Callable:
    """Decorate an async endpoint whose keyword ``options`` is to receive the fields of ``config``
    that a request sent (a dict, name -> value): FastAPI sees one form field per option whose
    metadata says ``form`` (but ``skip``, which the endpoint takes itself) in its place
    (:func:`form_parameter`, with ``defaults[name]`` and ``bounds[name]``)."""
    defaults, bounds = defaults or {}, bounds or {}
    names = [n for n, spec in options_of(config).items() if spec.form and n not in skip]

    def decorate(endpoint: Callable) -> Callable:
        signature = inspect.signature(endpoint)
        kept = [p for p in signature.parameters.values() if p.name != "options"]
        fields = [form_parameter(config, n, defaults.get(n), **bounds.get(n, {})) for n in names]

        @functools.wraps(endpoint)
        async def call(**kwargs):
            sent = {n: v for n in names if (v := kwargs.pop(n, None)) is not None}
            return await endpoint(options=sent, **kwargs)

        call.__signature__ = signature.replace(parameters=[*kept, *fields])  # what FastAPI reads
        return call

    return decorate
