"""The sandbox's CQL subset: parsing (AST, precedence, errors) and Zebra-like matching."""

from __future__ import annotations

import pytest

from sandbox.corpus import Corpus
from sandbox.cql import (
    BooleanNode,
    CQLError,
    SearchClause,
    SearchFields,
    compile_query,
    normalise,
    parse,
)


def record(
    title: str,
    *,
    reading: str = "",
    authors: tuple[str, ...] = (),
    isbns: tuple[str, ...] = (),
    year: int | None = None,
    publisher: str = "",
) -> SearchFields:
    return SearchFields.build(titles=[title, reading], authors=authors, isbns=isbns, year=year, other=[publisher])


WAGAHAI = record(
    "吾輩は猫である",
    reading="ワガハイ ワ ネコ デ アル",
    authors=("夏目, 漱石", "ナツメ, ソウセキ"),
    isbns=("9784101010014", "4101010013"),
    year=2003,
    publisher="新潮社",
)
KOKORO = record("こころ", reading="ココロ", authors=("夏目, 漱石",), isbns=("9784101010137", "4101010137"), year=2004)
TOKYO_MAP = record("東京都の地図", year=2010)
SOFTWARE = record("ｿﾌﾄｳｪｱ工学入門", year=1999)
HOBBIT = record("The hobbit, or, There and back again", authors=("Tolkien, J. R. R.",), year=1995)
STONE = record("Harry Potter and the philosopher's stone", authors=("Rowling, J. K.",), year=1997)
MULLER = record("Die Katze", authors=("Müller, Hans",), year=2020)
CORPUS = {
    "wagahai": WAGAHAI,
    "kokoro": KOKORO,
    "tokyo_map": TOKYO_MAP,
    "software": SOFTWARE,
    "hobbit": HOBBIT,
    "stone": STONE,
    "muller": MULLER,
}


def hits(query: str) -> set[str]:
    """The records `query` matches, by the predicate and by the set-wise corpus, which must agree."""
    predicate = compile_query(parse(query))
    by_predicate = {name for name, fields in CORPUS.items() if predicate(fields)}
    corpus = Corpus()
    ids = {corpus.add(fields): name for name, fields in CORPUS.items()}
    assert {ids[i] for i in corpus.matching(parse(query))} == by_predicate, query
    return by_predicate


def error_code(query: str) -> int:
    with pytest.raises(CQLError) as caught:
        compile_query(parse(query))
    return caught.value.code


# --- parsing -----------------------------------------------------------------


def test_bare_term_searches_any_index() -> None:
    assert parse("猫") == SearchClause("any", "=", "猫")


def test_booleans_have_equal_precedence_and_associate_left() -> None:
    a, b, c = (SearchClause("any", "=", t) for t in "abc")
    assert parse("a or b and c") == BooleanNode("and", BooleanNode("or", a, b), c)
    assert parse("a and b or c") == BooleanNode("or", BooleanNode("and", a, b), c)
    assert parse("a or (b and c)") == BooleanNode("or", a, BooleanNode("and", b, c))


def test_boolean_keywords_are_case_insensitive() -> None:
    assert parse("a AND b") == parse("a and b")
    assert parse("a Not b").op == "not"  # type: ignore[union-attr]


def test_index_and_relation_carry_over_to_juxtaposed_terms_and_groups() -> None:
    cat, hat = SearchClause("title", "=", "cat"), SearchClause("title", "=", "hat")
    assert parse("title=cat hat") == BooleanNode("and", cat, hat)
    assert parse("title=(cat or hat)") == BooleanNode("or", cat, hat)


def test_quoted_phrase_with_escaped_quote() -> None:
    assert parse(r'title="say \"hi\" now"') == SearchClause("title", "=", 'say "hi" now')


def test_quoted_keyword_is_a_term() -> None:
    assert parse('"and"') == SearchClause("any", "=", "and")


