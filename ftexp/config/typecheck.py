"""Checking one config node against what it describes: a dataclass schema (:mod:`ftexp.config.schema`) or, for a
node with a ``_target_``, the signature of that target. Reports unknown keys (with a "did you mean"), values of the
wrong type where the annotation says so unambiguously, missing keys and interpolations that do not resolve.

Generic and rule-free: it knows annotations and signatures, not what ftexp's groups mean (that is
:mod:`ftexp.config.rules`). Each check appends ``key: problem`` lines to ``problems`` and carries on, so that one
run shows every problem at once.
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from ftexp.config.hints import did_you_mean
from ftexp.config.schema import Instantiable

HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
_UNKNOWN = None  # "cannot tell" in the three-valued type checks below


def check_node(value: Any, schema: Any, key: str, problems: list[str], skip: tuple[str, ...] = ()) -> None:
    """Append to ``problems`` what is wrong with ``value`` (at ``key``; ``""`` for the top) as ``schema``: a
    dataclass, :class:`~ftexp.config.schema.Instantiable`, or a type annotation. Keys in ``skip`` are not checked."""
    if schema is Instantiable:
        _check_instantiable(value, key, problems)
    elif is_dataclass(schema):
        _check_dataclass(value, schema, key, problems, skip)
    elif typing.get_origin(schema) in (typing.Union, types.UnionType) and value is None:
        if type(None) not in typing.get_args(schema):
            problems.append(f"{key}: must not be null")
    elif typing.get_origin(schema) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(schema) if a is not type(None)]
        if len(inner) == 1 and (inner[0] is Instantiable or is_dataclass(inner[0])):
            check_node(value, inner[0], key, problems)
        else:
            _check_type(value, schema, key, problems)
    elif typing.get_origin(schema) is dict and OmegaConf.is_dict(value):
        item_schema = typing.get_args(schema)[1]
        for name in value:
            resolved = _resolved(value, name, f"{key}.{name}", problems)
            if resolved is not _UNRESOLVABLE:
                check_node(resolved, item_schema, f"{key}.{name}", problems)
    else:
        _check_type(value, schema, key, problems)


def _check_dataclass(value: Any, schema: type, key: str, problems: list[str], skip: tuple[str, ...]) -> None:
    if not OmegaConf.is_dict(value):
        problems.append(f"{key or 'config'}: must be a mapping ({schema.__name__}){_got(value)}")
        return
    known = {f.name: f for f in fields(schema)}
    hints = typing.get_type_hints(schema)
    for name in value:
        name = str(name)
        if name in skip:
            continue
        full = _join(key, name)
        if name not in known:
            problems.append(f"unknown key {full}{did_you_mean(name, known)}")
            continue
        resolved = _resolved(value, name, full, problems)
        if resolved is not _UNRESOLVABLE:
            check_node(resolved, hints[name], full, problems)
    for name, spec in known.items():
        required = spec.default is MISSING and spec.default_factory is MISSING
        if required and name not in value:
            problems.append(f"{_join(key, name)}: missing key")


def _check_instantiable(value: Any, key: str, problems: list[str]) -> None:
    if not OmegaConf.is_dict(value) or "_target_" not in value:
        problems.append(f"{key}: must be a mapping with a _target_{_got(value)}")
        return
    target_name = value["_target_"]
    try:
        target = get_object(str(target_name))
    except Exception as err:  # any import failure means the same to the user: the path is wrong
        problems.append(f"{key}._target_: cannot import {target_name!r} ({type(err).__name__}: {err})")
        return
    accepted, hints = _parameters(target)
    for name in value:
        name = str(name)
        if name in HYDRA_KEYS:
            continue
        full = f"{key}.{name}"
        if accepted is not None and name not in accepted:
            problems.append(f"unknown key {full}{did_you_mean(name, accepted)} ({target_name} takes no '{name}')")
            continue
        resolved = _resolved(value, name, full, problems)
        if resolved is _UNRESOLVABLE:
            continue
        if OmegaConf.is_dict(resolved) and "_target_" in resolved:
            _check_instantiable(resolved, full, problems)
        elif name in hints:
            _check_type(resolved, hints[name], full, problems)


def _parameters(target: Any) -> tuple[set[str] | None, dict[str, Any]]:
    """Keyword arguments ``target`` accepts (``None``: any, it takes ``**kwargs``) and their type hints.

    ftexp's own subclasses that take ``**kwargs`` (``PhaseCheckpoint``, ``PhaseEarlyStopping``) forward them to their
    Lightning base, so the base's parameters are accepted too; other ``**kwargs`` may go anywhere (TensorBoardLogger
    passes them to SummaryWriter), so they accept any key.
    """
    accepted: set[str] = set()
    hints: dict[str, Any] = {}
    owners = [c for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]
    for owner in owners:
        function = owner.__init__ if isinstance(target, type) else owner
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return None, hints
        try:
            owner_hints = typing.get_type_hints(function)
        except Exception:  # unresolvable forward references: check names only
            owner_hints = {}
        params = [p for p in signature.parameters.values() if p.name != "self"]
        accepted |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        hints = {**{k: v for k, v in owner_hints.items() if k in accepted}, **hints}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return accepted, hints
        if not getattr(owner, "__module__", "").startswith("ftexp."):
            return None, hints
    return None, hints


def _check_type(value: Any, annotation: Any, key: str, problems: list[str]) -> None:
    if _conforms(value, annotation) is False:
        wrong = "wrong value" if typing.get_origin(annotation) is Literal else "wrong type"
        problems.append(f"{key}: {wrong}: expected {_describe(annotation)}{_got(value)}")


def _conforms(value: Any, annotation: Any) -> bool | None:
    """True or False when ``annotation`` says for sure; ``None`` when it cannot tell (Any, callables, generics)."""
    if annotation is Any or annotation is inspect.Parameter.empty or isinstance(annotation, str | typing.TypeVar):
        return _UNKNOWN
    if OmegaConf.is_dict(value) and "_target_" in value:
        return _UNKNOWN  # instantiated into whatever the target returns
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        answers = [_conforms(value, arg) for arg in args]
        return True if True in answers else (_UNKNOWN if _UNKNOWN in answers else False)
    if origin is Literal:
        return any(type(value) is type(arg) and value == arg for arg in args)
    if annotation is Instantiable:
        return _UNKNOWN
    if origin in (dict, collections.abc.Mapping) or annotation in (dict, collections.abc.Mapping):
        return OmegaConf.is_dict(value) or isinstance(value, dict)
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        return OmegaConf.is_list(value) or isinstance(value, list | tuple)
    if origin is not None:  # Iterable[...], Callable[...], type[...]: not decidable from a config value
        return _UNKNOWN
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation in (str, Path, PurePath, os.PathLike):
        return isinstance(value, str)
    if isinstance(annotation, type):
        if OmegaConf.is_dict(value) or OmegaConf.is_list(value):
            return _UNKNOWN
        return isinstance(value, annotation)
    return _UNKNOWN


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return " or ".join(repr(arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


_UNRESOLVABLE = object()


def _resolved(node: DictConfig, name: str, key: str, problems: list[str]) -> Any:
    """``node[name]`` with interpolations resolved; ``_UNRESOLVABLE`` (and a problem) when that fails."""
    if OmegaConf.is_missing(node, name):
        problems.append(f"{key}: missing value (???); set it on the command line: {key}=...")
        return _UNRESOLVABLE
    try:
        return node[name]
    except Exception as err:  # a resolver or a missing reference: the user must fix the config either way
        raw = OmegaConf.to_container(node, resolve=False).get(name)
        problems.append(f"{key}: cannot resolve {raw!r}: {_first_line(err)}")
        return _UNRESOLVABLE


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _got(value: Any) -> str:
    if OmegaConf.is_dict(value) or isinstance(value, DictConfig):
        return " (got a mapping)"
    if OmegaConf.is_list(value) or isinstance(value, ListConfig):
        return " (got a list)"
    return f" (got {value!r}, {type(value).__name__})"


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
