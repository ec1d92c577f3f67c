"""Store options: declared by each driver, validated in one place.

A driver lists its options as :class:`Option` values, named as glance_store
names them (``filesystem_store_datadir``, ``s3_store_host``, ...). Values come
either typed (a Python mapping) or as strings (a glance-api.conf file); both go
through :func:`resolve_options`, which raises one :class:`ConfigError` naming
the option, the backend and the fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, InvalidArgument
from .locations import has_userinfo, mask_url
from .units import parse_size

__all__ = ["Option", "COMMON_OPTIONS", "resolve_options", "mask_options"]

_TRUE = {"1", "true", "yes", "on"}
#: What an inline comment looks like (" # note", " ; note"): oslo.config keeps it in the value.
_INLINE_COMMENT = re.compile(r"\s[#;](\s|$)")
_FALSE = {"0", "false", "no", "off"}


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected a boolean (true/false, yes/no, on/off, 1/0)")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        raise ValueError("expected an integer") from None


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    try:
        return float(value.strip()) if isinstance(value, str) else float(value)
    except (ValueError, TypeError):
        raise ValueError("expected a number") from None


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    raise ValueError("expected a string")


def _as_list(value: Any) -> list[str]:
    """A list from a list, or from a comma-separated string (repeated keys give lists)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("expected a list or a comma-separated string")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("expected strings in the list")
        out.extend(part.strip() for part in item.split(",") if part.strip())
    return out


def _as_octal(value: Any) -> int:
    """A file mode written in octal digits, as glance-api.conf writes it: ``"640"``, ``"0640"``.

    An int other than 0 is refused: 640 and 0o640 are both plausible meanings.
    """
    if value == 0 and isinstance(value, int) and not isinstance(value, bool):
        return 0
    if not isinstance(value, str):
        raise ValueError("give the mode as a string of octal digits, such as '640'")
    text = value.strip().lower().removeprefix("0o")
    if not text or set(text) - set("01234567"):
        raise ValueError("expected a file mode in octal digits, such as 640 or 0640")
    mode = int(text, 8)
    if mode > 0o7777:
        raise ValueError("a file mode is at most 7777")
    return mode


def _as_size(value: Any) -> int:
    """Bytes from an int or a size as people write it: ``64K``, ``1M``, ``4096``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a size is not negative")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a size such as 64K, 1M or 4096")
    try:
        return parse_size(value)
    except InvalidArgument:
        raise ValueError("expected a size such as 64K, 1M or 4096 (binary units)") from None


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "str": _as_str,
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "list": _as_list,
    "octal": _as_octal,
    "size": _as_size,
}


@dataclass(frozen=True)
class Option:
    """One option a driver accepts.

    ``type`` is one of ``str``, ``int``, ``float``, ``bool``, ``list``
    (comma-separated or repeated key), ``octal`` (a file mode), ``size`` (bytes, also
    written ``64K``, ``1M``).
    ``secret`` options are never shown: reprs, logs and errors mask them.
    """

    name: str
    type: str = "str"
    default: Any = None
    help: str = ""
    secret: bool = False
    required: bool = False
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.type not in _PARSERS:
            raise ValueError(f"option {self.name}: unknown type {self.type!r}")

    def parse(self, value: Any, backend: str) -> Any:
        """``value`` converted and checked, or a ConfigError naming the option."""
        shown = "***" if self.secret else repr(value)
        values = value if isinstance(value, list) else [value]
        if not self.secret and any(
            isinstance(v, str) and _INLINE_COMMENT.search(v) for v in values
        ):
            raise ConfigError(
                f"{backend}: option {self.name} = {shown} seems to end with a comment: in "
                "glance-api.conf (as in oslo.config) everything after '=' is the value; put "
                "the comment on a line of its own"
            )
        try:
            parsed = _PARSERS[self.type](value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{backend}: option {self.name} = {shown} is not valid: {exc}"
            ) from None
        if self.choices and parsed not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise ConfigError(f"{backend}: option {self.name} = {shown} must be one of: {allowed}")
        if self.min is not None and parsed < self.min:
            raise ConfigError(
                f"{backend}: option {self.name} = {shown} is below its minimum {self.min:g}"
            )
        if self.max is not None and parsed > self.max:
            raise ConfigError(
                f"{backend}: option {self.name} = {shown} is above its maximum {self.max:g}"
            )
        return parsed


#: Options every store accepts, whatever its driver.
COMMON_OPTIONS: tuple[Option, ...] = (
    Option(
        "image_size_cap",
        "int",
        default=1099511627776,
        min=0,
        help="Largest image, in bytes, an add accepts (0: no limit). As Glance's image_size_cap.",
    ),
    Option(
        "image_inspection",
        default="auto",
        choices=("auto", "enforce", "detect", "off"),
        help="Format inspection of adds (the inspect extra): enforce refuses an image that is "
        "not its disk_format or fails a safety check; detect records what it found; auto is "
        "enforce when oslo.utils is installed, else off.",
    ),
    Option(
        "image_inspection_formats",
        "list",
        default=[],
        help="With inspection: the detected formats accepted (empty: all but qed).",
    ),
    Option("store_description", "str", default="", help="A description shown to users."),
    Option("weight", "int", default=0, help="Preference among backends (as Glance's weight)."),
)


def resolve_options(
    declared: Iterable[Option],
    given: Mapping[str, Any],
    backend: str,
) -> dict[str, Any]:
    """Every declared option's value: given ones parsed, others defaulted.

    Unknown names raise ConfigError (with a close match when there is one).
    Missing required options raise ConfigError.
    """
    by_name = {option.name: option for option in declared}
    values: dict[str, Any] = {}
    for name, raw in given.items():
        option = by_name.get(name)
        if option is None:
            hint = difflib.get_close_matches(name, list(by_name), n=1)
            fix = f"did you mean {hint[0]}?" if hint else "remove it"
            known = ", ".join(sorted(o.name for o in declared))
            raise ConfigError(
                f"{backend}: unknown option {name!r}; {fix} (this driver takes: {known})"
            )
        if raw is None:
            continue
        values[option.name] = option.parse(raw, backend)
    for option in declared:
        if option.name in values:
            continue
        if option.required:
            raise ConfigError(
                f"{backend}: option {option.name} is required ({option.help or 'no default'})"
            )
        values[option.name] = option.default
    return values


def mask_options(declared: Iterable[Option], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every secret option's value replaced by ``'***'``, and the password of
    any user-info in a URL-valued one (``http://KEY:SECRET@host``) masked."""
    secret = {o.name for o in declared if o.secret}
    return {k: "***" if k in secret and v else _mask_url_value(v) for k, v in values.items()}


def _mask_url_value(value: Any) -> Any:
    if not (isinstance(value, str) and has_userinfo(value)):
        return value
    url = "://" in value or not any(c.isspace() for c in value)  # else prose, not a URL
    return mask_url(value) if url else value
