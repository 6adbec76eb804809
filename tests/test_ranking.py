"""Ranking: relevance tiers, then members holding, then a copy on the shelf near the patron."""

from yokodan import Availability, Holding, Record, SearchQuery, Work
from broker.ranking import distance_km, rank_works, relevance


def work(work_id: str, title: str, members: list[str], *, reading: str | None = None, authors: list[str] | None = None,
         available_at: list[str] | None = None, isbns: list[str] | None = None) -> Work:
    records = []
    for member in members:
        holdings = [
            Holding(member=member, branch_id=b, availability=Availability.AVAILABLE, status_text="貸出可")
            for b in (available_at or []) if b.startswith(member)
        ]
        records.append(Record(member=member, local_id=work_id, title=title, holdings=holdings))
    return Work(work_id=work_id, title=title, title_reading=reading, authors=authors or [], records=records, isbns=isbns or [])


def test_relevance_tiers() -> None:
    neko = work("w1", "吾輩は猫である", ["a"], reading="ワガハイ ワ ネコ デ アル", authors=["夏目漱石"])
    assert relevance(neko, SearchQuery(title="吾輩は猫である")) == 4
    assert relevance(neko, SearchQuery(text="ねこ")) == 3, "a hiragana word matches the katakana reading"
    assert relevance(neko, SearchQuery(text="猫 漱石")) == 2
    assert relevance(neko, SearchQuery(text="明治")) == 1
    assert relevance(work("w", "x", ["a"], isbns=["9784101010014"]), SearchQuery(isbn="9784101010014")) == 4


def test_relevance_beats_popularity_and_members_beat_availability() -> None:
    exact = work("exact", "こころ", ["a"])
    popular = work("popular", "こころの処方箋", ["a", "b", "c"])
    shelved = work("shelved", "こころの友", ["a", "b"], available_at=["a/1"])
    wide = work("wide", "こころの旅", ["a", "b"])
    ranked = rank_works([wide, shelved, popular, exact], SearchQuery(title="こころ"))
    assert [w.work_id for w in ranked] == ["exact", "popular", "shelved", "wide"]


def test_nearest_copy_on_the_shelf_first() -> None:
    okayama_chuo, tsuyama = (34.645233, 133.928451), (35.058843, 134.00048)
    coordinates = {"a/okayama": okayama_chuo, "b/tsuyama": tsuyama}
    far = work("far", "こころ 上", ["a", "b"], available_at=["b/tsuyama"])
    near = work("near", "こころ 下", ["a", "b"], available_at=["a/okayama"])
    query = SearchQuery(text="こころ")
    assert [w.work_id for w in rank_works([far, near], query, near=okayama_chuo, coordinates=coordinates)] == ["near", "far"]
    assert [w.work_id for w in rank_works([far, near], query, near=tsuyama, coordinates=coordinates)] == ["far", "near"]
    assert 45 < distance_km(okayama_chuo, tsuyama) < 47  # 岡山市立中央図書館 to 津山市立図書館
