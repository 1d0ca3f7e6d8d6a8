"""Test results read per test from what the real runners write: pytest's JUnit XML, go
test's JSON and text, cargo's libtest output, node's test runner. No database."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runs.engine.commands import OUTPUT_TAIL_CHARS
from runs.engine.gates.results import FAILED, PASSED, SKIPPED, TestResults
from runs.engine.gates.tests import Runtime, run_tests
from runs.engine.gates.verdict import describe_counts

HOST_PATH = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"


class Recorder:
    def event(self, kind: str, **payload) -> None:
        pass


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def outcomes(results: TestResults) -> dict[str, str]:
    return {name: case.outcome for name, case in results.tests.items()}


def test_pytest_results_name_each_test_by_node_id_with_file_and_line(tmp_path):
    root = write(
        tmp_path,
        {
            "tests/__init__.py": "",
            "tests/test_things.py": (
                "import pytest\n\n\n"
                "def test_passes():\n    assert True\n\n\n"
                "def test_fails():\n    assert 1 == 2, 'one is not two'\n\n\n"
                "@pytest.mark.skip(reason='later')\n"
                "def test_skipped():\n    pass\n\n\n"
                "class TestGroup:\n"
                "    @pytest.mark.parametrize('n', [1, 2])\n"
                "    def test_param(self, n):\n        assert n == 1\n"
            ),
            "tests/test_broken.py": "import no_such_module\n\n\ndef test_never():\n    pass\n",
        },
    )
    runtime = Runtime(reader="pytest", variables={"PATH": HOST_PATH})

    results = run_tests("python -m pytest -q", root, runtime, 60, sandbox=False)

    assert results.format == "junit" and results.problem == ""
    assert outcomes(results) == {
        "tests/test_things.py::test_passes": PASSED,
        "tests/test_things.py::test_fails": FAILED,
        "tests/test_things.py::test_skipped": SKIPPED,
        "tests/test_things.py::TestGroup::test_param[1]": PASSED,
        "tests/test_things.py::TestGroup::test_param[2]": FAILED,
    }
    fails = results.tests["tests/test_things.py::test_fails"]
    assert "one is not two" in fails.message
    assert (fails.file, fails.line) == ("tests/test_things.py", 8)
    # One module that does not import does not hide the others' results.
    assert list(results.errors) == ["tests/test_broken.py"]
    assert "no_such_module" in results.errors["tests/test_broken.py"]
    assert describe_counts(results) == "5 ran: 2 passed, 2 failed, 1 skipped, 1 could not load"


def test_an_inherited_test_belongs_to_its_subclass_file_and_a_failure_is_never_hidden(
    tmp_path,
):
    root = write(
        tmp_path,
        {
            "tests/__init__.py": "",
            "tests/base.py": "class Base:\n    value = 1\n\n    def test_value(self):\n"
            "        assert self.value == 1\n",
            "tests/test_good.py": "from tests.base import Base\n\n\nclass TestGood(Base):\n"
            "    pass\n",
            "tests/test_broken.py": "from tests.base import Base\n\n\nclass TestBroken(Base):\n"
            "    value = 2\n",
        },
    )
    runtime = Runtime(reader="pytest", variables={"PATH": HOST_PATH})

    results = run_tests("python -m pytest", root, runtime, 60, sandbox=False)

    assert outcomes(results) == {
        "tests/test_good.py::TestGood::test_value": PASSED,
        "tests/test_broken.py::TestBroken::test_value": FAILED,
    }
    assert results.tests["tests/test_broken.py::TestBroken::test_value"].file == (
        "tests/test_broken.py"
    )


def test_pytest_run_from_a_subfolder_names_tests_from_the_repository_root(tmp_path):
    root = write(
        tmp_path,
        {
            "backend/tests/__init__.py": "",
            "backend/tests/test_calc.py": (
                "class TestA:\n    def test_add(self):\n        pass\n\n\n"
                "class TestB:\n    def test_add(self):\n        assert False\n"
            ),
        },
    )
    runtime = Runtime(reader="pytest", variables={"PATH": HOST_PATH})

    results = run_tests("cd backend && python -m pytest", root, runtime, 60, sandbox=False)

    assert outcomes(results) == {
        "backend/tests/test_calc.py::TestA::test_add": PASSED,
        "backend/tests/test_calc.py::TestB::test_add": FAILED,
    }
    assert results.tests["backend/tests/test_calc.py::TestB::test_add"].file == (
        "backend/tests/test_calc.py"
    )


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("python -m pytest --no-such-option", "pytest exit code 4 (usage error)"),
        ("no-such-runner", "could not be run (exit 127"),
        ("python -c 'import os; os.abort()'", "crashed (exit 134, killed by signal 6)"),
        ("sleep 5", "did not finish within 1 s"),
    ],
)
def test_a_run_that_could_not_run_says_why(tmp_path, command, problem):
    write(tmp_path, {"test_one.py": "def test_one():\n    pass\n"})
    reader = "pytest" if "pytest" in command else "exit-code"
    runtime = Runtime(reader=reader, variables={"PATH": HOST_PATH})

    results = run_tests(command, tmp_path, runtime, 1 if "sleep" in command else 60, False)

    assert problem in results.problem


def test_pytest_that_dies_without_its_report_is_not_a_test_run(tmp_path):
    write(
        tmp_path, {"conftest.py": "import os\nos._exit(1)\n", "test_x.py": "def test_x(): pass\n"}
    )
    runtime = Runtime(reader="pytest", variables={"PATH": HOST_PATH})

    results = run_tests("python -m pytest", tmp_path, runtime, 60, sandbox=False)

    assert "without writing its report" in results.problem


GO_TESTS = """package calc

