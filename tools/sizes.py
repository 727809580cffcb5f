"""Print the biggest file and the longest function (in lines) of logistics/ and sensors/.

python tools/sizes.py            one line of JSON
"""

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("logistics", "sensors")


def sources() -> list[Path]:
    """Every Python file of the packages, migrations left out (generated, never edited)."""
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def functions(path: Path) -> list[tuple[str, int]]:
    """Each function's qualified name and its length in lines, decorators included."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    found.append((name, child.end_lineno - first + 1))
                visit(child, name + ".")

    visit(tree, "")
    return found


def figures(files: list[tuple[str, int]]) -> dict[str, object]:
    """The biggest of these files and the longest function in them."""
    funcs = [(f"{rel}:{name}", n) for rel, _ in files for name, n in functions(ROOT / rel)]
    biggest = max(files, key=lambda item: item[1])
    longest = max(funcs, key=lambda item: item[1])
    return {
        "biggest_file": biggest[0],
        "biggest_file_lines": biggest[1],
        "longest_function": longest[0],
        "longest_function_lines": longest[1],
        "files": len(files),
        "functions": len(funcs),
    }


def main() -> None:
    files = [(str(p.relative_to(ROOT)), len(p.read_text().splitlines())) for p in sources()]
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    funcs = [(f"{rel}:{name}", n) for rel, _ in files for name, n in functions(ROOT / rel)]
    for rel, n in sorted(files, key=lambda item: -item[1])[:top]:
        print(f"{n:6d}  {rel}")
    for name, n in sorted(funcs, key=lambda item: -item[1])[:top]:
        print(f"{n:6d}  {name}")
    result = {"all": figures(files)}
    for package in PACKAGES:
        result[package] = figures([f for f in files if f[0].startswith(package + "/")])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
