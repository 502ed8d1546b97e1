"""Jinja templating of operator fields, rendered in the worker just before ``execute``.

An operator lists the attributes to render in ``template_fields``; a string among them
(or nested in a list, tuple, set or dict value of one) is a Jinja template rendered
with the run context. A string ending in one of ``template_ext`` is the name of a
template file, looked up in the DAG file's folder, then the DAG's
``template_searchpath``.

As in Airflow: undefined variables raise (``StrictUndefined``), the environment is
sandboxed (``jinja2.sandbox.SandboxedEnvironment``: no ``__class__``/``__globals__``
walks, no unsafe callables), ``user_defined_macros`` and ``user_defined_filters`` come
from the DAG, and ``render_template_as_native_obj=True`` renders to Python objects
(``"{{ [1, 2] }}"`` gives a list) instead of strings.

Rendering may read template files and runs user macros and filters, so it is never done
on the event loop: the runner offloads it to the executor's pool (see ADR
0022). Operators with no template fields skip all of this.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airloop.authoring.xcom import Resolved
from airloop.core.masking import redact
from airloop.exceptions import AirloopError, DagDefinitionError

# Jinja is imported when something is rendered (or a DAG sets Jinja options), not when
# a DAG file imports airloop: most DAG files never render anything.
if TYPE_CHECKING:
    import jinja2

    from airloop.authoring.context import Context
    from airloop.authoring.dag import DAG
    from airloop.authoring.operator import BaseOperator


class TemplateRenderError(AirloopError):
    """A template field could not be rendered (undefined name, bad syntax, missing file)."""


#: DAG arguments about templating (Airflow's names).
DAG_TEMPLATE_ARGS = (
    "template_searchpath",
    "user_defined_macros",
    "user_defined_filters",
    "render_template_as_native_obj",
    "jinja_environment_kwargs",
)


@dataclass(frozen=True, slots=True)
class TemplateSettings:
    """A DAG's templating options, checked when the DAG is defined."""

    searchpath: tuple[str, ...] = ()
    user_defined_macros: Mapping[str, Any] = field(default_factory=dict)
    user_defined_filters: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    native: bool = False
    environment_kwargs: Mapping[str, Any] = field(default_factory=dict)


def pop_template_settings(dag_id: str, args: dict[str, Any]) -> TemplateSettings:
    """Take the templating arguments out of a DAG's extra arguments and check them."""
    where = f"DAG {dag_id!r}"
    searchpath = args.pop("template_searchpath", None)
    if searchpath is None:
        paths: tuple[str, ...] = ()
    elif isinstance(searchpath, (str, os.PathLike)):
        paths = (os.fspath(searchpath),)
    elif isinstance(searchpath, Sequence) and all(
        isinstance(p, (str, os.PathLike)) for p in searchpath
    ):
        paths = tuple(os.fspath(p) for p in searchpath)
    else:
        raise DagDefinitionError(
            f"{where}: template_searchpath must be a folder or a list of folders, "
            f"got {searchpath!r}"
        )
    macros = args.pop("user_defined_macros", None) or {}
    filters = args.pop("user_defined_filters", None) or {}
    for name, value in (("user_defined_macros", macros), ("user_defined_filters", filters)):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise DagDefinitionError(f"{where}: {name} must be a dict with string keys")
    for fname, fn in filters.items():
        if not callable(fn):
            raise DagDefinitionError(f"{where}: user_defined_filters[{fname!r}] is not callable")
    native = args.pop("render_template_as_native_obj", None)
    if native not in (None, True, False):
        raise DagDefinitionError(f"{where}: render_template_as_native_obj must be True or False")
    env_kwargs = args.pop("jinja_environment_kwargs", None) or {}
    if not isinstance(env_kwargs, Mapping):
        raise DagDefinitionError(f"{where}: jinja_environment_kwargs must be a dict")
    if "loader" in env_kwargs:
        raise DagDefinitionError(
            f"{where}: jinja_environment_kwargs cannot set 'loader' "
            "(templates are found through template_searchpath)"
        )
    if env_kwargs:
        import jinja2.sandbox

        try:  # a typo in an option is an error now, not at the first run
            jinja2.sandbox.SandboxedEnvironment(**env_kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"{where}: jinja_environment_kwargs: {exc}") from None
    return TemplateSettings(paths, dict(macros), dict(filters), bool(native), dict(env_kwargs))


@functools.cache
def _environment_class(native: bool) -> type[jinja2.Environment]:
    import jinja2.nativetypes
    import jinja2.sandbox

    if not native:
        return jinja2.sandbox.SandboxedEnvironment

    class NativeSandboxedEnvironment(jinja2.sandbox.SandboxedEnvironment):
        """Native rendering (Python objects, as Jinja's NativeEnvironment) AND the sandbox.

        Airflow's native environment is not sandboxed; ours is, so switching a DAG to
        native rendering does not widen what a template may reach.
        """

        code_generator_class = jinja2.nativetypes.NativeCodeGenerator
        concat = staticmethod(jinja2.nativetypes.native_concat)  # type: ignore[assignment]
        template_class = jinja2.nativetypes.NativeTemplate

    return NativeSandboxedEnvironment