def test_index_prefixes_and_aliases() -> None:
    assert parse("dc.title=x").index == "title"  # type: ignore[union-attr]
    assert parse("bath.name=x").index == "author"  # type: ignore[union-attr]
    assert parse("dc.creator=x").index == "author"  # type: ignore[union-attr]
    assert parse("cql.serverChoice=x").index == "any"  # type: ignore[union-attr]
    assert parse("keyword=x").index == "any"  # type: ignore[union-attr]
    assert parse("dc.date>2000").index == "year"  # type: ignore[union-attr]


def test_word_relations_parse() -> None:
    assert parse('title all "猫 犬"').relation == "all"  # type: ignore[union-attr]
    assert parse("title ANY 猫").relation == "any"  # type: ignore[union-attr]
    assert parse('title adj "a b"').relation == "adj"  # type: ignore[union-attr]


def test_ranking_modifier_is_accepted() -> None:
    assert parse("title any/relevant 猫") == SearchClause("title", "any", "猫")


@pytest.mark.parametrize(
    "query",
    ["title=(computer", "title=", "(", ")", "a and", '"unterminated', "title=cat author=soseki", "", "   "],
)
def test_syntax_errors_are_diagnostic_10(query: str) -> None:
    assert error_code(query) == 10


@pytest.mark.parametrize("query", ["foo=bar", "subject=x", "marc.title=x", "any==x"])
def test_unknown_index_is_diagnostic_16(query: str) -> None:
    assert error_code(query) == 16


@pytest.mark.parametrize("query", ["title<x", "author>=x", "year all 2000", "title<>x", "isbn>1"])
def test_unsupported_relation_is_diagnostic_19(query: str) -> None:
    assert error_code(query) == 19


def test_other_diagnostics() -> None:
    assert error_code("title=c*r") == 28  # masking inside a term
    assert error_code("year=abc") == 36
    assert error_code("a prox b") == 37
    assert error_code("title =/fuzzy x") == 20


def test_error_carries_details() -> None:
    with pytest.raises(CQLError) as caught:
        parse("foo=bar")
    assert (caught.value.code, caught.value.message, caught.value.details) == (16, "Unsupported index", "foo")


# --- matching ----------------------------------------------------------------


def test_japanese_term_matches_as_substring() -> None:
    assert hits("title=猫") == {"wagahai"}
    assert hits("title=輩は猫") == {"wagahai"}
    assert hits("title=猫である") == {"wagahai"}
    assert hits("title=猫犬") == set()


def test_substring_search_gives_zebras_false_positive() -> None:
    assert hits("title=京都") == {"tokyo_map"}  # 東京都 contains 京都


def test_reading_is_searchable_but_kana_is_not_folded() -> None:
    assert hits("title=ネコ") == {"wagahai"}  # via the 880 reading
    assert hits("title=ねこ") == set()


def test_nfkc_width_and_case_folding() -> None:
    assert hits("title=ソフトウェア") == {"software"}
    assert hits("title=ＨＯＢＢＩＴ") == {"hobbit"}
    assert normalise("Ｐｙｔｈｏｎ") == normalise("python")


def test_latin_diacritics_and_apostrophes_fold() -> None:
    assert hits("author=muller") == {"muller"}
    assert hits("title=philosophers") == {"stone"}


def test_latin_words_match_whole_words_only() -> None:
    assert hits("title=hob") == set()
    assert hits("title=hob*") == {"hobbit"}
    assert hits("title=*bbit") == {"hobbit"}


def test_equals_requires_every_word() -> None:
    assert hits('title="hobbit back"') == {"hobbit"}
    assert hits('title="hobbit stone"') == set()
    assert hits('author="夏目, 漱石"') == {"wagahai", "kokoro"}


def test_all_any_adj() -> None:
    assert hits("title all hobbit back") == {"hobbit"}
    assert hits('title any "hobbit stone"') == {"hobbit", "stone"}
    assert hits('title adj "there and back"') == {"hobbit"}
    assert hits('title adj "back and there"') == set()


def test_exact_relation_matches_whole_field() -> None:
    assert hits("title==吾輩は猫である") == {"wagahai"}
    assert hits("title==吾輩") == set()
    assert hits('author=="夏目漱石"') == {"wagahai", "kokoro"}  # punctuation does not count


