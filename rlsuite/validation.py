"""Config validation: one declarative rule per field, checked before anything is built or run.

Every config dataclass declares its constraints next to its fields::

    @dataclass
    class PPOConfig:
        num_steps: int = 128
        gamma: float = 0.99
        ...
        CHECKS: ClassVar[Checks] = {"num_steps": POSITIVE_INT, "gamma": UNIT, ...}

        def __post_init__(self) -> None:
            validate(self)

        def check_combinations(self) -> None:  # optional: rules across fields
            ...

:func:`check_fields` applies the rules (a class inherits and may override its bases' rules) to a
dataclass instance or to a composed Hydra node, so the same table serves the library constructor
(``PPOConfig(num_steps=0)`` raises) and the CLI (:mod:`rlsuite.runner` checks the composed
``agent``, ``env`` and top-level keys before it builds anything). A failure is a
:class:`ConfigError` whose message names the dotted field, its value and what is allowed:
``agent.num_minibatches=0: must be a positive integer``.

OmegaConf has no ``Literal`` type, so choice values are a :func:`choice` rule rather than an
annotation; the message lists the allowed values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

__all__ = [
    "ConfigError", "Rule", "Checks", "check_fields", "nest", "validate", "rules_of", "unchecked_fields",
    "integer", "real", "choice",
    "optional", "pattern", "list_of", "mapping_of", "POSITIVE_INT", "NONNEG_INT", "INT", "POSITIVE",
    "NONNEG", "FINITE", "UNIT", "UNIT_OPEN_LOW", "FLAG", "TEXT", "SIZES", "DTYPE", "SEED",
]


class ConfigError(ValueError):
    """A config value outside what its field allows; ``field`` is the dotted name.

    The message is ``<field>=<value>: <requirement>``, e.g.
    ``agent.num_minibatches=0: must be a positive integer``.
    """

    def __init__(self, field: str, value: Any, requirement: str) -> None:
        self.field, self.value, self.requirement = field, value, requirement
        super().__init__(f"{field}={_show(value)}: {requirement}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix.`` before the field (``num_steps`` -> ``agent.num_steps``),
        for a config checked on its own and then reported as part of a run's config."""
        if not prefix or self.field.startswith(prefix + "."):
            return self
        return ConfigError(f"{prefix}.{self.field}", self.value, self.requirement)