import "testing"

func TestAdd(t *testing.T) {
	if Add(1, 2) != 3 {
		t.Fatal("1 + 2 is not 3")
	}
}

func TestBroken(t *testing.T) {
	t.Errorf("always broken: %d", Add(2, 2))
}

func TestCases(t *testing.T) {
	t.Run("small", func(t *testing.T) {})
	t.Run("later", func(t *testing.T) { t.Skip("not yet") })
}
"""


@pytest.mark.skipif(shutil.which("go") is None, reason="the Go toolchain is installed by make")
@pytest.mark.parametrize("command", ["go test -json ./...", "go test -v ./..."])
def test_go_results_from_json_events_and_from_verbose_text(tmp_path, command):
    root = write(
        tmp_path,
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
            "calc_test.go": GO_TESTS,
        },
    )
    runtime = Runtime(
        reader="go",
        variables={"PATH": HOST_PATH, "GOCACHE": str(tmp_path / ".cache"), "GOPROXY": "off"},
    )

    results = run_tests(command, root, runtime, 120, sandbox=False)

    assert outcomes(results) == {
        "example.com/calc::TestAdd": PASSED,
        "example.com/calc::TestBroken": FAILED,
        "example.com/calc::TestCases": PASSED,
        "example.com/calc::TestCases/small": PASSED,
        "example.com/calc::TestCases/later": SKIPPED,
    }
    if "json" in command:
        assert "always broken: 4" in results.tests["example.com/calc::TestBroken"].message
    located = results.tests["example.com/calc::TestBroken"]
    assert (located.file, located.line) == ("calc_test.go", 11)


MANY_CASES = """package calc

import (
	"fmt"
	"testing"
)