def test_author_aliases() -> None:
    assert (
        hits("author=漱石")
        == hits("creator=漱石")
        == hits("dc.creator=漱石")
        == hits("name=漱石")
        == {"wagahai", "kokoro"}
    )
    assert hits("author=ソウセキ") == {"wagahai"}  # the reading in 880
    assert hits('author="J.R.R. Tolkien"') == {"hobbit"}


def test_isbn_matches_10_and_13_digit_forms_with_or_without_hyphens() -> None:
    for form in ("9784101010137", "4101010137", "978-4-10-101013-7", "4-10-101013-7"):
        assert hits(f"isbn={form}") == {"kokoro"}, form
    assert hits("bath.isbn=978410101001*") == {"wagahai"}
    assert hits("isbn=9784101010138") == set()  # wrong check digit


def test_bare_isbn_keyword_finds_the_book() -> None:
    assert hits("978-4-10-101013-7") == {"kokoro"}


def test_any_index_and_bare_terms_cover_every_field() -> None:
    assert hits("新潮社") == {"wagahai"}
    assert hits("keyword=tolkien") == {"hobbit"}
    assert hits("cql.serverChoice=hobbit") == {"hobbit"}
    assert hits("夏目 こころ") == {"kokoro"}  # juxtaposed bare words are AND


def test_year_relations() -> None:
    assert hits("year=2003") == {"wagahai"}
    assert hits("date<1996") == {"hobbit"}
    assert hits("year<=1999") == {"hobbit", "stone", "software"}
    assert hits("dc.date>2004") == {"tokyo_map", "muller"}
    assert hits("year>=2004 and year<2011") == {"kokoro", "tokyo_map"}


def test_boolean_evaluation() -> None:
    assert hits("author=漱石 not title=猫") == {"kokoro"}
    assert hits("title=猫 or title=こころ") == {"wagahai", "kokoro"}
    assert hits("author=漱石 and (year=2003 or title=hobbit)") == {"wagahai"}


def test_all_records() -> None:
    assert hits("cql.allRecords=1") == set(CORPUS)


def test_punctuation_only_term_matches_nothing() -> None:
    assert hits('title="・"') == set()


# The process-wide corpus answers the members' searches (sandbox/corpus.py); over the generated
# catalogue it must find exactly what the predicate finds record by record, for every kind of clause.
CATALOGUE_QUERIES = [
    "猫", "夏目", "夏目 漱石", "title=の", "author=宮沢", "歴史 or 料理", "岡山 not 歴史", "title=旅 and year>=2000",
    "isbn=978*", "year=2015", "title==吾輩は猫である", "any=新潮社", "title adj \"の歴史\"", "title any \"海 山\"",
    "pyth*", "*tion", "cql.allRecords=1 not title=の", "dc.creator=ナツメ", "the", "Harry Potter", "isbn=9784101010014",
]


@pytest.mark.parametrize("query", CATALOGUE_QUERIES)
def test_corpus_search_matches_the_predicate_over_the_generated_catalogue(query: str) -> None:
    from sandbox.catalogue import generate_catalogue
    from sandbox.member import _search_fields

    fields = [_search_fields(work, None, True) for work in generate_catalogue().works]
    corpus = Corpus()
    ids = [corpus.add(f) for f in fields]
    predicate = compile_query(parse(query))
    expected = [i for i, f in enumerate(fields) if predicate(f)]
    matching = corpus.matching(parse(query))
    assert expected, "a query that finds nothing compares nothing"
    assert [i for i, record in enumerate(ids) if record in matching] == expected


def test_corpus_answers_a_query_again_once_records_were_added() -> None:
    # Sandboxes built later in one process (tests build many) add records after queries were kept.
    corpus = Corpus()
    first = corpus.add(WAGAHAI)
    assert corpus.query("title=猫") == {first}
    assert corpus.containing("title", " 猫 ") == {first}
    later = corpus.add(record("猫の事務所", year=2001))
    assert corpus.add(WAGAHAI) == first, "a record is registered once"
    assert corpus.query("title=猫") == {first, later}
    assert corpus.containing("title", " 猫 ") == {first, later}
