"""The patron as the planner sees them: cards, where they live, where they like to collect.

A card is a member id and a card number; the PIN (or password) is a `SecretStr` that is passed to
the member to verify and dropped with the request — it is never stored, logged or echoed. Reading
interests are not part of the patron: a plan is computed and forgotten (DOMAIN.md, privacy).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from yokodan import PatronCredentials

__all__ = ["Card", "Patron"]


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    member: str = Field(min_length=1, max_length=64)
    card_number: str = Field(min_length=1, max_length=32)
    pin: SecretStr | None = Field(default=None, max_length=64)

    def credentials(self) -> PatronCredentials:
        return PatronCredentials(card_number=self.card_number, pin=self.pin)

    def __repr__(self) -> str:  # never the card number next to anything else in a log line
        return f"Card(member={self.member!r})"


class Patron(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    cards: list[Card] = Field(default_factory=list, max_length=20)
    home_municipality: str | None = Field(default=None, max_length=40)  # 岡山市, 西宮市 …
    works_in: list[str] = Field(default_factory=list, max_length=5)  # municipalities (Takarazuka: commuters)
    studies_in: list[str] = Field(default_factory=list, max_length=5)
    location: tuple[float, float] | None = None  # (lat, lon) of home, for distance to a pickup branch
    preferred_pickups: list[str] = Field(default_factory=list, max_length=20)  # branch ids, best first

    @field_validator("location")
    @classmethod
    def _check_location(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not (-90 <= value[0] <= 90 and -180 <= value[1] <= 180):
            raise ValueError("location is (lat, lon) in degrees")
        return value

    def card_for(self, member: str) -> Card | None:
        return next((c for c in self.cards if c.member == member), None)

    def __repr__(self) -> str:
        return f"Patron(cards={[c.member for c in self.cards]!r})"
