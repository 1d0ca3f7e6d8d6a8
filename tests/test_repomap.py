"""The repository map: tags from real code in each supported language, files ranked by how
the rest of the code uses them, the tag cache, and the text a prompt shows for a file."""

from __future__ import annotations

import math
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from runs.engine.repomap import (
    Tag,
    TagIndex,
    file_tags,
    identifiers,
    language_of,
    normalise_ident,
    rank_files,
    render_map,
)
from tests.support import shared_data


@pytest.fixture(scope="module")
def flask_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = shared_data("context/flask.bundle")
    repo = tmp_path_factory.mktemp("flask") / "flask"
    subprocess.run(["git", "clone", "-q", str(bundle), str(repo)], check=True)
    return repo


def flask_sources(repo: Path) -> dict[str, str]:
    files = sorted(repo.glob("src/flask/*.py")) + sorted(repo.glob("tests/*.py"))
    return {str(file.relative_to(repo)): file.read_text() for file in files}


def summary(tags: list[Tag]) -> list[tuple[str, str, int]]:
    return [(tag.kind, tag.name, tag.line) for tag in tags]


def signatures(tags: list[Tag]) -> dict[int, str]:
    return {tag.line: tag.text for tag in tags if tag.kind == "def"}


PYTHON = '''\
"""Shapes."""
import math
from geometry.units import Metres, scale as rescale

UNIT = Metres(1)


class Circle(Shape):
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius**2


def total_area(shapes):
    return sum(shape.area() for shape in shapes)
'''


def test_python_tags_definitions_calls_imports_and_attributes() -> None:
    tags = file_tags("shapes.py", PYTHON)

    assert summary(tags) == [
        ("ref", "Metres", 3),
        ("ref", "scale", 3),
        ("def", "UNIT", 5),
        ("ref", "Metres", 5),
        ("def", "Circle", 8),
        ("def", "__init__", 9),
        ("ref", "radius", 10),
        ("def", "area", 12),
        ("ref", "pi", 13),
        ("ref", "radius", 13),
        ("def", "total_area", 16),
        ("ref", "sum", 17),
        ("ref", "area", 17),
    ]
    assert signatures(tags) == {
        5: "UNIT = Metres(1)",
        8: "class Circle(Shape):",
        9: "def __init__(self, radius):",
        12: "def area(self):",
        16: "def total_area(shapes):",
    }
    assert all(tag.text == "" for tag in tags if tag.kind == "ref")


def test_javascript_tags_skip_constructors_and_count_imports() -> None:
    source = """\
import { render } from "./view.js";

// Counts clicks.
export class Counter {
  constructor() {
    this.count = 0;
  }

  increment(step) {
    this.count += step;
    render(this);
  }
}

export const makeCounter = () => new Counter();

function main() {
  const counter = makeCounter();
  counter.increment(1);
}
"""
    tags = file_tags("src/counter.mjs", source)

    assert summary(tags) == [
        ("ref", "render", 1),
        ("def", "Counter", 4),
        ("def", "increment", 9),
        ("ref", "render", 11),
        ("def", "makeCounter", 15),
        ("ref", "Counter", 15),
        ("def", "main", 17),
        ("ref", "makeCounter", 18),
        ("ref", "increment", 19),
    ]
    assert signatures(tags)[15] == "export const makeCounter = () => new Counter();"


def test_typescript_tags_combine_javascript_and_typescript_queries() -> None:
    source = """\
export interface Shape {
  area(): number;
}

export abstract class Base implements Shape {
  abstract area(): number;
}

export class Square extends Base {
  constructor(private side: number) {
    super();
  }
  area(): number {
    return this.side * this.side;
  }
}

export type Named = Shape & { name: string };

declare function report(shape: Shape): void;
export const unit: Shape = new Square(1);
"""
    tags = file_tags("shapes.ts", source)

    definitions = [(tag.name, tag.line) for tag in tags if tag.kind == "def"]
    assert definitions == [
        ("Shape", 1),  # TypeScript's query
        ("area", 2),
        ("Base", 5),
        ("area", 6),
        ("Square", 9),  # JavaScript's query, on the TypeScript grammar
        ("area", 13),
        ("Named", 18),
        ("report", 20),
    ]
    references = Counter(tag.name for tag in tags if tag.kind == "ref")
    assert references == {"Shape": 5, "Base": 2, "Square": 2, "Named": 1}
    assert signatures(tags)[20] == "declare function report(shape: Shape): void;"


