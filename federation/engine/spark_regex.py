"""DuckDB's regular expressions (RE2) as Java regular expressions (Spark's ``RLIKE``) with the same meaning.

DuckDB's ``regexp_matches(s, p)`` and Spark's ``s RLIKE p`` are both partial matches (a match anywhere in
``s``), but the two syntaxes differ in places: RE2's ``.`` matches every character but ``\\n`` (Java's also
stops at ``\\r``, ``\\u0085``, ``\\u2028``, ``\\u2029``), RE2's ``$`` is the end of the text (Java's also
matches before a final line break), RE2's ``\\s`` is ``[\\t\\n\\f\\r ]`` (Java's adds ``\\x0B``), RE2's ``\\v`` is
``\\x0B`` (Java's is any vertical space), ``[[:alpha:]]`` is a POSIX class in RE2 and a union in Java, ``&&``
an intersection in Java only, ``a*+`` possessive in Java and an error in RE2.

:func:`java_pattern` translates the subset whose meaning it can prove the same (literals, escaped
punctuation, ``\\d \\w \\D \\W \\s \\S \\n \\t \\r \\f \\v \\xHH \\A \\z``, ``. ^ $``, classes with ranges and
negation, groups ``( )`` and ``(?: )``, alternation, the greedy and lazy quantifiers ``* + ? {n} {n,}
{n,m}`` up to 1000) and raises :class:`Untranslatable` naming the first construct it cannot.
"""

from __future__ import annotations

import re

MAX_REPEAT = 1000  # RE2's limit: a larger count is an error in DuckDB
_SPACE = r"\t\n\f\r "
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_HEX = re.compile(r"x([0-9A-Fa-f]{2}|\{[0-9A-Fa-f]{1,6}\})")


class Untranslatable(ValueError):
    """A pattern (or a construct in it) whose meaning on Spark could differ from DuckDB's."""


def java_pattern(pattern: str) -> str:
    """The Java regular expression matching exactly the strings RE2 matches with ``pattern``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    can_repeat = False  # the previous item takes a quantifier (not at a start, after '|', '(' or a quantifier)
    depth = 0
    while i < n:
        c = pattern[i]
        if ord(c) > 0xFFFF:
            raise Untranslatable("a character outside the Basic Multilingual Plane")
        if c == "\\":
            text, i = _escape(pattern, i, in_class=False)
            out.append(text)
            can_repeat = text not in (r"\A", r"\z")
            continue
        if c == "[":
            text, i = _class(pattern, i)
            out.append(text)
            can_repeat = True
            continue
        if c in "*+?" or (c == "{" and _REPEAT.match(pattern, i)):
            if not can_repeat:
                raise Untranslatable(f"the quantifier {c!r} at offset {i} repeats nothing")
            if c == "{":
                m = _REPEAT.match(pattern, i)
                low, comma, high = int(m.group(1)), m.group(2), m.group(3)
                if low > MAX_REPEAT or (high and (int(high) > MAX_REPEAT or int(high) < low)):
                    raise Untranslatable(f"the repetition {m.group(0)} (at most {MAX_REPEAT}, in order)")
                out.append(m.group(0))
                i = m.end()
            else:
                out.append(c)
                i += 1
            if i < n and pattern[i] == "?":  # lazy: the same in both
                out.append("?")
                i += 1
            if i < n and pattern[i] in "*+?{":
                raise Untranslatable(f"a repeated quantifier at offset {i} (possessive in Spark, an error in DuckDB)")
            can_repeat = False
            continue
        if c == "(":
            if pattern.startswith("(?:", i):
                out.append("(?:")
                i += 3
            elif pattern.startswith("(?", i):
                raise Untranslatable(f"the group {pattern[i:i + 4]!r}... (flags, names, look-arounds)")
            else:
                out.append("(")
                i += 1
            depth += 1
            can_repeat = False
            continue
        if c == ")":
            depth -= 1
            if depth < 0:
                raise Untranslatable(f"an unmatched ')' at offset {i}")
            out.append(")")
            can_repeat = True
        elif c == "|":
            out.append("|")
            can_repeat = False
        elif c == ".":
            out.append(r"[^\n]")  # RE2: anything but a newline; Java's '.' also stops at \r and others
            can_repeat = True
        elif c == "$":
            out.append(r"\z")  # RE2: the end of the text; Java's '$' also matches before a final line break
            can_repeat = False
        elif c == "^":
            out.append("^")
            can_repeat = False
        elif c == "{":
            out.append(r"\{")  # not a repetition: a literal brace in RE2, an error in Java
            can_repeat = True
        elif c.isalnum() or c == "_" or c in " !\"#%&',-/:;<=>@]}`~" or ord(c) > 127:
            out.append(_literal(c))
            can_repeat = True
        else:
            raise Untranslatable(f"the character {c!r} at offset {i}")
        i += 1
    if depth:
        raise Untranslatable("an unclosed group")
    return "".join(out)


def _literal(c: str) -> str:
    if ord(c) < 32 or ord(c) == 127:
        return f"\\x{ord(c):02x}"
    return "\\" + c if c in "]}" else c


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise Untranslatable("a trailing backslash")
    e = pattern[i + 1]
    if e in "dwDW" and not (in_class and e in "DW"):
        return "\\" + e, i + 2
    if e == "s":
        return (_SPACE if in_class else f"[{_SPACE}]"), i + 2
    if e == "S" and not in_class:
        return f"[^{_SPACE}]", i + 2
    if e in "ntrf":
        return "\\" + e, i + 2
    if e == "v":
        return r"\x0B", i + 2
    if e in "Az" and not in_class:
        return "\\" + e, i + 2
    if e == "x":
        m = _HEX.match(pattern, i + 1)
        if not m:
            raise Untranslatable(f"the escape \\x at offset {i}")
        digits = m.group(1).strip("{}")
        if int(digits, 16) > 0xFFFF:
            raise Untranslatable("a character outside the Basic Multilingual Plane")
        return f"\\x{{{digits}}}", m.end()
    if ord(e) < 128 and not e.isalnum() and e.isprintable():
        return "\\" + e, i + 2  # escaped punctuation: the character itself in both
    raise Untranslatable(f"the escape \\{e} at offset {i}")


def _class(pattern: str, i: int) -> tuple[str, int]:
    out = ["["]
    i += 1
    n = len(pattern)
    if i < n and pattern[i] == "^":
        out.append("^")
        i += 1
    if i < n and pattern[i] == "]":
        raise Untranslatable(f"a ']' first in a class at offset {i} (write \\])")
    while True:
        if i >= n:
            raise Untranslatable("an unclosed character class")
        c = pattern[i]
        if ord(c) > 0xFFFF:
            raise Untranslatable("a character outside the Basic Multilingual Plane")
        if c == "]":
            out.append("]")
            return "".join(out), i + 1
        if c == "\\":
            text, i = _escape(pattern, i, in_class=True)
            out.append(text)
            continue
        if c == "[":
            raise Untranslatable(f"a '[' inside a character class at offset {i} (POSIX classes, unions)")
        if c == "&" and pattern.startswith("&&", i):
            raise Untranslatable(f"'&&' inside a character class at offset {i} (an intersection in Spark)")
        if ord(c) < 32 or ord(c) == 127:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
        i += 1
