"""Choosing members by place: `prefecture=33`, `region=中国`, `near_prefecture=33` ("Okayama and its neighbours").

A national portal does not list 1,700 member ids; it asks for a prefecture, a region or a
prefecture with its neighbours. Each parameter takes one value or several, comma-separated (a
union); parameters given together, and `members=`, narrow each other (an intersection). The
index from place to members is built once per consortium, so a selection costs one pass over
the members it names, never over the whole consortium per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.consortium import Consortium
from broker.members import UnknownMembers
from broker.prefectures import PREFECTURES, neighbours_of, prefecture, region_members
from yokodan.errors import BadRequest

__all__ = ["MemberSelector", "NoMembersSelected", "PlaceQuery", "UnknownPlace"]

PLACE_PARAMETERS = ("prefecture", "region", "near_prefecture")


class UnknownPlace(BadRequest):
    """A prefecture or region that does not exist (`prefecture=48`, `region=関西`)."""

    def __init__(self, parameter: str, value: str, allowed: str) -> None:
        super().__init__(f"{parameter}: unknown {'region' if parameter == 'region' else 'prefecture'} {value!r} ({allowed})")
        self.parameter = parameter
        self.value = value


class NoMembersSelected(BadRequest):
    """Valid places, but no member of this consortium is there (or none is also in `members=`)."""

    def __init__(self, parameters: Sequence[str]) -> None:
        super().__init__(f"no member of this consortium matches {', '.join(parameters)} together")
        self.parameters = list(parameters)


@dataclass(frozen=True, slots=True)
class PlaceQuery:
    """The place parameters of one request, as given (comma-separated values, or None)."""

    prefecture: str | None = None
    region: str | None = None
    near_prefecture: str | None = None

    def given(self) -> list[tuple[str, list[str]]]:
        out = []
        for name in PLACE_PARAMETERS:
            raw = getattr(self, name)
            if raw is not None:
                values = [v.strip() for v in raw.split(",") if v.strip()]
                out.append((name, values))
        return out


_PREFECTURE_HELP = "a JIS code 01–47 or a name such as 岡山県 or 岡山"


class MemberSelector:
    """Place -> member ids for one consortium; built once per app."""

    def __init__(self, consortium: Consortium) -> None:
        self._order = {m.id: n for n, m in enumerate(consortium.members)}
        self._by_prefecture: dict[str, list[str]] = {}
        for member in consortium.members:
            code = member.prefecture.code if member.prefecture is not None else None
            if code is not None:
                self._by_prefecture.setdefault(code, []).append(member.id)

    def _prefecture_codes(self, parameter: str, values: list[str]) -> set[str]:
        codes: set[str] = set()
        for value in values:
            found = prefecture(value)
            if found is None:
                raise UnknownPlace(parameter, value, _PREFECTURE_HELP)
            codes.add(found.code)
            if parameter == "near_prefecture":
                codes.update(p.code for p in neighbours_of(found.code))
        return codes

    def _codes(self, parameter: str, values: list[str]) -> set[str]:
        if not values:
            raise UnknownPlace(parameter, "", _PREFECTURE_HELP if parameter != "region" else self._regions_help())
        if parameter != "region":
            return self._prefecture_codes(parameter, values)
        codes: set[str] = set()
        for value in values:
            prefectures = region_members(value)
            if not prefectures:
                raise UnknownPlace(parameter, value, self._regions_help())
            codes.update(p.code for p in prefectures)
        return codes

    @staticmethod
    def _regions_help() -> str:
        return "one of " + ", ".join(dict.fromkeys(p.region for p in PREFECTURES.values()))

    def select(self, members: Sequence[str] | None, places: PlaceQuery) -> list[str] | None:
        """The member ids a request asks for, in the consortium's order; None when it names none (all).

        Raises UnknownMembers for an unknown member id, UnknownPlace for an unknown place (before any
        member is looked at), NoMembersSelected when the parameters together leave nobody.
        """
        given = places.given()
        if members:
            unknown = [m for m in members if m not in self._order]
            if unknown:
                raise UnknownMembers(unknown)
        if not given:
            return list(dict.fromkeys(members)) if members else None
        codes: set[str] | None = None
        for parameter, values in given:  # every value is checked before the intersection
            found = self._codes(parameter, values)
            codes = found if codes is None else codes & found
        assert codes is not None
        chosen = [m for code in sorted(codes) for m in self._by_prefecture.get(code, ())]
        if members:
            wanted = set(members)
            chosen = [m for m in chosen if m in wanted]
        if not chosen:
            raise NoMembersSelected([name for name, _ in given] + (["members"] if members else []))
        return sorted(chosen, key=self._order.__getitem__)
