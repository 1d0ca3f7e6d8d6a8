"""What a Python project declares it needs, read from its files; and the interpreter it
asks for. No database, no network."""

from __future__ import annotations

import json
import sys

import pytest

from runs.engine.outcomes import SetupFailed
from runs.engine.toolchains import detect
from runs.engine.toolchains.interpreters import choose
from runs.engine.toolchains.python_plan import lock_requirements, read_plan


def write(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_pyproject_test_extras_and_dependency_groups_are_test_dependencies(tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": """
[project]
name = "My_Package"
requires-python = ">=3.9"
dependencies = ["requests"]

[project.optional-dependencies]
docs = ["sphinx"]
Tests = ["pytest-mock"]
dev = ["ruff"]

[dependency-groups]
test = ["hypothesis", {include-group = "lint"}]
lint = ["ruff"]
""",
        },
    )

    plan = read_plan(tmp_path)

    assert (plan.installable, plan.name, plan.source) == (True, "my-package", "pyproject.toml")
    assert plan.requires_python == ">=3.9"
    assert plan.extras == ["Tests"]  # test groups win over dev; docs never
    assert plan.groups == ["test"]
    assert plan.requirements == ["hypothesis", "ruff"]  # with the group it includes
    assert plan.manifests == ["pyproject.toml"]


def test_setup_cfg_extras_and_the_plainest_test_requirements_file(tmp_path):
    write(
        tmp_path,
        {
            "setup.cfg": "[metadata]\nname = legacy\n[options]\npython_requires = >=3.7\n"
            "[options.extras_require]\ntesting = pytest\n",
            "setup.py": "from setuptools import setup\nsetup()\n",
            "requirements/tests.txt": "pytest==7.2.0\n",
            "requirements/tests-min.txt": "werkzeug==2.0.0\n",
            "requirements/docs.txt": "sphinx\n",
        },
    )

    plan = read_plan(tmp_path)

    assert (plan.name, plan.requires_python, plan.extras) == ("legacy", ">=3.7", ["testing"])
    assert plan.requirement_files == ["requirements/tests.txt"]
    assert plan.source == "setup.py"


def test_dev_requirements_and_tox_deps_when_there_is_nothing_for_tests(tmp_path):
    write(
        tmp_path,
        {
            "requirements.txt": "flask\n",
            "requirements-dev.txt": "pytest\n",
            "tox.ini": "[testenv]\ndeps =\n    -rrequirements-dev.txt\n    freezegun\n"
            "    py38: mock\n    {env:EXTRA}\n    https://example.invalid/pkg.tar.gz\n",
        },
    )

    plan = read_plan(tmp_path)

    assert plan.installable is False and plan.source == ""
    assert plan.requirement_files == ["requirements.txt", "requirements-dev.txt"]
    assert plan.requirements == ["freezegun"]
    assert plan.manifests == ["requirements-dev.txt", "requirements.txt", "tox.ini"]


def test_lockfiles_give_exact_pins_with_their_markers(tmp_path):
    write(
        tmp_path,
        {
            "poetry.lock": """
[[package]]
name = "click"
version = "8.1.7"
optional = false
markers = "python_version >= '3.7'"

[[package]]
name = "extra-thing"
version = "1.0"
optional = true
""",
            "Pipfile.lock": json.dumps(
                {
                    "default": {"six": {"version": "==1.16.0"}},
                    "develop": {
                        "pytest": {"version": "==8.0.0", "markers": "python_version >= '3.8'"}
                    },
                }
            ),
        },
    )

    assert lock_requirements(tmp_path, "poetry.lock") == ["click==8.1.7 ; python_version >= '3.7'"]
    assert lock_requirements(tmp_path, "Pipfile.lock") == [
        "six==1.16.0",
        "pytest==8.0.0 ; python_version >= '3.8'",
    ]


def test_poetry_pipfile_and_included_requirement_files_without_a_lock(tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": """
[tool.poetry.dependencies]
python = "^3.9"
[tool.poetry.group.test.dependencies]
pytest = "^7.2"
mock = "~4.0.3"
zero = "^0.2.1"
exact = "1.2.3"
any = "*"
local = {path = "../lib"}
[tool.setuptools.dynamic]
dependencies = {file = ["requirements/base.in"]}
""",
            "Pipfile": '[packages]\nrequests = "*"\n[dev-packages]\nfreezegun = ">=1.0"\n',
            "requirements-test.txt": "-r requirements/common.txt\npytest\n",
            "requirements/common.txt": "-c constraints.txt\nsix\n",
            "requirements/constraints.txt": "six<2\n",
        },
    )

    plan = read_plan(tmp_path)

    assert plan.requirements == [
        "pytest>=7.2,<8",
        "mock>=4.0.3,<4.1",
        "zero>=0.2.1,<0.3",
        "exact==1.2.3",
        "any",
        "requests",
        "freezegun>=1.0",
    ]
    assert plan.manifests == [
        "Pipfile",
        "pyproject.toml",
        "requirements-test.txt",
        "requirements/base.in",
        "requirements/common.txt",
        "requirements/constraints.txt",
    ]


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"pyproject.toml": "[project\nname = 1"}, "pyproject.toml is not valid TOML"),
        ({"setup.cfg": "not a section\n"}, "setup.cfg cannot be parsed"),
        ({"Pipfile.lock": "{broken", "setup.py": ""}, "Pipfile.lock is not valid JSON"),
    ],
)
def test_files_that_cannot_be_read_are_named_not_crashed_on(tmp_path, files, problem):
    write(tmp_path, files)

    with pytest.raises(SetupFailed, match=problem):
        plan = read_plan(tmp_path)
        lock_requirements(tmp_path, plan.lockfile)


def test_odd_but_readable_files_are_taken_for_what_they_say(tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": 'project = "x"\n[dependency-groups]\ntest = "not a list"\n',
            "setup.cfg": "[flake8]\nmax-line-length = 100\n",
            ".python-version": "   \n",
        },
    )

    plan = read_plan(tmp_path)

    assert (plan.installable, plan.python_pin, plan.requirements) == (False, None, [])


def test_poetry_lock_keeps_the_markers_dependents_put_on_a_package(tmp_path):
    write(
        tmp_path,
        {
            "poetry.lock": """
[[package]]
name = "portalocker"
version = "2.7.0"
[package.dependencies]
pywin32 = {version = ">=226", markers = "platform_system == \\"Windows\\""}

[[package]]
name = "pywin32"
version = "306"
""",
        },
    )

    assert lock_requirements(tmp_path, "poetry.lock") == [
        "portalocker==2.7.0",
        'pywin32==306 ; (platform_system == "Windows")',
    ]


@pytest.mark.parametrize(
    ("files", "toolchain"),
    [
        ({"pyproject.toml": ""}, "python"),
        ({"two_fer.py": "", "two_fer_test.py": ""}, "python"),
        ({"package.json": "{}"}, "node"),
        ({"go.mod": "module x\n"}, "go"),
        ({"Cargo.toml": ""}, "rust"),
        ({"README.md": ""}, None),
        # A Go module with a requirements.txt for its docs is a Go project.
        ({"go.mod": "module x\n", "x_test.go": "", "requirements.txt": "mkdocs\n"}, "go"),
    ],
)
def test_toolchains_are_detected_from_the_files_at_the_root(tmp_path, files, toolchain):
    write(tmp_path, files)

    found = detect(tmp_path)

    assert (found.name if found else None) == toolchain


def test_a_setup_command_alone_makes_a_custom_environment(tmp_path):
    write(tmp_path, {"Makefile": "test:\n\ttrue\n"})

    assert detect(tmp_path, setup_command="make deps").name == "custom"


def test_autopack_s_own_python_is_chosen_when_the_project_allows_it():
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"

    chosen = choose(f">={own}", None)

    assert str(chosen.version).startswith(own + ".")


def test_a_python_nobody_installed_is_named_with_what_there_is():
    with pytest.raises(SetupFailed) as failed:
        choose(">=3.99", None)

    assert "needs Python >=3.99 (requires-python)" in str(failed.value)
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in str(failed.value)  # what was found
    assert "AUTOPACK_PYTHONS" in failed.value.hint
