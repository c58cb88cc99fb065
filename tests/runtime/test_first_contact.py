"""What a new user meets first: bundled examples, packaged resources, first-contact CLI messages."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import httpx
import pytest

from kosmo_runtime import LoopbackServer, Runtime
from kosmo_runtime._limits import MAX_SOURCE_BYTES, MiB
from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator
from tests.runtime import test_cli as cli
from tests.runtime.test_cli import FIXTURES, accounts_text

REPO = Path(__file__).resolve().parents[2]
_env = cli._env  # the CLI tests' environment (autouse): no user files, the notes fixture integration


@pytest.fixture
def kosmo(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> cli.Kosmo:
    return cli.Kosmo(capsys, monkeypatch)


def test_examples_lists_the_bundled_files_with_the_first_sentence_of_their_comment(kosmo):
    code, out, err = kosmo("examples")
    assert code == 0
    summaries = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert list(summaries) == ["accounts.yaml", "demo.lua", "hello.lua"]
    assert summaries["accounts.yaml"] == "A sample accounts file for real use."  # the comment runs on; the sentence ends
    assert summaries["hello.lua"] == "The smallest script: print something, compute, return a value."
    assert "kosmo run --demo --example demo" in err


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


# -- accounts: where the file was looked for, a starter file, exit codes, every mistake at once ----


def test_accounts_without_a_file_say_where_they_looked_and_how_to_start(kosmo, tmp_path):
    for action in ("check", "list"):
        code, out, _ = kosmo("accounts", action)
        assert code == 0
        assert str(tmp_path / "config" / "kosmo" / "accounts.yaml") in out and "kosmo accounts init" in out, out


def test_accounts_init_writes_the_annotated_starter_file_once(kosmo, tmp_path):
    target = tmp_path / "config" / "kosmo" / "accounts.yaml"
    code, out, _ = kosmo("accounts", "init")
    assert code == 0 and str(target) in out
    assert target.read_text(encoding="utf-8") == (REPO / "examples" / "accounts.yaml").read_text(encoding="utf-8")
    code, _, err = kosmo("accounts", "init")
    assert code == 2 and "already exists" in err
    other = tmp_path / "elsewhere.yaml"
    assert kosmo("accounts", "init", "--accounts", str(other))[0] == 0 and other.is_file()


def _notes_accounts(tmp_path: Path, body: str) -> str:
    path = tmp_path / "accounts.yaml"
    path.write_text("version: 1\nintegrations:\n  test-notes:\n    accounts:\n" + body, encoding="utf-8")
    return str(path)


def test_accounts_check_exits_2_on_a_configuration_error(kosmo, tmp_path):
    path = _notes_accounts(tmp_path, "      default:\n        api_key: ${CLI_UNSET_KEY}\n")
    code, out, _ = kosmo("accounts", "check", "--accounts", path)
    assert code == 2 and "CLI_UNSET_KEY" in out


def test_a_file_with_several_mistakes_reports_them_all(kosmo, tmp_path):
    path = _notes_accounts(tmp_path, "      default:\n        api_key: x\n        writes: sometimes\n"
                                     "      other:\n        api_kye: y\n      Bad: {api_key: z}\n")
    code, _, err = kosmo("accounts", "check", "--accounts", path)
    assert code == 2
    assert f"{path}:7: invalid write policy 'sometimes'" in err
    assert "also" in err and "unknown field 'api_kye'" in err and f"{path}:10: invalid account name 'Bad'" in err
    assert "missing credential" not in err and "3 mistakes" in err  # a misspelt credential is one mistake


# -- issue 11: bad input outside Lua ----------------------------------------------------------------


def test_an_accounts_file_that_is_not_utf8_is_a_file_error(kosmo, tmp_path, monkeypatch):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\n# caf\u00e9\n".encode("latin-1"))
    code, _, err = kosmo("accounts", "check", "--accounts", str(path))
    assert code == 2 and f"{path}:2: the accounts file is not UTF-8 text (byte 0xe9)" in err
    monkeypatch.setenv("KOSMO_ACCOUNTS", str(path))
    code, _, err = kosmo("run", "-e", "return 1")
    assert code == 2 and "not UTF-8" in err


@pytest.mark.parametrize("yaml_text", [
    "api_key: !secret sk-live-4242424242\n",
    "api_key: x\n        writes: sk-live-4242424242/x\n",
    "api_key: x\n        timeout: sk-live-4242424242\n",
    "api_key: x\n        rate_limit: {requests: sk-live-4242424242, per_seconds: 1}\n",
    "api_key: !!int sk-live-4242424242\n",
])
def test_values_in_the_accounts_file_are_never_echoed_when_they_could_be_secrets(kosmo, tmp_path, yaml_text):
    path = _notes_accounts(tmp_path, "      default:\n        " + yaml_text)
    code, out, err = kosmo("accounts", "check", "--accounts", path)
    assert code == 2 and "error:" in err
    assert "4242424242" not in out + err


# -- kosmo run: output streams on a terminal -----------------------------------------------------


def test_run_on_a_terminal_prints_as_the_script_runs(tmp_path):
    """The first print shows while the script's next call is still waiting for its answer."""
    release = threading.Event()
    simulator = NotesSimulator([KEY])

    def held(request: httpx.Request) -> httpx.Response:
        release.wait(120)
        return simulator(request)

    with LoopbackServer(held) as server:
        accounts = tmp_path / "accounts.yaml"
        accounts.write_text(accounts_text(server.url), encoding="utf-8")
        env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
               "KOSMO_INTEGRATIONS_PATH": str(FIXTURES), "CLI_NOTES_KEY": KEY, "CLI_OTHER_KEY": KEY}
        primary, secondary = pty.openpty()
        child = subprocess.Popen([sys.executable, "-m", "kosmo_runtime", "run", "--accounts", str(accounts), "-e",
                                  'print("first line") return app.integrations.test_notes.list_notes{} ~= nil'],
                                 stdin=subprocess.DEVNULL, stdout=secondary, stderr=subprocess.DEVNULL, env=env)
        os.close(secondary)
        try:
            seen = b""
            while b"first line" not in seen:
                ready, _, _ = select.select([primary], [], [], 60)
                assert ready, f"nothing printed within 60 s while the call waits (got {seen!r}): output held back"
                seen += os.read(primary, 1024)
        finally:
            release.set()
            assert child.wait(60) == 0
            os.close(primary)