def _show(value: Any) -> str:
    """The value as the user typed it: strings quoted (so ``''`` and ``'cpuu'`` are visible)."""
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Rule:
    """A constraint on one field: ``test(value)`` is True when allowed; ``requirement`` is the
    message's second half (``must be a positive integer``)."""

    test: Callable[[Any], bool]
    requirement: str

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`ConfigError` for ``name=value`` unless the rule allows it."""
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError):  # a value of the wrong type never passes
            ok = False
        if not ok:
            raise ConfigError(name, value, self.requirement)


Checks = Mapping[str, Rule | type]
"""A config class's ``CHECKS``: field name -> rule (or a nested config class, checked by its own
``CHECKS``)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int | None = None, high: int | None = None) -> Rule:
    """An int in ``[low, high]`` (either end may be open-ended: None)."""
    if low == 1 and high is None:
        text = "must be a positive integer"
    elif low == 0 and high is None:
        text = "must be a non-negative integer"
    elif low is None and high is None:
        text = "must be an integer"
    else:
        text = f"must be an integer in [{'-inf' if low is None else low}, " \
               f"{'inf' if high is None else high}]"
    return Rule(lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high),
                text)


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> Rule:
    """A finite number in the interval from ``low`` to ``high`` (open ends as flagged)."""
    if low == 0 and high is None:
        text = "must be a positive number" if low_open else "must be a non-negative number"
    elif low is None and high is None:
        text = "must be a finite number"
    else:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        text = f"must be in {left}{'-inf' if low is None else low}, " \
               f"{'inf' if high is None else high}{right}"

    def test(v: Any) -> bool:
        if not _is_real(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return not (high is not None and (v >= high if high_open else v > high))

    return Rule(test, text)


def choice(*allowed: Any) -> Rule:
    """One of ``allowed`` (the message lists them)."""
    return Rule(lambda v: v in allowed, "must be one of " + ", ".join(_show(a) for a in allowed))


def pattern(regex: str, description: str) -> Rule:
    """A string matching ``regex`` entirely; ``description`` lists what is allowed."""
    compiled = re.compile(regex)
    return Rule(lambda v: isinstance(v, str) and compiled.fullmatch(v) is not None,
                f"must be {description}")


def optional(rule: Rule) -> Rule:
    """``None`` or what ``rule`` allows."""
    return Rule(lambda v: v is None or rule.test(v), rule.requirement + " (or null)")


def list_of(rule: Rule, non_empty: bool = False) -> Rule:
    """A list (or tuple) whose every item passes ``rule``."""
    item = rule.requirement.removeprefix("must be ")

    def test(v: Any) -> bool:
        if isinstance(v, str | bytes | Mapping) or not isinstance(v, Iterable):
            return False
        items = list(v)
        return (bool(items) or not non_empty) and all(rule.test(x) for x in items)

    return Rule(test, f"must be a {'non-empty ' if non_empty else ''}list, each {item}")


@dataclass(frozen=True)
class _MappingRule(Rule):
    """A mapping whose values pass ``item``; a bad value is reported under ``field.key``."""

    item: Rule | None = None

    def check(self, name: str, value: Any) -> None:
        """Raise naming ``name`` (not a mapping) or ``name.key`` (a value ``item`` refuses)."""
        if not isinstance(value, Mapping):
            raise ConfigError(name, value, self.requirement)
        assert self.item is not None
        for key, x in value.items():
            self.item.check(f"{name}.{key}", x)


def mapping_of(rule: Rule) -> Rule:
    """A mapping from names to values that pass ``rule`` (errors name ``field.key``)."""
    item = rule.requirement.removeprefix("must be ")
    return _MappingRule(lambda v: isinstance(v, Mapping) and all(rule.test(x) for x in v.values()),
                        f"must map names to values, each {item}", rule)


POSITIVE_INT = integer(1)
NONNEG_INT = integer(0)
INT = integer()
SEED = integer(0)
POSITIVE = real(0, low_open=True)
NONNEG = real(0)
FINITE = real()
UNIT = real(0.0, 1.0)
"""Probabilities, discounts (gamma in [0, 1]), GAE lambda, mixing fractions."""
UNIT_OPEN_LOW = real(0.0, 1.0, low_open=True)
"""CVaR levels and Polyak rates: (0, 1]."""
FLAG = Rule(lambda v: isinstance(v, bool), "must be true or false")
TEXT = Rule(lambda v: isinstance(v, str), "must be a string")
SIZES = list_of(POSITIVE_INT)
"""Hidden layer widths (empty: a linear map)."""
DTYPE = choice("float32", "float64")


def rules_of(cls: type) -> dict[str, Rule]:
    """``cls``'s ``CHECKS`` merged over its bases' (a subclass may tighten or relax a field)."""
    rules: dict[str, Rule] = {}
    for klass in reversed(cls.__mro__):
        rules.update(klass.__dict__.get("CHECKS", {}))
    return rules


def check_fields(cls: type, values: Any, prefix: str = "") -> None:
    """Check every field of ``values`` that ``cls`` declares a rule for.

    ``values`` is an instance of ``cls`` or a mapping with its fields (a composed Hydra node);
    ``prefix`` is put before the field names in the error (``agent``). A field absent from
    ``values`` is skipped (a schema's MISSING is Hydra's to report). A nested config with its own
    ``CHECKS`` is checked under its dotted name.
    """
    # A composed Hydra node (DictConfig) is a Mapping; a dataclass instance has attributes.
    get = values.get if isinstance(values, Mapping) else lambda k, d: getattr(values, k, d)
    for name, rule in rules_of(cls).items():
        value = get(name, _ABSENT)
        if value is _ABSENT:
            continue
        dotted = f"{prefix}.{name}" if prefix else name
        if isinstance(rule, type):  # a nested config class: its own rules, one level down
            check_fields(rule, value, dotted)
        else:
            rule.check(dotted, _plain(value))


_ABSENT = object()


def _plain(value: Any) -> Any:
    """OmegaConf containers as Python lists/dicts, so rules see plain values."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def nest(config: Any, name: str, cls: type) -> None:
    """Make field ``name`` of ``config`` a ``cls`` instance when it holds a mapping: Hydra hands a
    nested config such as ``sac: SACConfig`` over as a dict, and library code may pass the few
    fields it changes (``RLPDConfig(sac={"hidden_sizes": [64, 64]})``). The mapping's fields
    replace those of the field's default (the owning config's own defaults for its nested one,
    e.g. RLPD's Table 2 SAC), so a partial mapping keeps them. An unknown or bad value inside
    raises :class:`ConfigError` naming the dotted field (``npg.max_kl``). Call from
    ``__post_init__``."""
    value = getattr(config, name)
    if not isinstance(value, Mapping):
        return
    known = {f.name for f in fields(cls)}
    for key in value:
        if key not in known:
            raise ConfigError(f"{name}.{key}", value[key], f"not a field of {cls.__name__}")
    spec = next(f for f in fields(config) if f.name == name)
    base = spec.default_factory() if spec.default_factory is not MISSING else cls()
    try:
        setattr(config, name, replace(base, **value))
    except ConfigError as err:
        raise err.under(name) from None


def validate(config: Any, prefix: str = "") -> None:
    """Check a config dataclass instance against its class's rules, then its combinations of
    fields (its ``check_combinations()`` method, if it has one). Call from ``__post_init__``, and
    again where a config may have been changed after construction."""
    check_fields(type(config), config, prefix)
    combinations = getattr(config, "check_combinations", None)
    if combinations is not None:
        try:
            combinations()
        except ConfigError as err:
            raise err.under(prefix) from None


def unchecked_fields(cls: type, exempt: Iterable[str] = ("name",)) -> list[str]:
    """Fields of dataclass ``cls`` without a rule (the tests keep this empty for every schema)."""
    rules = rules_of(cls)
    return [f.name for f in fields(cls) if f.name not in rules and f.name not in set(exempt)]
