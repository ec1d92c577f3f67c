"""The adapters' options: glance_store's own Opt objects, plus ours, registered safely.

glance_store registers a driver's options in places shared with its builtin
drivers (the backend-defaults group, ``[glance_store]`` in legacy mode, and
any group whose builtin type name is a substring of an entry-point name), and
oslo.config only tolerates a second registration of an *equal* Opt. So:

- an option glance_store also has is declared with glance_store's own Opt
  object (same name, type and default);
- an option only we have (``filesystem_store_fsync``, ``s3_store_part_checksum``,
  ...) is one StrOpt per name, ``default=None``, shared by every adapter;
- ``store_description`` and ``weight`` come from glance_store's multi-backend
  options, and Glance enforces ``image_size_cap`` itself: they are left out.

Only what the operator set is passed on to our store (glance_store's defaults
differ from ours: thin provisioning, chunk sizes, retries), as strings our
options parse.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oslo_config import cfg

from glance_store_ng.options import Option

__all__ = ["LEFT_OUT", "adapter_options", "operator_values"]

#: Our options that the adapters do not declare: Glance has its own.
LEFT_OUT = frozenset({"store_description", "weight", "image_size_cap"})
#: One Opt per adapter-only name, shared by all adapters (equal wherever registered).
_OURS_ONLY: dict[str, cfg.Opt] = {}
_SET_BY_DEFAULT = (cfg.Locations.opt_default, cfg.Locations.set_default)


def _ours_only(option: Option) -> cfg.Opt:
    opt = _OURS_ONLY.get(option.name)
    if opt is None:
        opt = cfg.StrOpt(
            option.name,
            default=None,
            secret=option.secret,
            help=f"glance_store_ng: {option.help}",
        )
        _OURS_ONLY[option.name] = opt
    return opt


def adapter_options(glance_opts: Iterable[cfg.Opt], ours: Iterable[Option]) -> list[cfg.Opt]:
    """The OPTIONS of an adapter: glance_store's driver's, then ours that it lacks."""
    declared = [opt for opt in glance_opts if opt.name not in LEFT_OUT]
    names = {opt.name for opt in declared}
    return declared + [
        _ours_only(option)
        for option in ours
        if option.name not in names and option.name not in LEFT_OUT
    ]


def operator_values(conf: cfg.ConfigOpts, group: str, options: Iterable[cfg.Opt]) -> dict[str, Any]:
    """The options of ``group`` that the operator set (a config file, the command line, the
    environment), as our store takes them; the others keep our defaults."""
    section = getattr(conf, group)
    values: dict[str, Any] = {}
    for opt in options:
        value = getattr(section, opt.name)
        where = conf.get_location(opt.name, group)
        if value is None or where is None or where.location in _SET_BY_DEFAULT:
            continue
        if isinstance(value, (list, tuple)):
            values[opt.name] = [str(item) for item in value]
        elif isinstance(value, bool):
            values[opt.name] = "true" if value else "false"
        else:
            values[opt.name] = str(value)
    return values