func TestMany(t *testing.T) {
	for i := 0; i < 400; i++ {
		t.Run(fmt.Sprintf("case_%03d", i), func(t *testing.T) {
			t.Logf("adding %d and %d gives %d, as it should", i, i, Add(i, i))
		})
	}
}
"""


@pytest.mark.skipif(shutil.which("go") is None, reason="the Go toolchain is installed by make")
def test_a_suite_whose_output_outgrows_the_kept_tail_is_read_whole(tmp_path):
    # go test -json reports each test on stdout; people see the tail, the reader all.
    root = write(
        tmp_path,
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
            "calc_test.go": MANY_CASES,
        },
    )
    runtime = Runtime(
        reader="go",
        variables={"PATH": HOST_PATH, "GOCACHE": str(tmp_path / ".cache"), "GOPROXY": "off"},
    )

    results = run_tests("go test -json ./...", root, runtime, 120, sandbox=False)

    assert len(results.output) <= OUTPUT_TAIL_CHARS < 5 * len(results.output)
    assert "case_000" not in results.output  # the first cases are not in the tail
    assert results.tests["example.com/calc::TestMany/case_000"].outcome == PASSED
    assert len(results.ids(PASSED)) == 401


@pytest.mark.skipif(shutil.which("go") is None, reason="the Go toolchain is installed by make")
def test_go_without_json_or_verbose_output_is_judged_by_its_exit_code(tmp_path):
    from runs.engine.gates.verdict import Verdict

    root = write(
        tmp_path,
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
            "calc_test.go": GO_TESTS.replace('t.Errorf("always broken: %d", Add(2, 2))', ""),
        },
    )
    runtime = Runtime(
        reader="go", variables={"PATH": HOST_PATH, "GOCACHE": str(tmp_path / ".cache")}
    )
    before = run_tests("go test ./...", root, runtime, 120, sandbox=False)
    (root / "calc.go").write_text("package calc\n\nfunc Add(a, b int) int { return a - b }\n")

    after = run_tests("go test ./...", root, runtime, 120, sandbox=False)

    # Only failures are printed without -v: nothing to compare them with, so it must pass.
    assert (before.format, after.format) == ("exit-code", "go-text")
    problems = Verdict(after, before, own_command=False).problems()
    assert problems and "exited with 1" in problems[0]


@pytest.mark.skipif(shutil.which("go") is None, reason="the Go toolchain is installed by make")
def test_a_go_package_that_does_not_build_is_a_load_error(tmp_path):
    root = write(
        tmp_path,
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + }\n",
            "calc_test.go": GO_TESTS,
        },
    )
    runtime = Runtime(
        reader="go", variables={"PATH": HOST_PATH, "GOCACHE": str(tmp_path / ".cache")}
    )

    results = run_tests("go test -json ./...", root, runtime, 120, sandbox=False)

    assert results.tests == {} and list(results.errors) == ["example.com/calc"]
    assert "no test could be loaded" in results.problem


RUST_LIB = """pub fn double(n: i32) -> i32 { n * 2 }

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() { assert_eq!(super::double(2), 4); }

    #[test]
    fn wrong() { assert_eq!(super::double(2), 5, "two doubled"); }
}
"""


@pytest.mark.skipif(shutil.which("cargo") is None, reason="needs cargo")
def test_cargo_results_name_the_test_binary_and_keep_the_failure_message(tmp_path):
    # A workspace of two crates with the same test names: neither hides the other.
    crate = '[package]\nname = "{}"\nversion = "0.1.0"\nedition = "2021"\n'
    root = write(
        tmp_path,
        {
            "Cargo.toml": '[workspace]\nmembers = ["twice", "thrice"]\nresolver = "2"\n',
            "twice/Cargo.toml": crate.format("twice"),
            "twice/src/lib.rs": RUST_LIB,
            "twice/tests/api.rs": "#[test]\n#[ignore]\nfn slow() {}\n\n#[test]\nfn api() {}\n",
            "thrice/Cargo.toml": crate.format("thrice"),
            "thrice/src/lib.rs": RUST_LIB.replace("n * 2", "n * 3"),
        },
    )
    runtime = Runtime(
        reader="cargo",
        variables={
            "PATH": f"{Path(shutil.which('cargo')).parent}:{HOST_PATH}",
            "CARGO_TARGET_DIR": str(tmp_path / "target"),
            "CARGO_NET_OFFLINE": "true",
            "RUSTUP_HOME": str(Path.home() / ".rustup"),
        },
    )

    results = run_tests("cargo test --no-fail-fast", root, runtime, 300, sandbox=False)

    assert outcomes(results) == {
        "twice::tests::doubles": PASSED,
        "twice::tests::wrong": FAILED,
        "api::slow": SKIPPED,
        "api::api": PASSED,
        "thrice::tests::doubles": FAILED,
        "thrice::tests::wrong": FAILED,
    }
    assert "two doubled" in results.tests["twice::tests::wrong"].message
    assert "left: 6" in results.tests["thrice::tests::doubles"].message
    # A lib's unit tests may live in any module: the gate finds their file when needed.
    assert results.tests["twice::tests::doubles"].file == ""
    assert results.tests["api::api"].file == "tests/api.rs"


NODE_TESTS = """const test = require('node:test')
const assert = require('node:assert')