def test_run_json_keeps_the_output_in_the_envelope(kosmo):
    code, out, _ = kosmo("run", "--json", "-e", 'print("a") print("b") return 1')
    assert code == 0 and json.loads(out)["output"] == "a\nb\n"


# -- issue 11: script sources ---------------------------------------------------------------------


def test_run_refuses_a_source_over_the_cap_without_reading_it_all(kosmo):
    code, _, err = kosmo("run", "/dev/zero")
    assert code == 2 and f"/dev/zero is larger than {MAX_SOURCE_BYTES // MiB} MiB" in err


def test_a_bom_and_a_first_hash_line_are_accepted_keeping_line_numbers(kosmo, tmp_path):
    script = tmp_path / "tool.lua"
    script.write_bytes(b'\xef\xbb\xbf#!/usr/bin/env -S kosmo run\nprint("ran")\nerror("on three")\n')
    code, out, err = kosmo("run", str(script))
    assert code == 1 and out == "ran\n" and "tool.lua:3: on three" in err


def test_source_that_is_not_utf8_is_a_usage_error(kosmo, tmp_path):
    script = tmp_path / "latin1.lua"
    script.write_bytes(b'print("ok")\nprint("caf\xe9")\n')
    code, _, err = kosmo("run", str(script))
    assert code == 2 and "is not UTF-8 text (byte 0xe9 on line 2)" in err
    code, _, err = kosmo("run", "-e", os.fsdecode(b'print("\xff")'))
    assert code == 2 and "-e CODE is not UTF-8 text" in err


def test_standard_input_that_is_not_utf8_is_a_usage_error(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "kosmo_runtime", "run", "-"], input=b'print("\xff")',
                          capture_output=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.decode() == "kosmo: error: standard input is not UTF-8 text (byte 0xff on line 1); save it as UTF-8\n"


# -- docs: the forms an agent types, no sync markers, whole-word summaries -------------------------


@pytest.mark.parametrize("path", ["app.integrations.whereby.list_rooms", "whereby.list_rooms",
                                  'app.integrations["whereby"].list_rooms', "whereby.whereby_list_rooms"])
def test_lua_read_doc_takes_the_forms_an_agent_types(path):
    with Runtime(accounts=None) as runtime:
        expected = runtime.docs.read("integrations.whereby.list_rooms")
        result = runtime.run(f"return lua_read_doc({json.dumps(path)})")
    assert result.ok, result.error and result.error.to_dict()
    assert result.result == expected


def test_doc_pages_never_show_the_sync_markers():
    with Runtime(accounts=None) as runtime:
        raw = (REPO / "lua_docs" / "integrations" / "whereby.md").read_text(encoding="utf-8")
        assert "<!-- kosmo:params" in raw  # the file keeps them for kosmo docs sync
        pages = [runtime.docs.read("integrations.whereby"), runtime.docs.read("integrations.whereby.list_rooms")]
    assert all("kosmo:params" not in page for page in pages)


def test_docs_list_summaries_end_on_a_whole_word():
    with Runtime(accounts=None) as runtime:
        pages = {page["path"]: page for page in runtime.docs.list()}
        texts = {path: " ".join(runtime.docs.read(path).split()) for path in pages}
    shortened = {path: page["summary"] for path, page in pages.items() if page["summary"].endswith("\u2026")}
    assert shortened, "some page summary is long enough to be shortened"
    for path, summary in shortened.items():
        body = summary[:-1]
        assert len(summary) <= 200 and body in texts[path], summary
        after = texts[path][texts[path].index(body) + len(body)]
        assert not after.isalnum(), f"{path}: cut inside a word: ...{body[-20:]!r} + {after!r}"


