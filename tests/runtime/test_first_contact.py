"""What a new user meets first: bundled examples, packaged resources, first-contact CLI messages."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kosmo_runtime import Runtime
from tests.runtime.test_cli import _env, kosmo  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]


def test_examples_lists_the_bundled_files_with_their_first_comment(kosmo):
    code, out, err = kosmo("examples")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["accounts.yaml", "demo.lua", "hello.lua"]
    assert "The smallest script" in out and "kosmo run --demo --example demo" in err


def test_examples_copy_writes_them_out_and_never_overwrites(kosmo, tmp_path):
    code, out, _ = kosmo("examples", "--copy", str(tmp_path / "mine"), "hello")
    assert code == 0 and out.strip() == f"copied {tmp_path / 'mine' / 'hello.lua'}"
    assert (tmp_path / "mine" / "hello.lua").read_text(encoding="utf-8") == (REPO / "examples" / "hello.lua").read_text(encoding="utf-8")
    code, _, err = kosmo("examples", "--copy", str(tmp_path / "mine"))
    assert code == 2 and "not overwriting" in err and "hello.lua" in err
    assert not (tmp_path / "mine" / "demo.lua").exists()


def test_run_example_runs_a_bundled_script_by_name(kosmo):
    code, out, _ = kosmo("run", "--example", "hello")
    assert code == 0 and "hello from Lua 5.4" in out
    code, _, err = kosmo("run", "--example", "nope")
    assert code == 2 and "no bundled example 'nope'" in err and "demo.lua" in err
    code, _, err = kosmo("run", "--example", "hello", "-e", "return 1")
    assert code == 2 and "give one script" in err


def test_docs_and_examples_are_read_as_package_resources():
    assert resources.files("kosmo_runtime.lua_docs").joinpath("runtime.md").is_file()
    assert resources.files("kosmo_runtime.examples").joinpath("demo.lua").is_file()
    with Runtime(accounts=None) as runtime:
        assert runtime.docs.read("runtime") == (REPO / "lua_docs" / "runtime.md").read_text(encoding="utf-8")


def test_the_builtin_integrations_install_under_the_project_name():
    import kosmo_integrations

    from kosmo_runtime._discovery import Catalog

    assert Path(next(iter(kosmo_integrations.__path__))).resolve() == REPO / "integrations"
    assert Catalog().find("whereby").module == "kosmo_integrations.whereby"
