"""Finding a likelihood class by name: built-ins, entry points, or ``module:Class``.

A name is resolved on every lookup, in this order:

1. a registered class (the built-ins, and any subclass with a ``name`` imported so far);
   ``"Normal"`` means ``"normal"``;
2. ``module:Class`` -- ``mypkg.lik:StudentT`` is imported with :mod:`importlib`;
   ``examples.student_t:StudentT`` (a dotted path from the working directory, as
   ``python -m`` would find it) and ``path/to/file.py:StudentT`` are loaded from the file;
3. an entry point of the group ``vaelik.likelihoods`` (an installed package declares
   ``[project.entry-points."vaelik.likelihoods"] student-t = "mypkg.lik:StudentT"``).

Because the name is stored in the run's config and resolved again where it is used,
the CLI, spawned sweep workers and Ray tasks all find the same class without
importing anything by hand.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from vaelik.errors import InputError
from vaelik.models.likelihoods.base import REGISTRY, Likelihood, LocationScaleLikelihood

__all__ = ["ENTRY_POINT_GROUP", "get_likelihood", "likelihood_class", "likelihood_names",
           "likelihood_options"]

#: The entry-point group under which installed packages publish likelihood classes.
ENTRY_POINT_GROUP = "vaelik.likelihoods"


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def likelihood_names() -> list[str]:
    """Registered likelihood names and the names of ``vaelik.likelihoods`` entry points.

    ``module:Class`` names are accepted too (they are not listed).
    """
    return sorted(set(REGISTRY) | set(_entry_points()))


def _unknown(name: object, why: str) -> InputError:
    return InputError(f"unknown likelihood {name!r}: {why}")


def _load_file(path: Path, module_name: str | None, name: str) -> ModuleType:
    """Execute a Python file once per process and return it as a module."""
    path = path.resolve()
    if module_name is None:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module_name = f"_vaelik_likelihood_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise _unknown(name, f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file: say what failed, on one line
        sys.modules.pop(module_name, None)
        raise _unknown(name, f"running {path} failed ({type(exc).__name__}: {exc})") from exc
    return module


def _import(module_text: str, name: str) -> ModuleType:
    """Import ``module_text`` (a dotted module, or a ``.py`` file path)."""
    if module_text.endswith(".py") or "/" in module_text or "\\" in module_text:
        path = Path(module_text)
        if not path.is_file():
            raise _unknown(name, f"no file {module_text!r}; give an existing path/to/file.py:Class")
        return _load_file(path, None, name)
    try:
        return importlib.import_module(module_text)
    except ModuleNotFoundError as exc:
        # as `python -m` would: a dotted path relative to the working directory
        local = Path.cwd().joinpath(*module_text.split(".")).with_suffix(".py")
        if module_text and local.is_file():
            return _load_file(local, module_text, name)
        why = exc
    except (ImportError, ValueError, TypeError) as exc:  # "", ".x", a broken package
        why = exc
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        raise _unknown(name, f"importing {module_text!r} failed ({type(exc).__name__}: {exc})") from exc
    raise _unknown(name, f"cannot import module {module_text!r} ({why}); put its folder on "
                         "PYTHONPATH or give the file as path/to/file.py:Class")


def _check_class(obj: object, name: str, where: str) -> type[Likelihood]:
    if not (inspect.isclass(obj) and issubclass(obj, Likelihood)):
        raise _unknown(name, f"{where} is {obj!r}, not a subclass of vaelik.models.Likelihood")
    return obj


def _from_module_path(name: str) -> type[Likelihood]:
    module_text, _, class_name = name.rpartition(":")
    if not module_text or not class_name.isidentifier():
        raise _unknown(name, "write a class as module:Class, e.g. mypkg.lik:StudentT")
    module = _import(module_text, name)
    if not hasattr(module, class_name):
        found = sorted(k for k, v in vars(module).items()
                       if inspect.isclass(v) and issubclass(v, Likelihood) and v.__module__ == module.__name__)
        listed = ", ".join(found) if found else "none"
        raise _unknown(name, f"module {module_text!r} has no {class_name!r}; its likelihood classes: {listed}")
    return _check_class(getattr(module, class_name), name, f"{module_text}:{class_name}")


def likelihood_class(name: str) -> type[Likelihood]:
    """The likelihood class a name stands for (see the module docstring for the order).

    Parameters
    ----------
    name : str
        ``"normal"``, ``"laplace"``, ``"bernoulli"``, ``"cbernoulli"``, the ``name`` of an
        imported subclass, a ``vaelik.likelihoods`` entry point, or ``module:Class``.

    Raises
    ------
    InputError
        One line naming the likelihood and what to do: an unknown name lists the known ones;
        a bad ``module:Class`` says whether the module or the class was not found.
    """
    if not isinstance(name, str):
        raise _unknown(name, f"a likelihood is named by a string; choose one of: "
                             f"{', '.join(likelihood_names())}")
    if name in REGISTRY:
        return REGISTRY[name]
    if name.lower() in REGISTRY:
        return REGISTRY[name.lower()]  # "Normal" means "normal"
    if ":" in name:
        return _from_module_path(name)
    entry = _entry_points().get(name)
    if entry is not None:
        try:
            loaded = entry.load()
        except Exception as exc:  # noqa: BLE001 - an installed plugin failed to import
            raise _unknown(name, f"entry point {entry.value!r} of group {ENTRY_POINT_GROUP} "
                                 f"failed to load ({type(exc).__name__}: {exc})") from exc
        return _check_class(loaded, name, f"entry point {entry.value!r}")
    raise InputError(
        f"unknown likelihood {name!r}; choose one of: {', '.join(likelihood_names())}, "
        "or name a class as module:Class"
    )


def likelihood_options(cls: type[Likelihood]) -> list[str]:
    """The keyword arguments the class's constructor accepts (through ``**kwargs`` chains)."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        accepted.update(p.name for p in params
                        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return sorted(accepted)


def get_likelihood(name: str, **kwargs: Any) -> Likelihood:
    """Build a likelihood by name.

    Parameters
    ----------
    name : str
        Any name :func:`likelihood_class` resolves.
    **kwargs
        Constructor arguments: ``scale``, ``min_scale``, ``init_scale`` and the family's own
        options (Student-t ``df``). ``scale=None`` is dropped; ``min_scale`` is dropped for
        a family without a scale.

    Raises
    ------
    InputError
        If the name is unknown, the family has no scale and one was given, or an option
        is not one the family accepts (the message lists the accepted ones).

    Examples
    --------
    >>> get_likelihood("laplace", scale=0.2)
    Laplace(scale=0.2)
    """
    cls = likelihood_class(name)
    if kwargs.get("scale") is None:
        kwargs.pop("scale", None)
    if not issubclass(cls, LocationScaleLikelihood):
        if "scale" in kwargs:
            raise InputError(f"likelihood {name!r} has no scale; drop --scale {kwargs['scale']}")
        kwargs.pop("min_scale", None)
    accepted = likelihood_options(cls)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        raise InputError(
            f"likelihood {name!r} has no option {unknown[0]!r}; it accepts: "
            f"{', '.join(accepted) if accepted else 'no options'}"
        )
    return cls(**kwargs)
