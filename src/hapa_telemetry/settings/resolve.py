"""Resolution of the settings table: argument → environment → default, once per setting.

A :class:`Row` is what one setting declares (its variables, kind and default rule); the
:class:`Resolver` computes each value on demand and remembers where it came from, so a
rule may use other settings (``log_format`` follows ``debug``) and an error can name the
variable or argument the bad value came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hapa_telemetry.settings.kinds import Invalid, Kind


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and the value.

    ``invalid LOG_LEVEL='x': expected one of DEBUG, …`` for an environment variable,
    ``invalid metrics_port=70000 (argument): expected a port 0-65535`` for an argument.
    """

    def __init__(
        self, variable: str, value: object, expected: str, *, argument: bool = False
    ) -> None:
        where = " (argument)" if argument else ""
        super().__init__(f"invalid {variable}={value!r}{where}: expected {expected}")
        self.variable = variable
        self.value = value
        self.expected = expected
        self.argument = argument


Derive = Callable[["Resolver"], Any]
Finish = Callable[["Resolver", Any], Any]


@dataclass(frozen=True)
class Row:
    """One setting's declaration: variables (first set one wins), kind, default rules."""

    env: tuple[str, ...]
    kind: Kind
    derive: Derive | None  # a rule over other settings; None from it = the default
    finish: Finish | None  # applied to every resolved value (e.g. "exporter none")


@dataclass(frozen=True)
class Origin:
    """Where a value came from: an environment variable or a keyword argument."""

    label: str  # the environment variable, or the argument's name
    raw: Any
    argument: bool


class _Unset:
    pass


_UNSET = _Unset()


class Resolver:
    """Resolves each setting once, on demand, so rules may use other settings."""

    def __init__(
        self,
        rows: Mapping[str, Row],
        default: Callable[[str], Any],
        env: Mapping[str, str],
        overrides: Mapping[str, Any],
    ) -> None:
        self.rows, self.default, self.env, self.overrides = rows, default, env, overrides
        self._given_values: dict[str, Any] = {}
        self._origins: dict[str, Origin] = {}
        self._values: dict[str, Any] = {}
        self._busy: set[str] = set()

    def _given(self, name: str) -> Any:
        """The argument, else the first set environment variable, parsed; or _UNSET.

        An argument wins without its environment variable being read at all.
        """
        if name in self._given_values:
            return self._given_values[name]
        row, value = self.rows[name], _UNSET
        if name in self.overrides:
            raw = self.overrides[name]
            self._origins[name] = Origin(name, raw, True)
            try:
                value = row.kind.from_argument(raw)
            except Invalid as exc:
                raise SettingsError(name, raw, exc.expected, argument=True) from None
        else:
            for variable in row.env:
                text = self.env.get(variable)
                if text is None or not text.strip():
                    continue  # set but empty counts as unset (as the OTel spec says)
                self._origins[name] = Origin(variable, text, False)
                try:
                    value = row.kind.parse(text.strip())
                except Invalid as exc:
                    raise SettingsError(variable, text, exc.expected) from None
                break
        self._given_values[name] = value
        return value

    def explicit(self, name: str) -> Any:
        """The argument's or the environment's value, None when neither is given."""
        value = self._given(name)
        return None if value is _UNSET else value

    def origin(self, name: str) -> Origin | None:
        """Where the setting came from; None when it is the default."""
        if name not in self.rows:
            return None
        self._given(name)
        return self._origins.get(name)

    def get(self, name: str) -> Any:
        """The resolved value: given, else the default rule or value; then ``finish``."""
        if name in self._values:
            return self._values[name]
        if name in self._busy:
            raise RuntimeError(f"settings rule cycle at {name}")
        self._busy.add(name)
        row, value = self.rows[name], self._given(name)
        if value is _UNSET:
            value = row.derive(self) if row.derive is not None else None
            if value is None:  # no rule, or the rule does not apply: the default
                value = self.default(name)
        if row.finish is not None:
            value = row.finish(self, value)
        self._values[name] = value
        self._busy.discard(name)
        return value