def test_tsx_tags_components_and_calls_inside_markup() -> None:
    source = """\
type Props = { label: string };

export function Button(props: Props) {
  return <button onClick={() => track(props.label)}>{props.label}</button>;
}
"""
    assert summary(file_tags("Button.tsx", source)) == [
        ("def", "Props", 1),
        ("ref", "Props", 1),
        ("def", "Button", 3),
        ("ref", "Props", 3),
        ("ref", "track", 4),
    ]


def test_go_tags_types_methods_and_calls() -> None:
    source = """\
package shapes

import "math"

// Circle is round.
type Circle struct {
	Radius float64
}

func (c Circle) Area() float64 {
	return math.Pi * c.Radius * c.Radius
}

func Total(circles []Circle) float64 {
	sum := 0.0
	for _, c := range circles {
		sum += c.Area()
	}
	return sum
}
"""
    tags = file_tags("circle.go", source)

    assert [(tag.name, tag.line) for tag in tags if tag.kind == "def"] == [
        ("Circle", 6),
        ("Area", 10),
        ("Total", 14),
    ]
    assert signatures(tags) == {
        6: "type Circle struct {",
        10: "func (c Circle) Area() float64 {",
        14: "func Total(circles []Circle) float64 {",
    }
    references = [(tag.name, tag.line) for tag in tags if tag.kind == "ref"]
    assert [line for name, line in references if name == "Circle"] == [6, 10, 14]
    assert ("Area", 17) in references


def test_rust_tags_count_a_method_once_and_path_calls_as_references() -> None:
    source = """\
pub struct Point {
    pub x: f64,
}

impl Point {
    pub fn new(x: f64) -> Self {
        Point { x }
    }

    pub fn norm(&self) -> f64 {
        self.x.abs()
    }
}

pub fn origin_norm() -> f64 {
    let p = Point::new(0.0);
    p.norm()
}
"""
    tags = file_tags("src/point.rs", source)

    assert signatures(tags) == {
        1: "pub struct Point {",
        6: "pub fn new(x: f64) -> Self {",
        10: "pub fn norm(&self) -> f64 {",
        15: "pub fn origin_norm() -> f64 {",
    }
    assert len([tag for tag in tags if tag.kind == "def"]) == 4
    references = {(tag.name, tag.line) for tag in tags if tag.kind == "ref"}
    assert {("Point", 5), ("Point", 7), ("Point", 16), ("new", 16), ("norm", 17)} <= references


def test_broken_file_still_gives_the_tags_of_its_intact_parts() -> None:
    source = "def ok():\n    return 1\n\ndef broken(:\n    pass\n\nclass Fine:\n    pass\n"

    names = [tag.name for tag in file_tags("broken.py", source) if tag.kind == "def"]

    assert "ok" in names and "Fine" in names


def test_files_of_other_languages_have_no_tags() -> None:
    assert language_of("README.md") is None
    assert language_of("lib/types.pyi") == "python"
    assert language_of("web/App.TSX") == "tsx"
    assert file_tags("README.md", "# def main(): pass\n") == []