test('adds', () => assert.strictEqual(1 + 1, 2))
test('subtracts', () => assert.strictEqual(2 - 1, 2))
test.describe('strings', () => {
  test.it('joins', () => assert.strictEqual('a' + 'b', 'ab'))
})
"""


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs node and npm")
def test_node_test_runner_results_through_npm_test(tmp_path):
    root = write(
        tmp_path,
        {
            "package.json": '{"name": "x", "version": "1.0.0", "scripts": {"test": "node --test"}}',
            "test/math.test.js": NODE_TESTS,
        },
    )
    runtime = Runtime(reader="node", variables={"PATH": HOST_PATH})

    results = run_tests("npm test", root, runtime, 120, sandbox=False)

    assert outcomes(results) == {
        "adds": PASSED,
        "subtracts": FAILED,
        "strings > joins": PASSED,
    }
    assert "1 !== 2" in results.tests["subtracts"].message


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs node and npm")
def test_node_tests_of_the_same_name_in_two_files_keep_the_failure(tmp_path):
    root = write(
        tmp_path,
        {
            "package.json": '{"name": "x", "version": "1.0.0", "scripts": {"test": "node --test"}}',
            "test/a.test.js": "const test = require('node:test')\ntest('works', () => {})\n",
            "test/b.test.js": "const test = require('node:test')\n"
            "test('works', () => { throw new Error('b is broken') })\n",
        },
    )
    runtime = Runtime(reader="node", variables={"PATH": HOST_PATH})

    results = run_tests("npm test", root, runtime, 120, sandbox=False)

    assert outcomes(results) == {"works": FAILED}
    assert "b is broken" in results.tests["works"].message


def test_results_survive_the_round_trip_through_the_database_record(tmp_path):
    write(tmp_path, {"test_a.py": "def test_a():\n    pass\n\n\ndef test_b():\n    assert 0\n"})
    runtime = Runtime(reader="pytest", variables={"PATH": HOST_PATH})
    results = run_tests("python -m pytest", tmp_path, runtime, 60, sandbox=False)

    again = TestResults.from_record(results.as_record())

    assert outcomes(again) == outcomes(results)
    assert again.tests["test_a.py::test_b"].message == results.tests["test_a.py::test_b"].message
    assert again.counts() == results.counts()


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs node and npm")
def test_jest_results_through_the_node_environment(tmp_path, shared_environments):
    from datetime import UTC, datetime

    from runs.engine.sandbox import bubblewrap
    from runs.engine.toolchains import EnvironmentCache, SetupOptions, prepare

    root = write(
        tmp_path / "project",
        {
            "package.json": '{"name": "sums", "version": "1.0.0", "scripts": {"test": "jest"},'
            ' "devDependencies": {"jest": "^29.7.0"}}',
            "sum.js": "module.exports = (a, b) => a + b\n",
            "sum.test.js": "const sum = require('./sum')\n"
            "describe('sum', () => {\n"
            "  test('adds', () => expect(sum(1, 2)).toBe(3))\n"
            "  test('is wrong', () => expect(sum(1, 2)).toBe(4))\n"
            "})\n",
        },
    )
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    sandbox = bubblewrap() is not None
    options = SetupOptions(as_of=datetime(2025, 1, 1, tzinfo=UTC), sandbox=sandbox)
    environment = prepare(
        root,
        tmp_path / "layer",
        EnvironmentCache(shared_environments),
        options,
        "sums",
        Recorder(),
    )

    results = run_tests(environment.test_command, root, environment.runtime, 300, sandbox)

    assert environment.resolution == "as of 2025-01-01"
    assert results.format == "jest-json", results.output
    assert outcomes(results) == {
        "sum.test.js::sum adds": PASSED,
        "sum.test.js::sum is wrong": FAILED,
    }
    assert "Expected: 4" in results.tests["sum.test.js::sum is wrong"].message