# -- results and errors read well --------------------------------------------------------------------


def test_durations_in_the_envelope_are_rounded_to_microseconds(kosmo, tmp_path):
    code, out, _ = kosmo("run", "--demo", "--json", "-e", "return app.integrations.whereby.list_rooms{limit = 1} ~= nil")
    envelope = json.loads(out)
    durations = [envelope["duration"]] + [c["duration"] for c in envelope["calls"]] + [
        r["duration"] for c in envelope["calls"] for r in c["requests"]]
    assert code == 0 and len(durations) >= 3
    assert all(d == round(d, 6) for d in durations)


def test_the_read_only_hint_says_how_to_allow_writes(kosmo):
    code, _, err = kosmo("run", "--demo", "--read-only", "-e", "return app.integrations.whereby.create_room{}")
    assert code == 1
    assert "hint: to allow writes, start the run without --read-only" in err


def test_piped_repl_input_ending_inside_a_chunk_is_an_error():
    from kosmo_runtime._repl import Repl

    out, err = io.StringIO(), io.StringIO()
    with Runtime(accounts=None) as runtime:
        code = Repl(runtime, history=False, stdin=io.StringIO("x = 1\nfor i = 1, 3 do\n  print(i)\n"),
                    stdout=out, stderr=err).loop()
    assert code == 1 and out.getvalue() == ""
    assert "input ended inside an unfinished chunk, which was not run (it starts: 'for i = 1, 3 do')" in err.getvalue()


def test_execute_lua_without_code_answers_with_the_envelopes_error(tmp_path):
    from tests.surfaces.test_mcp import drive, envelope, params

    async def body(client):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        schema = tools["execute_lua"].input_schema
        assert schema["required"] == ["code"] and schema["properties"]["code"]["type"] == "string"
        data = envelope(await client.call_tool("execute_lua", {}), ok=False)
        assert data["error"]["type"] == "InvalidArgument" and data["error"]["param"] == "code"
        assert "execute_lua needs 'code'" in data["error"]["message"]

    drive(params(tmp_path), body)


def test_an_unwritable_audit_log_is_reported_at_start_up_naming_path_and_reason(kosmo, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    target = blocker / "audit.jsonl"  # a folder that is a file: cannot be created, even as root
    code, out, err = kosmo("run", "--audit-log", str(target), "-e", 'print("ran") return 1')
    assert code == 2 and out == ""
    assert f"error: ConfigError: cannot write the audit log {target}: File exists" in err  # mkdir of a-file
    with Runtime(accounts=None, audit_log=target) as runtime:
        result = runtime.run("return #lua_list_docs()")
    assert result.error is not None and result.error.type == "ConfigError" and result.error.file == str(target)


def test_demo_runs_that_end_with_calls_in_flight_print_no_python_traceback(tmp_path):
    script = tmp_path / "many.lua"
    script.write_text("local fns = {}\nfor i = 1, 40 do fns[i] = function() return app.integrations.whereby.list_rooms{} end end\n"
                      'app.parallel(fns)\nerror("done")\n', encoding="utf-8")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    for wall_time in ("0.05", "30"):
        done = subprocess.run([sys.executable, "-m", "kosmo_runtime", "run", "--demo", "--wall-time", wall_time, str(script)],
                              capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr


# -- errors of tail calls keep the script's line ---------------------------------------------------


@pytest.mark.parametrize("source,line", [
    ('local x = 1\nreturn app.integrations.whereby.get_room{room_name = "nope"}', 2),
    ('local ns = app.integrations.whereby\nlocal x = ns.list_rooms{}\n\nreturn ns.get_room{room_name = "nope"}', 4),
    ('local function find(name)\n  return app.integrations.whereby.get_room{room_name = name}\nend\nreturn find("nope")', 2),
    ('local x = 1\nlocal r = app.integrations.whereby.get_room{room_name = "nope"}\nreturn r', 2),
])
def test_an_error_in_a_tail_call_names_the_scripts_line(source, line):
    from kosmo_runtime import Demo

    with Demo(["whereby"]) as demo, demo.runtime() as runtime:
        result = runtime.run(source, name="job.lua")
        assert result.error is not None and result.error.type == "UpstreamNotFound"
        assert (result.error.script, result.error.line) == ("job.lua", line)
        assert runtime.run("local ok, e = pcall(function() return app.integrations.whereby.get_room{room_name = 'x'} end)\n"
                           "return e.line").result == 1


def test_json_decode_of_deep_or_huge_input_is_a_clear_error_without_python_internals():
    with Runtime(accounts=None) as runtime:
        deep = runtime.run('return json.decode(("["):rep(100000) .. ("]"):rep(100000))').error
        digits = runtime.run('return json.decode(("9"):rep(5000))').error
    assert deep is not None and deep.type == "InvalidArgument" and "nests too deeply" in deep.message
    assert digits is not None and digits.type == "InvalidArgument" and "more than 4,300 digits" in digits.message
    assert "sys." not in digits.message + (digits.hint or "")