# A small project whose modules import and call each other; `slugify` is used by nobody.
PROJECT = {
    "shop/models.py": (
        "class Product:\n"
        "    def price(self):\n"
        "        return 1\n\n\n"
        "def register(model):\n"
        "    return model\n"
    ),
    "shop/app.py": (
        "from shop.models import Product, register\n\n\n"
        "def create_app():\n"
        "    register(Product)\n"
        "    return Product().price()\n"
    ),
    "shop/views.py": (
        "from shop.app import create_app\n"
        "from shop.models import Product\n\n\n"
        "def index():\n"
        "    app = create_app()\n"
        "    return Product().price()\n"
    ),
    "shop/cli.py": (
        "from shop.app import create_app\n"
        "from shop.models import register\n\n\n"
        "def main():\n"
        "    register(create_app())\n"
    ),
    "shop/text.py": "def slugify(title):\n    return title.lower().replace(' ', '-')\n",
    "shop/__init__.py": "",
}


def project_tags() -> dict[str, list[Tag]]:
    return {path: file_tags(path, text) for path, text in PROJECT.items()}


def by_score(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=scores.__getitem__, reverse=True)


def test_files_many_others_use_rank_above_isolated_ones() -> None:
    scores = rank_files(project_tags())

    assert set(scores) == set(PROJECT)  # `__init__.py` has no tags and is still ranked
    assert math.isclose(sum(scores.values()), 1.0)
    assert by_score(scores)[0] == "shop/models.py"
    assert scores["shop/app.py"] > scores["shop/text.py"]


def test_file_defining_a_named_identifier_ranks_first() -> None:
    scores = rank_files(project_tags(), idents=identifiers("Make slugify keep digits"))

    assert by_score(scores)[0] == "shop/text.py"
    assert math.isclose(sum(scores.values()), 1.0)


def test_named_paths_raise_their_files() -> None:
    plain = rank_files(project_tags())
    named = rank_files(project_tags(), paths={"shop/cli.py"})

    assert named["shop/cli.py"] > plain["shop/cli.py"]


def test_ranking_is_pagerank_on_the_file_graph(flask_repo: Path) -> None:
    """Against a plain power iteration over explicit file-to-file edges, on flask's own
    code: rank_files computes the same thing without building those edges."""
    tags = {path: file_tags(path, text) for path, text in flask_sources(flask_repo).items()}
    idents = identifiers("require a non-empty name for blueprints")

    files = list(tags)
    definers: dict[str, set[str]] = {}
    for file in files:
        for tag in tags[file]:
            if tag.kind == "def":
                definers.setdefault(tag.name, set()).add(file)
    edges: dict[str, Counter[str]] = {file: Counter() for file in files}
    for source in files:
        uses = Counter(tag.name for tag in tags[source] if tag.kind == "ref")
        for name, count in uses.items():
            owners = definers.get(name, set())
            mul = 10 if normalise_ident(name) in idents else 1
            mul *= (0.1 if name.startswith("_") else 1) * (0.1 if len(owners) > 5 else 1)
            for target in owners - {source}:
                edges[source][target] += mul * math.sqrt(count)
    wanted = [
        f
        for f in files
        if any(t.kind == "def" and normalise_ident(t.name) in idents for t in tags[f])
    ]
    personal = {f: (1 / len(wanted) if f in wanted else 0.0) for f in files}
    rank = dict(personal)
    for _ in range(200):
        new = {f: 0.15 * personal[f] for f in files}
        for source in files:
            out = sum(edges[source].values())
            spread = edges[source] if out else Counter(personal)
            for target, weight in spread.items():
                new[target] += 0.85 * rank[source] * weight / (out or 1)
        rank = new

    scores = rank_files(tags, idents=idents)

    assert wanted and len(wanted) < len(files)
    assert max(abs(scores[f] - rank[f]) for f in files) < 1e-5


def test_tag_index_parses_each_content_once(tmp_path: Path) -> None:
    index = TagIndex(tmp_path / "tags")

    first = index.tags("shapes.py", PYTHON)
    again = index.tags("elsewhere/copy.py", PYTHON)  # same content under another name

    assert first == again == file_tags("shapes.py", PYTHON)
    assert (index.hits, index.misses) == (1, 1)

    reopened = TagIndex(tmp_path / "tags")
    assert reopened.tags("shapes.py", PYTHON) == first
    assert (reopened.hits, reopened.misses) == (1, 0)

    changed = PYTHON.replace("def area", "def surface")
    assert "surface" in {tag.name for tag in reopened.tags("shapes.py", changed)}
    assert (reopened.hits, reopened.misses) == (1, 1)