def _searchpath(dag: DAG, settings: TemplateSettings) -> list[str]:
    folder = os.path.dirname(os.path.abspath(dag.fileloc))
    return [folder, *(os.path.join(folder, p) for p in settings.searchpath)]


def build_environment(dag: DAG) -> jinja2.Environment:
    """The Jinja environment of ``dag``'s templates (built once per DAG, see ``environment``)."""
    import jinja2

    settings: TemplateSettings = getattr(dag, "template_settings", TemplateSettings())
    options: dict[str, Any] = {
        "undefined": jinja2.StrictUndefined,
        "keep_trailing_newline": True,  # as Airflow: a rendered script keeps its last newline
        "cache_size": 400,
        **settings.environment_kwargs,
        "loader": jinja2.FileSystemLoader(_searchpath(dag, settings)),
    }
    env = _environment_class(settings.native)(**options)
    env.globals.update(settings.user_defined_macros)
    env.filters.update(settings.user_defined_filters)
    env.filters.setdefault("ds", _ds_filter)
    env.filters.setdefault("ds_nodash", lambda d: _ds_filter(d).replace("-", ""))
    env.filters.setdefault("ts", lambda d: d.isoformat() if d is not None else "")
    return env


def _ds_filter(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else ""


# One environment per DAG object: compiled templates are cached in it. Weak: a DAG
# file that is parsed again gets a new DAG object, and the old environment goes.
_environments: weakref.WeakKeyDictionary[DAG, jinja2.Environment] = weakref.WeakKeyDictionary()
_environments_lock = threading.Lock()


def environment(dag: DAG) -> jinja2.Environment:
    with _environments_lock:
        env = _environments.get(dag)
        if env is None:
            env = _environments[dag] = build_environment(dag)
        return env


class _Renderer:
    """Renders one task's fields: strings, files, containers, nested templated objects."""

    def __init__(
        self, env: jinja2.Environment, context: Mapping[str, Any], ext: tuple[str, ...]
    ) -> None:
        self.env = env
        self.context = context
        self.ext = ext
        self._seen: set[int] = set()

    def render(self, value: Any) -> Any:
        if isinstance(value, Resolved):  # a task's output: a value, not a template
            return value.value
        if isinstance(value, str):
            if self.ext and value.endswith(self.ext):
                template = self.env.get_template(value)
            else:
                template = self.env.from_string(value)
            out = template.render(self.context)
            if not isinstance(out, str):  # native: an Undefined may come back as a value
                _check_defined(out)
            return out
        if isinstance(value, tuple):
            items = [self.render(v) for v in value]
            if hasattr(value, "_fields"):  # a namedtuple
                return type(value)(*items)
            return tuple(items)
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, (set, frozenset)):
            return type(value)(self.render(v) for v in value)
        fields = getattr(type(value), "template_fields", None)
        if fields and id(value) not in self._seen:
            # An object with template fields of its own (as Airflow renders them).
            self._seen.add(id(value))
            clone = copy.copy(value)
            for name in fields:
                setattr(clone, name, self.render(getattr(value, name)))
            return clone
        return value


def _check_defined(value: Any) -> None:
    """Raise for an Undefined in a native result (Jinja returns it rather than failing)."""
    import jinja2

    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _check_defined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_defined(item)


def _problem(exc: BaseException) -> str:
    import jinja2
    import jinja2.exceptions

    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template file {exc.name!r} not found"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"{exc.name or 'template'}, line {exc.lineno}"
        return f"syntax error ({where}): {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        return f"undefined: {exc.message}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in the sandbox: {exc}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


#: Template markers: a string without any of them is not rendered.
_MARKERS = ("{{", "{%", "{#")


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(m in value for m in _MARKERS)


