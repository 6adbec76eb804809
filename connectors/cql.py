"""CQL parsing (a subset, read the way YAZ reads it): the AST, the tokenizer and the parser.

Shared by the sandbox's simulated SRU members (which evaluate the AST Zebra's way, sandbox/cql.py)
and the broker's own SRU server (which plans federated searches from it, broker/cql.py).

* booleans have equal precedence and associate to the left (CQL's rule);
* an index and relation carry over to juxtaposed terms and parenthesised
  sub-queries, as in YAZ: `title=cat hat` = `title=cat and title=hat`;
* index names are canonicalised (dc.title -> title, cql.serverChoice -> any, dc.date -> year);
  an unknown index or context set is diagnostic 16, an unsupported relation 19,
  a relation modifier 20, `prox` 37, anything unparsable 10.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from yokodan.errors import BadRequest


class CQLError(BadRequest):
    """A query the server cannot run; `code` is the SRU diagnostic number."""

    def __init__(self, code: int, message: str, details: str | None = None) -> None:
        super().__init__(f"{code} {message}" + (f": {details}" if details else ""))
        self.code = code
        self.message = message
        self.details = details


# --- AST ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchClause:
    index: str  # canonical: title, author, isbn, any, year, allrecords
    relation: str  # =, ==, all, any, adj, <, <=, >, >=
    term: str


@dataclass(frozen=True, slots=True)
class BooleanNode:
    op: str  # and, or, not
    left: Node
    right: Node


Node = SearchClause | BooleanNode

_INDEX_ALIASES = {
    "title": "title",
    "author": "author",
    "creator": "author",
    "name": "author",
    "isbn": "isbn",
    "any": "any",
    "keyword": "any",
    "serverchoice": "any",
    "anywhere": "any",
    "year": "year",
    "date": "year",
    "allrecords": "allrecords",
}
_CONTEXT_SETS = {"dc", "bath", "cql", "local"}
_WORD_RELATIONS = {"all", "any", "adj"}
_BOOLEANS = {"and", "or", "not", "prox"}
_TEXT_RELATIONS = {"=", "==", "all", "any", "adj"}
_RELATIONS_BY_INDEX = {
    "title": _TEXT_RELATIONS,
    "author": _TEXT_RELATIONS,
    "isbn": _TEXT_RELATIONS,
    # Zebra has no complete-field register for `any`: `any == x` is diagnostic 16, not 19.
    "any": _TEXT_RELATIONS - {"=="},
    "year": {"=", "==", "<", "<=", ">", ">="},
    "allrecords": {"="},
}
_IGNORED_MODIFIERS = {"relevant", "cql.relevant", "rel.relevant"}  # ranking hints: results keep catalogue order


# --- tokenizer ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "/", "rel", "word"
    text: str
    quoted: bool = False

    def is_keyword(self, words: set[str]) -> bool:
        return self.kind == "word" and not self.quoted and self.text.lower() in words


_TOKEN = re.compile(
    r'\s*(?:(?P<punct>[()/])|(?P<rel>==|<=|>=|<>|[=<>])|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s()/=<>"]+))'
)
_ESCAPE = re.compile(r"\\(.)")


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    end = len(query.rstrip())
    while position < end:
        match = _TOKEN.match(query, position)
        if match is None:  # only an unterminated quote gets here
            raise CQLError(10, "Query syntax error", f"unterminated quote at {position}")
        position = match.end()
        if match["punct"]:
            tokens.append(_Token(match["punct"], match["punct"]))
        elif match["rel"]:
            tokens.append(_Token("rel", match["rel"]))
        elif match["quoted"] is not None:
            # \" and \\ are escapes; \* and \? keep their backslash so truncation sees them as literal.
            text = _ESCAPE.sub(lambda m: m[1] if m[1] in '"\\' else m[0], match["quoted"])
            tokens.append(_Token("word", text, quoted=True))
        else:
            tokens.append(_Token("word", match["word"]))
    return tokens


# --- parser -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    index: str
    relation: str


_DEFAULT_CONTEXT = _Context("any", "=")


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _tokenize(query)
        self.position = 0

    def peek(self, offset: int = 0) -> _Token | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise CQLError(10, "Query syntax error", "unexpected end of query")
        self.position += 1
        return token

    def parse(self) -> Node:
        node = self.query(_DEFAULT_CONTEXT)
        if (token := self.peek()) is not None:
            raise CQLError(10, "Query syntax error", f"unexpected {token.text!r}")
        return node

    def query(self, context: _Context) -> Node:
        """query := clause (boolean clause)*  — equal precedence, left to right."""
        node = self.clause(context)
        while (token := self.peek()) is not None and token.is_keyword(_BOOLEANS):
            self.take()
            op = token.text.lower()
            if op == "prox":
                raise CQLError(37, "Unsupported boolean operator", "prox")
            node = BooleanNode(op, node, self.clause(context))
        return node

    def clause(self, context: _Context) -> Node:
        """clause := '(' query ')' | index relation clause | term term*"""
        token = self.peek()
        if token is None:
            raise CQLError(10, "Query syntax error", "unexpected end of query")
        if token.kind == "(":
            self.take()
            group = self.query(context)
            if self.take().kind != ")":
                raise CQLError(10, "Query syntax error", "missing )")
            return group
        if self.starts_index_relation():
            return self.clause(self.index_relation())
        if token.kind != "word" or token.is_keyword(_BOOLEANS):
            raise CQLError(10, "Query syntax error", f"unexpected {token.text!r}")
        node: Node = SearchClause(context.index, context.relation, self.take().text)
        # Juxtaposed terms are AND-ed under the same index and relation (YAZ).
        while (
            (nxt := self.peek()) is not None
            and nxt.kind == "word"
            and not nxt.is_keyword(_BOOLEANS)
            and not self.starts_index_relation()
        ):
            node = BooleanNode("and", node, SearchClause(context.index, context.relation, self.take().text))
        return node

    def starts_index_relation(self) -> bool:
        token, nxt = self.peek(), self.peek(1)
        if token is None or token.kind != "word" or token.quoted or nxt is None:
            return False
        return nxt.kind == "rel" or nxt.is_keyword(_WORD_RELATIONS)

    def index_relation(self) -> _Context:
        index = _canonical_index(self.take().text)
        relation = self.take().text.lower()
        while (token := self.peek()) is not None and token.kind == "/":
            self.take()
            modifier = self.take()
            if modifier.text.lower() not in _IGNORED_MODIFIERS:
                raise CQLError(20, "Unsupported relation modifier", modifier.text)
        if relation not in _RELATIONS_BY_INDEX[index]:
            if index == "any" and relation == "==":
                raise CQLError(16, "Unsupported index", "any")
            raise CQLError(19, "Unsupported relation", relation)
        return _Context(index, relation)


def _canonical_index(name: str) -> str:
    lowered = name.lower()
    prefix, dot, base = lowered.rpartition(".")
    if dot and prefix not in _CONTEXT_SETS:
        raise CQLError(16, "Unsupported index", name)
    if base not in _INDEX_ALIASES:
        raise CQLError(16, "Unsupported index", name)
    return _INDEX_ALIASES[base]


def parse(query: str) -> Node:
    """Parse a CQL query into an AST; raises `CQLError` (10, 16, 19, 20, 37)."""
    return _Parser(query).parse()
