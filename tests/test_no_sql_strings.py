"""No SQL built from strings in gateway/, models/, handlers/ or parsers/.

Every statement is SQLAlchemy's expression language with bound parameters. The source
is read with `ast`, and these are refused:

- `text(...)`, `literal_column(...)` and `DDL(...)` of SQLAlchemy (however imported)
  with anything but a plain string literal;
- `.execute(...)`, `.executemany(...)`, `.executescript(...)` and `.exec_driver_sql(...)`
  of anything (a session, a connection, a DB-API cursor) given a string built at run
  time: an f-string with a placeholder, `+` or `%`, `.format(...)`, `"…".join(...)`, or
  a name assigned such a string in the same file.

What is truly needed is listed in ALLOWED, each with its reason; an entry that no longer
matches anything fails too, so the list stays true.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("gateway", "models", "handlers", "parsers")
SQL_FUNCTIONS = frozenset({"text", "literal_column", "DDL"})
SQL_MODULES = ("sqlalchemy",)
EXECUTE_METHODS = frozenset({"execute", "executemany", "executescript", "exec_driver_sql"})
FORMATTERS = frozenset({"format", "format_map"})

# (file, the argument's source) -> why it is safe
ALLOWED: dict[tuple[str, str], str] = {
    ("models/db.py", 'f"PRAGMA synchronous={synchronous}"'): (
        "SQLite's PRAGMA takes no bound parameters; `synchronous` is one of FULL, NORMAL, "
        "EXTRA, checked at the top of make_engine before it is used"
    ),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    call: str
    argument: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}({self.argument})"


def _sql_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to SQLAlchemy's text-like functions, and to SQLAlchemy modules."""
    functions: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(SQL_MODULES):
            for alias in node.names:
                if alias.name in SQL_FUNCTIONS:
                    functions.add(alias.asname or alias.name)
                else:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(SQL_MODULES):
                    modules.add(alias.asname or alias.name.split(".")[0])
    return functions, modules


def _is_built(node: ast.expr) -> bool:
    """Whether the expression builds a string at run time."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return True
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    on_literal = isinstance(node.func.value, ast.Constant) and isinstance(
        node.func.value.value, str
    )
    # `.join` only of a string literal: `select(...).join(...)` is SQLAlchemy's JOIN
    return node.func.attr in FORMATTERS or (node.func.attr == "join" and on_literal)


def _built_names(tree: ast.Module) -> set[str]:
    """Names assigned a string built at run time anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_built(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            value = node.value
            if isinstance(node, ast.AugAssign) or (value is not None and _is_built(value)):
                names.add(node.target.id)
    return names


def _statement_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg in ("statement", "sql", "text", "operation"):
            return keyword.value
    return None


def find_sql_from_strings(source: str, path: str = "<string>") -> list[Finding]:
    """Every call in `source` that hands SQL built from strings to the database."""
    tree = ast.parse(source)
    functions, modules = _sql_names(tree)
    built = _built_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        argument = _statement_argument(node)
        if argument is None:
            continue
        sql_function = (isinstance(func, ast.Name) and func.id in functions) or (
            isinstance(func, ast.Attribute)
            and func.attr in SQL_FUNCTIONS
            and isinstance(func.value, ast.Name | ast.Attribute)
            and ast.unparse(func.value).split(".")[0] in modules
        )
        if sql_function:
            bad = not (isinstance(argument, ast.Constant) and isinstance(argument.value, str))
        elif isinstance(func, ast.Attribute) and func.attr in EXECUTE_METHODS:
            bad = _is_built(argument) or (isinstance(argument, ast.Name) and argument.id in built)
        else:
            continue
        if bad:
            written = ast.get_source_segment(source, argument) or ast.unparse(argument)
            found.append(Finding(path, node.lineno, ast.unparse(func), written))
    return found


def scan(root: Path) -> list[Finding]:
    found = []
    for folder in SCANNED:
        for file in sorted((root / folder).rglob("*.py")):
            path = file.relative_to(root).as_posix()
            found += find_sql_from_strings(file.read_text(encoding="utf-8"), path)
    return found


def test_no_sql_is_built_from_strings() -> None:
    found = scan(ROOT)
    refused = [f for f in found if (f.path, f.argument) not in ALLOWED]
    assert not refused, "SQL built from strings:\n" + "\n".join(map(str, refused))
    stale = set(ALLOWED) - {(f.path, f.argument) for f in found}
    assert not stale, f"ALLOWED entries that match nothing any more: {sorted(stale)}"


OFFENDING = [
    'from sqlalchemy import text\nsession.execute(text(f"SELECT * FROM cases WHERE code = {c}"))',
    'from sqlalchemy import text as sql\nsql("SELECT * FROM t WHERE a = \'" + a + "\'")',
    'import sqlalchemy as sa\nq = sa.text("DELETE FROM " + table)',
    "from sqlalchemy import text\nstatement = 'SELECT 1'\ntext(statement)",
    "from sqlalchemy.sql import literal_column\nliteral_column(name)",
    'from sqlalchemy.schema import DDL\nDDL(f"DROP TABLE {name}")',
    'conn.exec_driver_sql("SELECT * FROM t WHERE a = {}".format(a))',
    'cursor.execute("SELECT * FROM t WHERE a = %s" % a)',
    'cursor.executescript(";".join(statements))',
    'def f(a):\n    q = f"SELECT {a}"\n    return conn.execute(q)',
    'q = "SELECT 1"\nq += where\ncursor.execute(q)',
    'await session.execute(statement=f"UPDATE t SET a = {a}")',
]
CLEAN = [
    "from sqlalchemy import select\nsession.execute(select(Case).where(Case.code == code))",
    'from sqlalchemy import text\nconn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": k})',
    'cursor.execute("PRAGMA foreign_keys=ON")',
    "session.execute(_MARK_HANDLED, {'inbound_id': 1})",
    "stmt = select(Case).join(Contact, Contact.id == Case.contact_id)\nsession.execute(stmt)",
    'config.text(f"help_{name}", language)',  # a reply text, not SQL
    'protocol.execute(command)\nprint(f"{x}")',
]


@pytest.mark.parametrize("source", OFFENDING)
def test_the_checker_finds_each_way_of_building_sql(source: str) -> None:
    assert len(find_sql_from_strings(source)) == 1, source


@pytest.mark.parametrize("source", CLEAN)
def test_the_checker_lets_statements_and_literals_be(source: str) -> None:
    assert find_sql_from_strings(source) == []


def test_an_offending_line_in_a_copy_of_the_tree_is_found(tmp_path: Path) -> None:
    for folder in SCANNED:
        for file in (ROOT / folder).rglob("*.py"):
            copy = tmp_path / file.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
    models = tmp_path / "models" / "cases.py"
    offending = (
        "\n\nasync def by_code(session, code):\n"
        "    from sqlalchemy import text\n"
        '    return await session.execute(text(f"SELECT * FROM cases WHERE code = {code}"))\n'
    )
    models.write_text(models.read_text(encoding="utf-8") + offending, encoding="utf-8")
    found = [f for f in scan(tmp_path) if (f.path, f.argument) not in ALLOWED]
    assert [(f.path, f.call) for f in found] == [("models/cases.py", "text")]