def has_template_strings(value: Any) -> bool:
    """A template string anywhere in ``value`` (lists, tuples, sets, dict values);
    XComArgs and other objects are not looked into."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(has_template_strings(v) for v in value)
    if isinstance(value, dict):
        return any(has_template_strings(v) for v in value.values())
    return False


def _render_arguments(renderer: _Renderer, template: Any, value: Any) -> Any:
    """``value`` (arguments resolved for this task instance) with the strings written as
    templates in ``template`` (the arguments as written) rendered. Values that came from
    upstream outputs (XComArgs in ``template``) are never rendered, as in Airflow."""
    if isinstance(template, str):
        return renderer.render(value) if is_template(template) and value == template else value
    if isinstance(template, (list, tuple)) and isinstance(value, (list, tuple)):
        if len(template) != len(value):
            return value
        items = [_render_arguments(renderer, t, v) for t, v in zip(template, value, strict=True)]
        if isinstance(value, tuple):
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        return items
    if isinstance(template, dict) and isinstance(value, dict):
        return {
            k: _render_arguments(renderer, template[k], v) if k in template else v
            for k, v in value.items()
        }
    return value


def render_task(op: BaseOperator, context: Context) -> tuple[BaseOperator, Context]:
    """A copy of ``op`` with its template fields rendered, and the context pointing at it.

    The operator in the DAG is never changed (it is shared by every run and try). The
    rendered values are kept in ``rendered_fields`` of the copy (to be stored later).
    Blocking (files, user macros): call it off the event loop.
    """
    env = environment(context.dag)
    variables = dict(context)
    ext = tuple(op.template_ext)
    rendered: dict[str, Any] = {}
    clone = copy.copy(op)
    for name in op.template_fields:
        renderer = _Renderer(env, variables, ext)
        try:
            value = getattr(op, name)
        except AttributeError:
            raise TemplateRenderError(
                f"task {op.task_id!r}: template field {name!r} is not an attribute of "
                f"{type(op).__name__}"
            ) from None
        try:
            rendered[name] = renderer.render(value)
        except Exception as exc:
            raise TemplateRenderError(
                f"task {op.task_id!r}: cannot render template field {name!r}: {_problem(exc)}"
            ) from exc
        setattr(clone, name, rendered[name])
    templates = op.argument_templates
    if templates is not None:
        renderer = _Renderer(env, variables, ())
        for name, template in zip(("op_args", "op_kwargs"), templates, strict=True):
            try:
                rendered[name] = _render_arguments(renderer, template, getattr(op, name))
            except Exception as exc:
                raise TemplateRenderError(
                    f"task {op.task_id!r}: cannot render the argument templates ({name}): "
                    f"{_problem(exc)}"
                ) from exc
            setattr(clone, name, rendered[name])
    clone.rendered_fields = rendered
    return clone, replace(context, task=clone)


#: The longest rendered value stored per field (characters of its JSON), as Airflow's
#: default ``max_templated_field_length``; a longer one is stored cut, saying so.
MAX_RENDERED_FIELD_LENGTH = 4096


def mask_rendered(task_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Hide secrets in rendered values before they are stored or shown.

    The hook every stored rendered value passes through (in the worker): registered
    secrets become ``***``, and so does the whole value of a field (or nested key)
    whose name looks sensitive (ADR 0032).
    """
    return {name: redact(value, name) for name, value in fields.items()}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _capped(value: Any) -> Any:
    text = json.dumps(value, allow_nan=True)
    if len(text) <= MAX_RENDERED_FIELD_LENGTH:
        return value
    return (
        f"{text[:MAX_RENDERED_FIELD_LENGTH]}... (truncated: {len(text):,} characters, "
        f"over the limit of {MAX_RENDERED_FIELD_LENGTH:,})"
    )


def stored_rendered_fields(task_id: str, fields: Mapping[str, Any] | None) -> str | None:
    """The JSON text stored for a try's rendered fields: masked, each value cut at
    MAX_RENDERED_FIELD_LENGTH; None when nothing was rendered. Called in the worker."""
    if not fields:
        return None
    # Made JSON-able first (an object's str() may hold a secret), masked before the cut.
    masked = mask_rendered(task_id, {name: _jsonable(value) for name, value in fields.items()})
    return json.dumps({name: _capped(value) for name, value in masked.items()})


#: Longest label a mapped instance gets from its map_index_template (the column's size).
MAP_INDEX_LABEL_MAX = 250


def render_map_index(template: str, context: Context) -> str:
    """A mapped instance's label from its ``map_index_template`` (blocking: off-loop)."""
    env = environment(context.dag)
    try:
        out = env.from_string(template).render(dict(context))
    except Exception as exc:
        raise TemplateRenderError(
            f"task {context.task.task_id!r}: cannot render map_index_template: {_problem(exc)}"
        ) from exc
    if not isinstance(out, str):
        _check_defined(out)
    return str(out)[:MAP_INDEX_LABEL_MAX]


def render_object(obj: Any, context: Mapping[str, Any]) -> Any:
    """A copy of ``obj`` (anything with ``template_fields``: a notifier) rendered with
    ``context``, which holds the DAG as ``dag``. Blocking: call it off the event loop."""
    env = environment(context["dag"])
    where = f"{type(obj).__name__}"
    clone = copy.copy(obj)
    for name in getattr(type(obj), "template_fields", ()):
        try:
            value = getattr(obj, name)
        except AttributeError:
            raise TemplateRenderError(
                f"{where}: template field {name!r} is not an attribute"
            ) from None
        try:
            setattr(clone, name, _Renderer(env, dict(context), ()).render(value))
        except Exception as exc:
            raise TemplateRenderError(
                f"{where}: cannot render template field {name!r}: {_problem(exc)}"
            ) from exc
    return clone
