"""A CQL query as federated searches: the AST (connectors/cql.py) in disjunctive normal form.

The members are asked with a `yokodan.SearchQuery`, which can only AND fields together.
So a CQL query is rewritten as an OR of conjunctions: each conjunction's positive clauses
become one `SearchQuery` (one fan-out to every member), its negated clauses a local filter on
the merged works, and the server unions the alternatives. Why these choices:

* OR runs as several searches merged: each alternative is exactly what members can answer,
  so the union is as good as each member's own result list. Alternatives are capped
  (`MAX_ALTERNATIVES`): each one costs a fan-out to every member, and `title any "a b c …"`
  must not become a denial of service; above the cap the answer is diagnostic 48.
* NOT cannot be sent to members (they return only their first page, so subtracting a second
  search's page would keep records that match the excluded clause): it is applied to the
  merged works' own fields instead (`keep`). CQL's NOT is binary (`a not b` = a AND NOT b),
  so every alternative keeps a positive clause; one without would need every record of
  every member, and is refused with diagnostic 48 should a rewrite ever produce it.
* `cql.allRecords` likewise: diagnostic 48.
* Relations: `=`, `all`, `adj` (and quoted phrases), `==` send the words ANDed, which is
  what members match (each member cuts terms its own way, yokodan/terms.py); `any` is an OR
  of its words. Year takes `=`/`==` only (the structured query has one year): others are 19.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from pydantic import ValidationError

from connectors.cql import BooleanNode, CQLError, Node, SearchClause, parse
from yokodan import SearchQuery, Work
from yokodan import isbn as isbn_tools

MAX_ALTERNATIVES = 8

_FIELD_BY_INDEX = {"any": "text", "title": "title", "author": "author", "isbn": "isbn", "year": "year"}


@dataclass(frozen=True, slots=True)
class Literal:
    clause: SearchClause
    positive: bool


Conjunction = tuple[Literal, ...]


@dataclass(slots=True)
class Alternative:
    """One federated search: `query` asks the members, `excluded` filters the merged works.

    `query` is None when the conjunction cannot match anything (two different ISBNs or years,
    or an ISBN that is not one): the alternative contributes no works and asks nobody.
    """

    query: SearchQuery | None
    excluded: list[SearchClause] = field(default_factory=list)


def plan(cql: str, *, page_size: int) -> list[Alternative]:
    """The searches that answer `cql`; raises `CQLError` (10, 16, 19, 20, 27, 37, 48)."""
    try:
        node = parse(cql)
        conjunctions = _dnf(_expand_any(node), negate=False)
    except RecursionError:  # the parser and the rewrite recurse once per nesting level
        raise CQLError(10, "Query syntax error", "query nested too deeply") from None
    if len(conjunctions) > MAX_ALTERNATIVES:
        raise CQLError(
            48, "Query feature unsupported", f"the query expands to {len(conjunctions)} OR alternatives (at most {MAX_ALTERNATIVES})"
        )
    return [_alternative(c, page_size) for c in conjunctions]


def _expand_any(node: Node) -> Node:
    """`title any "a b"` -> `title=a or title=b`; other clauses keep their words together."""
    if isinstance(node, BooleanNode):
        return BooleanNode(node.op, _expand_any(node.left), _expand_any(node.right))
    if node.index == "allrecords":
        raise CQLError(48, "Query feature unsupported", "cql.allRecords: a federated search needs search terms")
    if node.index == "year" and node.relation not in ("=", "=="):
        raise CQLError(19, "Unsupported relation", f"year {node.relation}: only year=YYYY")
    words = node.term.split()
    if not words:
        raise CQLError(27, "Empty term unsupported", node.index)
    if node.relation != "any" or len(words) == 1:
        return node
    expanded: Node = SearchClause(node.index, "=", words[0])
    for word in words[1:]:
        expanded = BooleanNode("or", expanded, SearchClause(node.index, "=", word))
    return expanded


def _dnf(node: Node, *, negate: bool) -> list[Conjunction]:
    if isinstance(node, SearchClause):
        return [(Literal(node, not negate),)]
    op = node.op
    if op == "not":  # a NOT b = a AND (NOT b)
        left, right = _dnf(node.left, negate=negate), _dnf(node.right, negate=not negate)
        op = "or" if negate else "and"  # NOT (a AND NOT b) = NOT a OR b
    else:
        left, right = _dnf(node.left, negate=negate), _dnf(node.right, negate=negate)
        if negate:  # De Morgan
            op = "or" if op == "and" else "and"
    if op == "or":
        return left + right
    product = [l + r for l in left for r in right]
    if len(product) > MAX_ALTERNATIVES:  # stop before the cross product grows further
        raise CQLError(48, "Query feature unsupported", f"the query expands to more than {MAX_ALTERNATIVES} OR alternatives")
    return product


def _alternative(conjunction: Conjunction, page_size: int) -> Alternative:
    positive = [lit.clause for lit in conjunction if lit.positive]
    excluded = [lit.clause for lit in conjunction if not lit.positive]
    if not positive:
        raise CQLError(48, "Query feature unsupported", "NOT needs a positive clause beside it: members cannot list every record")
    words: dict[str, list[str]] = {"text": [], "title": [], "author": []}
    isbns: set[str] = set()
    years: set[int] = set()
    for clause in positive:
        name = _FIELD_BY_INDEX[clause.index]
        if name == "isbn":
            isbn13 = isbn_tools.to_isbn13(isbn_tools.compact(clause.term))
            if isbn13 is None:
                return Alternative(None, excluded)  # not an ISBN: matches nothing
            isbns.add(isbn13)
        elif name == "year":
            years.add(_year(clause.term))
        else:
            words[name].append(clause.term)
    if len(isbns) > 1 or len(years) > 1:
        return Alternative(None, excluded)
    try:
        query = SearchQuery(
            text=" ".join(words["text"]) or None,
            title=" ".join(words["title"]) or None,
            author=" ".join(words["author"]) or None,
            isbn=next(iter(isbns), None),
            year=next(iter(years), None),
            page_size=page_size,
        )
    except ValidationError as exc:  # a term longer than a member may be sent
        raise CQLError(36, "Term in invalid format for index or relation", exc.errors()[0]["msg"]) from None
    for clause in excluded:
        if clause.index == "year":
            _year(clause.term)  # a bad year is a bad query, negated or not
    return Alternative(query, excluded)


def _year(term: str) -> int:
    try:
        year = int(term.strip())
    except ValueError:
        year = -1
    if not 0 <= year <= 9999:
        raise CQLError(36, "Term in invalid format for index or relation", f"year {term!r}")
    return year


def _fold(text: str) -> str:
    """Case, width and spacing folded: a local test, close to what members match."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def work_matches(work: Work, clause: SearchClause) -> bool:
    """Whether a merged work visibly matches one clause (its own titles, authors, ISBNs, year)."""
    if clause.index == "year":
        return work.year is not None and work.year == _year(clause.term)
    if clause.index == "isbn":
        wanted = isbn_tools.to_isbn13(isbn_tools.compact(clause.term))
        return wanted is not None and any(wanted in r.isbns for r in work.records)
    titles = [work.title, *(r.title for r in work.records), *(r.title_reading or "" for r in work.records)]
    authors = [*work.authors, *(a for r in work.records for a in (*r.authors, *r.author_readings))]
    haystacks = {"title": titles, "author": authors}.get(clause.index)
    if haystacks is None:  # any
        haystacks = titles + authors + [r.publisher or "" for r in work.records] + [i for r in work.records for i in r.isbns]
    folded = [_fold(h) for h in haystacks if h]
    needles = [_fold(w) for w in clause.term.split()]
    return all(any(n in h for h in folded) for n in needles if n)


def keep(work: Work, excluded: list[SearchClause]) -> bool:
    return not any(work_matches(work, clause) for clause in excluded)
