"""The preferences page's time-zone ``<select>``: the zones readers pick from, with today's offsets.

Apart from the subscription pages because it is a table of its own (tzdata's list of
zones, cached once per process), with no request or subscriber in it.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from publisher.i18n import N_

Choice = tuple[str, str]  # (value, label) of an <option> or a checkbox

# The regions of tzdata's zones, the <optgroup>s, for the catalogs: the page shows each one
# translated (``_(region)``).  A zone's own label stays its IANA name, which readers search by.
REGIONS = (
    # TRANSLATORS: the groups of the time-zone list (tzdata's regions); Atlantic, Indian and Pacific are oceans.
    N_("Africa"), N_("America"), N_("Antarctica"), N_("Arctic"), N_("Asia"), N_("Atlantic"), N_("Australia"),
    N_("Europe"), N_("Indian"), N_("Pacific"),
)


@cache
def canonical_zones() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The zones a reader picks from, as ``(region, zones)``, both sorted.

    ``zoneinfo.available_timezones()`` also holds ``Factory``, ``posixrules``, ``Etc/*``
    and the deprecated aliases of tzdata's ``backward`` file (``US/Eastern``, ``GB``,
    ``Europe/Kiev``).  tzdata's ``zone.tab`` lists the zones to offer people, per
    country; unlike ``zone1970.tab`` it keeps a city for each country (Europe/Oslo,
    not only the Europe/Berlin it shares rules with), which is what readers look for.
    """
    table = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    listed = {line.split("\t")[2] for line in table.splitlines() if line and not line.startswith("#")}
    regions: dict[str, list[str]] = {}
    for name in sorted(listed & zoneinfo.available_timezones()):
        regions.setdefault(name.partition("/")[0], []).append(name)
    return tuple((region, tuple(names)) for region, names in sorted(regions.items()))


@dataclass(frozen=True, slots=True)
class ZoneChoices:
    """The time-zone ``<select>``: a few options on their own, then one ``<optgroup>`` per region."""

    loose: list[Choice]
    regions: list[tuple[str, list[Choice]]]


def zone_choices(current: str, now: datetime) -> ZoneChoices:
    """Every canonical zone labelled with its UTC offset at ``now``, plus UTC and ``current``.

    ``current`` may be an alias (set through the API or an import): it is offered as
    it is, so saving the page without touching the zone keeps it.
    """
    regions = [(region, [(name, _zone_label(name, now)) for name in names]) for region, names in canonical_zones()]
    offered = {name for _, names in canonical_zones() for name in names}
    loose = [(name, _zone_label(name, now)) for name in dict.fromkeys(["UTC", current]) if name and name not in offered]
    return ZoneChoices(loose, regions)


def _zone_label(name: str, now: datetime) -> str:
    """``Europe/Berlin (UTC+01:00)``: the offset readers see on their clocks today."""
    try:
        offset = now.astimezone(zoneinfo.ZoneInfo(name)).utcoffset()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return name
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{name} (UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d})"