def test_tag_index_without_a_directory_caches_in_memory() -> None:
    index = TagIndex()

    index.tags("shapes.py", PYTHON)
    index.tags("shapes.py", PYTHON)

    assert (index.hits, index.misses) == (1, 1)


def test_tag_index_ignores_and_rewrites_a_corrupt_entry(tmp_path: Path) -> None:
    TagIndex(tmp_path).tags("shapes.py", PYTHON)
    [entry] = tmp_path.glob("*/*.json")
    entry.write_text('[["Circle", "def", 8, "class Circ')

    index = TagIndex(tmp_path)
    assert index.tags("shapes.py", PYTHON) == file_tags("shapes.py", PYTHON)
    assert (index.hits, index.misses) == (0, 1)

    reopened = TagIndex(tmp_path)
    reopened.tags("shapes.py", PYTHON)
    assert (reopened.hits, reopened.misses) == (1, 0)


def test_a_warm_rebuild_of_1500_files_parses_nothing(flask_repo: Path, tmp_path: Path) -> None:
    """The time is bench/context_cache.py's figure (target: under 2 s)."""
    sources = list(flask_sources(flask_repo).items())
    scope = {}
    for number in range(1500):
        path, text = sources[number % len(sources)]
        scope[f"copy{number}/{path}"] = f"# copy {number}\n{text}"
    cold = TagIndex(tmp_path / "tags")
    built = {path: cold.tags(path, text) for path, text in scope.items()}
    assert cold.misses == 1500

    warm = TagIndex(tmp_path / "tags")
    rebuilt = {path: warm.tags(path, text) for path, text in scope.items()}

    assert (warm.hits, warm.misses) == (1500, 0)
    assert rebuilt == built


def test_render_map_of_a_real_file(flask_repo: Path) -> None:
    path = "src/flask/blueprints.py"
    tags = file_tags(path, (flask_repo / path).read_text())

    assert render_map(path, tags, limit=2) == (
        "src/flask/blueprints.py (map: 5 definitions; ask for the whole file if you need it)\n"
        "  18│ class Blueprint(SansioBlueprint):\n"
        "  19│ def __init__(\n"
        "  … 3 more"
    )
    assert render_map(path, tags).splitlines()[-1] == "  104│ def open_resource("


def test_render_map_shows_a_line_once() -> None:
    tags = [
        Tag("Point", "def", 1, "pub struct Point {"),
        Tag("Point", "ref", 1),
        Tag("new", "def", 6, "pub fn new() -> Self {"),
        Tag("new", "def", 6, "pub fn new() -> Self {"),
    ]

    assert render_map("src/point.rs", tags) == (
        "src/point.rs (map: 2 definitions; ask for the whole file if you need it)\n"
        "  1│ pub struct Point {\n"
        "  6│ pub fn new() -> Self {"
    )


def test_identifiers_of_a_task_drop_common_words() -> None:
    assert identifiers("require a non-empty name for blueprints") == {
        "require",
        "non",
        "empty",
        "name",
        "blueprint",
    }


def test_identifiers_of_a_traceback_line() -> None:
    found = identifiers('File "src/flask/app.py", line 10, in wsgi_app')

    assert found == {"src", "flask", "app", "wsgi_app"}
    assert {"app", "wsgi_app"} <= identifiers("flask.app.Flask.wsgi_app failed")


def test_identifiers_match_definitions_of_flask(flask_repo: Path) -> None:
    tags = file_tags("src/flask/app.py", (flask_repo / "src/flask/app.py").read_text())
    defined = {normalise_ident(tag.name) for tag in tags if tag.kind == "def"}

    assert {"wsgi_app", "flask"} <= identifiers("Flask.wsgi_app swallows errors") & defined
