"""Load DAG files in isolation: one bad file is an error about that file, nothing more."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from airloop.authoring.dag import DAG, collecting
from airloop.exceptions import DagDefinitionError, DagFileError


@dataclass(slots=True)
class DagFile:
    path: Path
    dags: dict[str, DAG] = field(default_factory=dict)


def module_name_for(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return f"airloop_dagfile_{path.stem}_{digest}"


def _line_in_file(exc: BaseException, path: Path) -> int | None:
    """The innermost line of ``path`` in the exception's traceback."""
    target = str(path.resolve())
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if str(Path(frame.filename).resolve()) == target:
            line = frame.lineno
    return line


def load_dag_file(path: str | Path) -> DagFile:
    """Import ``path`` and return its DAGs, validated; raise DagFileError naming file and line."""
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise DagFileError(shown, "no such file")
    if path.suffix != ".py":
        raise DagFileError(shown, "not a Python file")
    name = module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have one
        raise DagFileError(shown, "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with collecting() as constructed:
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        if exc.filename and Path(exc.filename).resolve() != path.resolve():
            # The syntax error is in a module the DAG file imports: say which.
            raise DagFileError(
                shown,
                f"SyntaxError in {exc.filename}:{exc.lineno}: {exc.msg}",
                line=_line_in_file(exc, path),
            ) from exc
        raise DagFileError(shown, f"SyntaxError: {exc.msg}", line=exc.lineno) from exc
    except SystemExit as exc:
        sys.modules.pop(name, None)
        raise DagFileError(
            shown,
            f"called sys.exit({exc.code!r}) while being imported",
            line=_line_in_file(exc, path),
        ) from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise DagFileError(
            shown, f"{type(exc).__name__}: {exc}", line=_line_in_file(exc, path)
        ) from exc
    return DagFile(path=path, dags=_collect(constructed, module, path))


def _collect(constructed: list[DAG], module: ModuleType, path: Path) -> dict[str, DAG]:
    """Every DAG constructed during the import, then module globals not among them."""
    dags: dict[str, DAG] = {}
    globals_ = [v for v in vars(module).values() if isinstance(v, DAG)]
    for value in [*constructed, *globals_]:
        if any(value is d for d in dags.values()):
            continue
        if value.dag_id in dags:
            first = dags[value.dag_id]
            where = (
                f"both made at line {value.lineno}"
                if first.lineno == value.lineno
                else f"made at lines {first.lineno} and {value.lineno}"
            )
            raise DagFileError(
                str(path), f"two DAGs share the id {value.dag_id!r} ({where})", line=value.lineno
            )
        try:
            value.validate()
        except DagDefinitionError as exc:
            raise DagFileError(str(path), str(exc), line=value.lineno) from exc
        dags[value.dag_id] = value
    return dags


def pick_dag(dag_file: DagFile, dag_id: str | None) -> DAG:
    """The DAG to run: the one named, or the only one in the file."""
    shown = str(dag_file.path)
    if not dag_file.dags:
        raise DagFileError(shown, "no DAG found (create one with 'with DAG(...) as dag:')")
    if dag_id is None:
        if len(dag_file.dags) > 1:
            ids = ", ".join(sorted(dag_file.dags))
            raise DagFileError(shown, f"holds several DAGs ({ids}); choose one with --dag-id")
        return next(iter(dag_file.dags.values()))
    try:
        return dag_file.dags[dag_id]
    except KeyError:
        ids = ", ".join(sorted(dag_file.dags))
        raise DagFileError(shown, f"has no DAG {dag_id!r} (it has: {ids})") from None


def discover(folder: str | Path) -> list[Path]:
    """DAG files in a folder, recursively, skipping hidden and underscore-prefixed names."""
    root = Path(folder)
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*.py")
        if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
