"""Discovery and lookup of estimators (and tasks) provided by plugins.

Every plugin is loaded in isolation: one that fails to import, implements a hook that does
not exist, or raises while registering is recorded as ``failed`` (with its distribution,
version and error) and every other plugin keeps working. When two plugins register the same
name, both stay reachable as ``"<distribution>/<name>"`` and the bare name raises
:class:`~mireg.errors.AmbiguousEstimatorError`; load order never decides.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import types
import typing
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import attrs
import pluggy

from mireg import hookspecs
from mireg.errors import AmbiguousEstimatorError, MiregPluginWarning, OptionError, PluginError, UnknownEstimatorError
from mireg.estimators import MIGradientEstimator, ScoreEstimator
from mireg.options import OptionSpec, option_specs, validate_options
from mireg.text import did_you_mean, summary_line

#: The plugins mireg ships itself: modules loaded exactly as third-party ones are (entry points aside).
DEFAULT_PLUGINS: tuple[str, ...] = ("mireg.mige", "mireg.tasks")

KINDS = ("score", "mi_gradient", "task")
#: How messages and `mireg show` name each kind.
KIND_WORDS = {"score": "score estimator", "mi_gradient": "MI-gradient estimator", "task": "task"}
_INSTALL_HINT = {
    "score": "install a plugin, e.g. `pip install mireg-kscore`, MIGE's default (`pip install plugins/kscore`)",
    "mi_gradient": "install a plugin, e.g. `pip install mireg-mine` (or `pip install plugins/mine`)",
    "task": "tasks ship with mireg itself; is the installation complete?",
}


@attrs.frozen
class EstimatorInfo:
    """What the registry knows of one registered class.

    Attributes:
        name: the primary name (``cls.name``).
        kind: ``"score"``, ``"mi_gradient"`` or ``"task"``.
        plugin: the distribution that registered it (``"mireg"`` for built-ins).
        version: that distribution's version.
        summary: first line of the class docstring.
        aliases: further names.
        cls: the registered class.
    """

    name: str
    kind: str
    plugin: str
    version: str
    summary: str
    aliases: tuple[str, ...] = ()
    cls: Any = attrs.field(default=object, repr=False, eq=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "version": self.version,
            "summary": self.summary,
            "aliases": list(self.aliases),
        }


@attrs.frozen
class PluginInfo:
    """One plugin as ``mireg plugins`` reports it."""

    distribution: str
    version: str
    status: str  # "ok" or "failed"
    error: str | None = None
    estimators: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "estimators": list(self.estimators),
        }


def _defined(cls: type) -> set[str]:
    """The attribute names ``cls`` and its bases up to (not including) mireg's base classes define."""
    bases = set(ScoreEstimator.__mro__)
    return {name for klass in cls.__mro__ if klass not in bases for name in vars(klass)}


def normalize(name: str) -> str:
    """Names are matched case-insensitively, with ``_`` and ``-`` equivalent."""
    return name.strip().lower().replace("_", "-")


_BASES: dict[str, type] = {"score": ScoreEstimator, "mi_gradient": MIGradientEstimator}


def _nested_kind(spec: OptionSpec) -> tuple[str, bool] | None:
    """``(kind, wants_class)`` when the option's type admits an estimator class or instance of a kind."""
    annotation = spec.annotation
    union = typing.get_origin(annotation) in (Union, types.UnionType)
    members = typing.get_args(annotation) if union else (annotation,)
    for member in members:
        wants_class = typing.get_origin(member) is type
        target = typing.get_args(member)[0] if wants_class else member
        for kind, base in _BASES.items():
            if isinstance(target, type) and issubclass(target, base):
                return kind, wants_class
    return None


class Registry:
    """Estimators and tasks by kind and name, filled by plugins through the hooks."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._entries: dict[str, dict[str, list[EstimatorInfo]]] = {kind: {} for kind in KINDS}
        self._plugins: list[PluginInfo] = []

    # ----------------------------------------------------------------- loading
    def load_entry_points(self) -> None:
        """Load every plugin named in the ``mireg.plugins`` entry-point group, in name order."""
        points = sorted(
            importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP),
            key=lambda ep: (ep.dist.name if ep.dist else "", ep.name),
        )
        for ep in points:
            distribution = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else "unknown"
            try:
                plugin = ep.load()
            except Exception as error:
                self._fail(distribution, version, f"import of {ep.value!r} failed: {type(error).__name__}: {error}")
                continue
            self.register_plugin(plugin, distribution=distribution, version=version, raise_errors=False)

    def load_modules(self, modules: Iterable[str], *, distribution: str, version: str) -> PluginInfo:
        """Import the plugin modules ``modules`` of one distribution and register them together, as one
        plugin record (how the :data:`DEFAULT_PLUGINS` are loaded); a failing import fails the record."""
        try:
            plugins = [importlib.import_module(module) for module in modules]
        except Exception as error:
            return self._fail(distribution, version, f"import failed: {type(error).__name__}: {error}")
        return self._register(plugins, distribution, version, raise_errors=False)

    def _fail(self, distribution: str, version: str, error: str) -> PluginInfo:
        info = PluginInfo(distribution, version, "failed", error)
        self._plugins.append(info)
        warnings.warn(
            f"mireg plugin {distribution} {version} failed to load and is skipped: {error}",
            MiregPluginWarning,
            stacklevel=3,
        )
        return info

    def register_plugin(
        self,
        plugin: object,
        *,
        distribution: str,
        version: str = "0",
        raise_errors: bool = True,
    ) -> PluginInfo:
        """Register the hook implementations of ``plugin`` (a module or any object) and call them.

        pluggy validates the hooks (``check_pending`` for misspelled names, argument names on
        registration) and dispatches them through a hook caller restricted to this plugin, so
        whatever one plugin does cannot touch another's registrations. With ``raise_errors`` a
        broken plugin raises :class:`~mireg.errors.PluginError`; otherwise it is recorded as
        failed, a :class:`~mireg.errors.MiregPluginWarning` is issued, and nothing it registered
        is kept.
        """
        return self._register([plugin], distribution, version, raise_errors=raise_errors)

    def _register(
        self, plugins: Sequence[object], distribution: str, version: str, *, raise_errors: bool
    ) -> PluginInfo:
        added: list[EstimatorInfo] = []
        try:
            for plugin in plugins:
                self._validate(plugin, f"{distribution}:{id(plugin)}")
            others = [other for other in self._pm.get_plugins() if all(other is not p for p in plugins)]
            names = dict.fromkeys(caller.name for p in plugins for caller in self._pm.get_hookcallers(p) or [])
            for hook in names:  # one call per hook, restricted to this distribution's modules
                own = self._pm.subset_hook_caller(hook, remove_plugins=others)
                own(register=self._registrar(hookspecs.HOOK_KINDS[hook], distribution, version, added))
        except Exception as error:
            self._forget(added)
            for plugin in plugins:
                if self._pm.is_registered(plugin):
                    self._pm.unregister(plugin)
            if raise_errors:
                if isinstance(error, PluginError):
                    raise
                raise PluginError(f"plugin {distribution} {version} failed to register: {error}") from error
            return self._fail(distribution, version, f"{type(error).__name__}: {error}")
        info = PluginInfo(distribution, version, "ok", None, tuple(entry.name for entry in added))
        self._plugins.append(info)
        return info

    def _validate(self, plugin: object, name: str) -> None:
        """Register ``plugin`` with pluggy and check its hooks; :class:`PluginError` with a hint if not."""
        try:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()
        except pluggy.PluginValidationError as error:
            unknown = [c.name for c in self._pm.get_hookcallers(plugin) or [] if not c.has_spec()]
            if not unknown:
                raise PluginError(str(error)) from error
            hook = unknown[0]
            hint = did_you_mean(hook, hookspecs.HOOK_KINDS)
            raise PluginError(
                f"{hook!r} is not a mireg hook.{hint} (hooks: {', '.join(hookspecs.HOOK_KINDS)})"
            ) from error

    def _registrar(self, kind: str, distribution: str, version: str, added: list[EstimatorInfo]) -> hookspecs.Register:
        def register(cls: type, aliases: Iterable[str] = ()) -> None:
            base = _BASES.get(kind)
            if not isinstance(cls, type) or (base is not None and not issubclass(cls, base)):
                expected = base.__name__ if base else "a class"
                raise PluginError(f"register() for a {KIND_WORDS[kind]} takes a subclass of {expected}, got {cls!r}")
            if kind == "score" and "_score" not in _defined(cls) and "score" not in _defined(cls):
                raise PluginError(f"{cls.__qualname__} implements neither _score(samples, at) nor score(samples, at)")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name.strip() or "/" in name:
                raise PluginError(f"{cls.__qualname__} needs a class attribute `name` (a non-empty string without '/')")
            names = (name, *tuple(getattr(cls, "aliases", ())), *tuple(aliases))
            summary = summary_line(cls)
            info = EstimatorInfo(name, kind, distribution, version, summary, tuple(names[1:]), cls)
            for key in dict.fromkeys(normalize(n) for n in names):
                mine = [e for e in self._entries[kind].get(key, []) if e.plugin == distribution]
                if mine:
                    raise PluginError(f"{distribution} registers the {KIND_WORDS[kind]} name {key!r} twice")
                self._entries[kind].setdefault(key, []).append(info)
            added.append(info)

        return register

    def _forget(self, infos: list[EstimatorInfo]) -> None:
        for table in self._entries.values():
            for key in list(table):
                table[key] = [e for e in table[key] if all(e is not i for i in infos)]
                if not table[key]:
                    del table[key]

    # ----------------------------------------------------------------- lookup
    def plugins(self) -> list[PluginInfo]:
        return sorted(self._plugins, key=lambda p: p.distribution)

    def list(self, kind: str | None = None) -> list[EstimatorInfo]:
        """One record per registered class (aliases folded in), sorted by kind and name."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
        seen: dict[int, EstimatorInfo] = {}
        for k in KINDS if kind is None else (kind,):
            for entries in self._entries[k].values():
                for entry in entries:
                    seen.setdefault(id(entry), entry)
        return sorted(seen.values(), key=lambda e: (KINDS.index(e.kind), e.name, e.plugin))

    def matches(self, kind: str, name: str) -> tuple[EstimatorInfo, ...]:
        """Every class of ``kind`` registered as ``name`` (or ``"<distribution>/<name>"``), in
        registration order: none, one, or several when plugins register the same bare name."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not isinstance(name, str):
            raise TypeError(f"an estimator name must be a string, got {type(name).__name__}")
        plugin, _, short = name.rpartition("/")
        entries = self._entries[kind].get(normalize(short), [])
        if plugin:
            entries = [e for e in entries if normalize(e.plugin) == normalize(plugin)]
        return tuple(entries)

    def get(self, kind: str, name: str) -> EstimatorInfo:
        """The class registered as ``name`` (or ``"<distribution>/<name>"``) of ``kind``."""
        entries = self.matches(kind, name)
        if len(entries) == 1:
            return entries[0]
        if len(entries) > 1:
            both = ", ".join(repr(e.qualified_name) for e in entries)
            raise AmbiguousEstimatorError(
                f"{KIND_WORDS[kind]} name {name.rpartition('/')[2]!r} is registered by several plugins; "
                f"choose one of {both}"
            )
        raise UnknownEstimatorError(self._unknown_message(kind, name))

    def _unknown_message(self, kind: str, name: str) -> str:
        word = KIND_WORDS[kind]
        known = sorted(self._entries[kind])
        message = f"unknown {word} {name!r}."
        message += did_you_mean(normalize(name.rpartition("/")[2]), known, n=3)
        for other in KINDS:
            if other != kind and normalize(name.rpartition("/")[2]) in self._entries[other]:
                message += f" {name!r} is a {KIND_WORDS[other]}, not a {word}."
        message += f" Known {word}s: {', '.join(known) if known else 'none'}"
        if not known:
            message += f" ({_INSTALL_HINT[kind]})"
        failed = [p for p in self._plugins if p.status == "failed"]
        if failed:
            message += ". Plugins that failed to load: " + "; ".join(
                f"{p.distribution} {p.version}: {p.error}" for p in failed
            )
        return message + "."

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None, *, where: str = "") -> Any:
        """Build the estimator ``name`` of ``kind`` with validated ``options``.

        An option whose type admits an estimator (``type[ScoreEstimator]`` or ``ScoreEstimator``,
        as MIGE's ``score``) and whose value (given or default) is a name is resolved here, by this
        registry: to the registered class, or to an instance built with no options.
        """
        info = self.get(kind, name)
        checked = validate_options(info.cls, dict(options or {}), where=where)
        try:
            for key, spec in option_specs(info.cls).items():
                nested = _nested_kind(spec)
                value = checked.get(key, spec.default)
                if nested is None or not isinstance(value, str):
                    continue
                nested_kind, wants_class = nested
                checked[key] = self.get(nested_kind, value).cls if wants_class else self.create(nested_kind, value)
            return info.cls(**checked)
        except ValueError as error:  # the constructor's checks and nested names and options (MIGE's score)
            place = where.rstrip(".") or "options"
            raise OptionError(f"invalid {place} for the {KIND_WORDS[kind]} {info.name!r}: {error}") from error


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry: the :data:`DEFAULT_PLUGINS` plus every installed plugin."""
    global _default
    if _default is None:
        registry = Registry()
        registry.load_modules(DEFAULT_PLUGINS, distribution="mireg", version=_version())
        registry.load_entry_points()
        _default = registry
    return _default


def _version() -> str:
    """The installed version of mireg (``"0+unknown"`` when run from an uninstalled checkout)."""
    try:
        return importlib.metadata.version("mireg")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
