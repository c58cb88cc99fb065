"""The account registry (``kosmo_runtime._accounts``): schema checks, defaults, ``${VAR}``, secrets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kosmo_runtime import (
    Account,
    AccountError,
    AccountsConfig,
    AccountsFileError,
    NotFound,
    Runtime,
    Secret,
)
from kosmo_runtime._accounts import default_accounts_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "integrations"
KEY_A = "alpha-secret-key-111"
KEY_B = "bravo-secret-key-222"
LITERAL = "literal-secret-in-file-333"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user accounts file or KOSMO_* variable of the machine leaks into these tests."""
    monkeypatch.delenv("KOSMO_ACCOUNTS", raising=False)
    monkeypatch.delenv("KOSMO_INTEGRATIONS_PATH", raising=False)
    monkeypatch.delenv("KOSMO_AUDIT_LOG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    rt = Runtime(integration_paths=[FIXTURES], store=":memory:", accounts=AccountsConfig.empty())
    yield rt
    rt.close()


def parse(runtime: Runtime, text: str, environ: dict[str, str] | None = None, source: str = "accounts.yaml") -> AccountsConfig:
    return AccountsConfig.parse(textwrap.dedent(text), source, runtime._manifest_for, runtime.catalog.names,
                                environ=environ if environ is not None else {})


def file_error(runtime: Runtime, text: str) -> AccountsFileError:
    with pytest.raises(AccountsFileError) as caught:
        parse(runtime, text)
    return caught.value


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line containing ``marker``."""
    hits = [i for i, line in enumerate(textwrap.dedent(text).splitlines(), start=1) if marker in line]
    return hits[nth - 1]


# --------------------------------------------------------------------------------------------
# a valid file
# --------------------------------------------------------------------------------------------

FULL = """\
    version: 1
    settings:
      writes: ask
      audit_log: ~/audit.jsonl
    integrations:
      test-notes:
        default: work
        accounts:
          home:
            api_key: ${HOME_KEY}
            writes: deny
          work:
            api_key: "${WORK_KEY}"
            team: platform
            label: Work notes
            timeout: 12
            base_url: https://eu.notes.example
"""


def test_valid_file_resolves_accounts_with_settings_policy_and_defaults(runtime: Runtime) -> None:
    config = parse(runtime, FULL, {"HOME_KEY": KEY_A, "WORK_KEY": KEY_B})
    assert config.integrations() == ["test-notes"]
    assert config.account_names("test-notes") == ["home", "work"]
    assert config.settings == {"writes": "ask", "audit_log": "~/audit.jsonl"}

    work = config.account("test-notes")  # the explicit default
    assert isinstance(work, Account)
    assert (work.integration, work.name) == ("test-notes", "work")
    assert work.credential("api_key") == KEY_B
    assert work.settings == {"base_url": "https://eu.notes.example", "team": "platform"}
    assert work.writes == "ask"          # from settings.writes (the file-wide default)
    assert work.label == "Work notes"
    assert work.timeouts == {"read": 12.0}

    home = config.account("test-notes", "home")
    assert home.credential("api_key") == KEY_A
    assert home.settings == {"base_url": "https://api.notes.example", "team": "core"}  # manifest defaults
    assert home.writes == "deny"
    assert home.label is None and home.timeouts == {}
    assert sorted(home.secret_values()) == [KEY_A]

    # resolved once, then cached
    assert config.account("test-notes", "work") is work
    assert config.account("test-notes", "default") is work


def test_default_is_the_explicit_default_key(runtime: Runtime) -> None:
    config = parse(runtime, """\
        integrations:
          test-notes:
            default: second
            accounts:
              first: {api_key: a}
              second: {api_key: c}
        """)
    assert config.default_account("test-notes") == "second"
    assert config.account("test-notes").name == "second"
    assert config.account("test-notes", None).credential("api_key") == "c"


def test_default_key_may_not_hide_an_account_named_default(runtime: Runtime) -> None:
    error = file_error(runtime, "integrations:\n  test-notes:\n    default: second\n    accounts:\n"
                                "      default: {api_key: b}\n      second: {api_key: c}\n")
    assert error.line == 3
    assert "hides the account named 'default'" in error.message


def test_default_is_the_account_named_default(runtime: Runtime) -> None:
    config = parse(runtime, """\
        integrations:
          test-notes:
            accounts:
              first: {api_key: a}
              default: {api_key: b}
        """)
    assert config.default_account("test-notes") == "default"
    assert config.account("test-notes").credential("api_key") == "b"
    assert config.account("test-notes", "default").credential("api_key") == "b"
    assert config.account("test-notes", "first").credential("api_key") == "a"


def test_default_is_the_only_account(runtime: Runtime) -> None:
    config = parse(runtime, """\
        integrations:
          test-notes:
            accounts:
              solo: {api_key: a}
        """)
    assert config.default_account("test-notes") == "solo"
    assert config.account("test-notes").name == "solo"
    assert config.account("test-notes", "default").name == "solo"


def test_several_accounts_without_default_is_a_clear_error_but_named_ones_work(runtime: Runtime) -> None:
    config = parse(runtime, """\
        integrations:
          test-notes:
            accounts:
              one: {api_key: a}
              two: {api_key: b}
        """)
    assert config.default_account("test-notes") is None
    for name in (None, "default"):
        with pytest.raises(AccountError) as caught:
            config.account("test-notes", name)
        error = caught.value
        assert error.message == "test-notes has several accounts and none is the default"
        assert error.integration == "test-notes"
        assert error.hint == "set 'default: <account>' under test-notes in accounts.yaml, or name the account"
    assert config.account("test-notes", "two").credential("api_key") == "b"


def test_unknown_account_name_is_not_found_with_did_you_mean(runtime: Runtime) -> None:
    config = parse(runtime, """\
        integrations:
          test-notes:
            accounts:
              marketing: {api_key: a}
              sales: {api_key: b}
        """)
    with pytest.raises(NotFound) as caught:
        config.account("test-notes", "marketting")
    error = caught.value
    assert error.message == "test-notes has no account named 'marketting'"
    assert error.candidates == ["marketing", "sales"]
    assert error.hint == "did you mean 'marketing'? accounts: marketing, sales"
    assert error.account == "marketting"


def test_integration_without_accounts(runtime: Runtime) -> None:
    config = parse(runtime, "integrations:\n  test-notes: {}\n")
    assert config.account_names("test-notes") == []
    assert config.default_account("test-notes") is None
    with pytest.raises(AccountError, match=r"^no account is configured for test-notes$"):
        config.account("test-notes")


def test_empty_file_is_valid_and_has_no_accounts(runtime: Runtime) -> None:
    for text in ("", "version: 1\n", "# nothing yet\n"):
        config = parse(runtime, text)
        assert config.integrations() == []
        assert config.describe() == []
        assert config.check() == []


def test_load_reads_a_file_and_names_it(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("integrations:\n  test-notes:\n    accounts:\n      main: {api_key: x}\n", encoding="utf-8")
    config = AccountsConfig.load(path, runtime._manifest_for, runtime.catalog.names, environ={})
    assert config.source == str(path)
    assert config.account("test-notes").name == "main"


def test_load_of_a_missing_file_names_the_file(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(AccountsFileError) as caught:
        AccountsConfig.load(path, runtime._manifest_for, runtime.catalog.names)
    error = caught.value
    assert error.message == f"{path}: cannot read the accounts file: No such file or directory"
    assert error.file == str(path)
    assert "--accounts" in error.hint and "KOSMO_ACCOUNTS" in error.hint


# --------------------------------------------------------------------------------------------
# ${VAR}
# --------------------------------------------------------------------------------------------

ENV_FILE = """\
    version: 1
    integrations:
      test-notes:
        default: good
        accounts:
          good:
            api_key: ${GOOD_KEY}
          embedded:
            api_key: "pre-${PART_ONE}-mid-${PART_TWO}-post"
            team: team-${TEAM}
          broken:
            api_key: ${MISSING_VAR}
"""


def test_env_variables_are_substituted_whole_and_embedded(runtime: Runtime) -> None:
    config = parse(runtime, ENV_FILE, {"GOOD_KEY": KEY_A, "PART_ONE": "1", "PART_TWO": "2", "TEAM": "blue"})
    assert config.account("test-notes").credential("api_key") == KEY_A
    embedded = config.account("test-notes", "embedded")
    assert embedded.credential("api_key") == "pre-1-mid-2-post"
    assert embedded.settings["team"] == "team-blue"


def test_missing_variable_fails_only_when_that_account_is_used(runtime: Runtime) -> None:
    # Parsing succeeds although MISSING_VAR is not set.
    config = parse(runtime, ENV_FILE, {"GOOD_KEY": KEY_A, "PART_ONE": "1", "PART_TWO": "2", "TEAM": "t"})
    assert config.account("test-notes").credential("api_key") == KEY_A

    with pytest.raises(AccountError) as caught:
        config.account("test-notes", "broken")
    error = caught.value
    field_line = line_of(ENV_FILE, "broken:") + 1  # the api_key line inside the account
    assert "MISSING_VAR" in ENV_FILE.splitlines()[field_line - 1]
    assert error.message == (f"account test-notes.broken needs environment variable MISSING_VAR "
                             f"(for 'api_key', accounts.yaml:{field_line}), which is not set")
    assert error.integration == "test-notes" and error.account == "broken"
    assert error.hint == "export MISSING_VAR=... before running, or change 'api_key' in accounts.yaml"

    # the other accounts keep working, before and after
    assert config.account("test-notes", "good").credential("api_key") == KEY_A
    assert config.account("test-notes", "embedded").credential("api_key") == "pre-1-mid-2-post"


def test_missing_embedded_variable_names_the_first_missing_one(runtime: Runtime) -> None:
    config = parse(runtime, ENV_FILE, {"GOOD_KEY": KEY_A, "PART_ONE": "1", "TEAM": "t"})
    with pytest.raises(AccountError, match=r"needs environment variable PART_TWO \(for 'api_key', accounts\.yaml:\d+\)"):
        config.account("test-notes", "embedded")


def test_environment_defaults_to_os_environ(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOSMO_TEST_NOTES_KEY", KEY_B)
    config = AccountsConfig.parse("integrations:\n  test-notes:\n    accounts:\n      main: {api_key: '${KOSMO_TEST_NOTES_KEY}'}\n",
                                  "a.yaml", runtime._manifest_for, runtime.catalog.names)
    assert config.account("test-notes").credential("api_key") == KEY_B


def test_empty_credential_fails_on_use(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                api_key: ${EMPTY}
        """
    config = parse(runtime, text, {"EMPTY": ""})
    with pytest.raises(AccountError) as caught:
        config.account("test-notes")
    assert caught.value.message == f"account test-notes.main: credential 'api_key' is empty (accounts.yaml:{line_of(text, 'api_key:')})"
    assert caught.value.hint == "set 'api_key' to a value or ${VARIABLE}"


def test_check_collects_every_problem_without_raising(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              ok: {api_key: "${OK}"}
              no_var: {api_key: "${NOT_SET_ONE}"}
              empty: {api_key: "${EMPTY}"}
              also_no_var: {api_key: "x-${NOT_SET_TWO}"}
        """
    config = parse(runtime, text, {"OK": "k", "EMPTY": ""})
    problems = config.check()
    assert [type(p) for p in problems] == [AccountError, AccountError, AccountError]
    assert [p.account for p in problems] == ["no_var", "empty", "also_no_var"]
    assert "NOT_SET_ONE" in problems[0].message
    assert "credential 'api_key' is empty" in problems[1].message
    assert "NOT_SET_TWO" in problems[2].message
    # several accounts and no default: check() looks at named accounts only, so that is no problem here
    assert config.account("test-notes", "ok").credential("api_key") == "k"


# --------------------------------------------------------------------------------------------
# file errors: file, correct line, hint
# --------------------------------------------------------------------------------------------


def assert_file_error(error: AccountsFileError, line: int, message: str, hint: str, source: str = "accounts.yaml") -> None:
    assert error.code == "accounts_file_error"
    assert error.file == source
    assert error.line == line
    assert error.message == f"{source}:{line}: {message}"
    assert error.hint == hint


def test_yaml_syntax_error_names_line(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                api_key: x
               broken: here
              other:
                api_key: y
        """
    error = file_error(runtime, text)
    assert error.line == line_of(text, "broken: here")
    assert error.message.startswith(f"accounts.yaml:{error.line}: invalid YAML: ")
    assert error.hint == "fix the YAML syntax (indentation with spaces, matching quotes, 'key: value')"


def test_yaml_tab_indentation_error_names_line(runtime: Runtime) -> None:
    text = "integrations:\n  test-notes:\n\taccounts: {}\n"
    error = file_error(runtime, text)
    assert error.line == 3
    assert error.message.startswith("accounts.yaml:3: invalid YAML: ")


def test_yaml_unterminated_quote_names_the_line_of_the_quote(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                api_key: 'unterminated
        """
    error = file_error(runtime, text)
    assert error.line == line_of(text, "unterminated")
    assert error.line <= len(textwrap.dedent(text).splitlines())


def test_duplicate_account(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                api_key: x
              main:
                api_key: y
        """
    first, second = line_of(text, "main:"), line_of(text, "main:", 2)
    assert_file_error(file_error(runtime, text), second, f"duplicate key 'main' (first defined on line {first})",
                      "remove or rename one of them")


def test_duplicate_key_in_an_account(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                api_key: x
                team: a
                api_key: y
        """
    first, second = line_of(text, "api_key"), line_of(text, "api_key", 2)
    assert_file_error(file_error(runtime, text), second, f"duplicate key 'api_key' (first defined on line {first})",
                      "remove or rename one of them")


def test_duplicate_integration(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts: {a: {api_key: x}}
          test-notes:
            accounts: {b: {api_key: y}}
        """
    error = file_error(runtime, text)
    assert error.line == 4
    assert "duplicate key 'test-notes' (first defined on line 2)" in error.message


def test_unknown_integration_with_did_you_mean(runtime: Runtime) -> None:
    text = """\
        version: 1
        integrations:
          test-nots:
            accounts:
              main: {api_key: x}
        """
    error = file_error(runtime, text)
    assert error.line == 3
    assert error.message == "accounts.yaml:3: unknown integration 'test-nots'"
    assert error.hint.startswith("did you mean 'test-notes'? installed integrations: ")
    assert "test-notes" in error.hint.split("installed integrations: ")[1].split(", ")


def test_integration_written_with_underscore_is_named_with_fix(runtime: Runtime) -> None:
    text = "integrations:\n  test_notes:\n    accounts:\n      main: {api_key: x}\n"
    assert_file_error(file_error(runtime, text), 2, "write the integration as 'test-notes', not 'test_notes'",
                      "rename the key to test-notes")


def test_unknown_field_with_did_you_mean(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                api_key: x
                tema: blue
        """
    error = file_error(runtime, text)
    assert error.line == line_of(text, "tema")
    assert error.message == f"accounts.yaml:{error.line}: unknown field 'tema' for a test-notes account"
    assert error.hint.startswith("did you mean 'team'? fields: ")
    fields = error.hint.split("fields: ")[1].split(", ")
    assert fields == sorted(fields)
    assert {"api_key", "base_url", "team", "writes", "label", "timeout"} <= set(fields)


def test_unknown_key_under_integration(runtime: Runtime) -> None:
    text = "integrations:\n  test-notes:\n    acounts:\n      main: {api_key: x}\n"
    assert_file_error(file_error(runtime, text), 3, "unknown key 'acounts' under test-notes",
                      "an integration has 'default' and 'accounts'")


def test_missing_required_credential(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                team: blue
        """
    assert_file_error(file_error(runtime, text), line_of(text, "main:"),
                      "account is missing credential 'api_key' (API key of the notes service)",
                      "add 'api_key: ${SOME_ENV_VAR}' to the account")


def test_invalid_account_write_policy(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            accounts:
              main:
                api_key: x
                writes: sometimes
        """
    assert_file_error(file_error(runtime, text), line_of(text, "writes"), "invalid write policy 'sometimes'",
                      "use one of: allow, deny, ask")


def test_invalid_settings_write_policy(runtime: Runtime) -> None:
    text = "version: 1\nsettings:\n  writes: true\n"
    assert_file_error(file_error(runtime, text), 3, "invalid write policy True", "use one of: allow, deny, ask")


def test_unknown_setting(runtime: Runtime) -> None:
    text = "settings:\n  write: deny\n"
    assert_file_error(file_error(runtime, text), 2, "unknown setting 'write'", "settings are: writes, audit_log, state")


@pytest.mark.parametrize("name", ["Main", "my-account", "2nd", "with space", "_hidden"])
def test_invalid_account_name(runtime: Runtime, name: str) -> None:
    text = f"integrations:\n  test-notes:\n    accounts:\n      '{name}':\n        api_key: x\n"
    assert_file_error(file_error(runtime, text), 4, f"invalid account name {name!r}",
                      "use lower-case letters, digits and _ (it becomes a Lua name)")


def test_account_name_that_is_a_function_name(runtime: Runtime) -> None:
    text = "integrations:\n  test-notes:\n    accounts:\n      list_notes:\n        api_key: x\n"
    assert_file_error(file_error(runtime, text), 4, "account name 'list_notes' is also a function of test-notes",
                      "choose another name")


def test_default_naming_a_missing_account(runtime: Runtime) -> None:
    text = """\
        integrations:
          test-notes:
            default: mian
            accounts:
              main: {api_key: x}
              other: {api_key: y}
        """
    assert_file_error(file_error(runtime, text), line_of(text, "default:"), "default account 'mian' is not defined",
                      "did you mean 'main'? accounts: main, other")


def test_unknown_top_level_key(runtime: Runtime) -> None:
    text = "version: 1\nintegration:\n  test-notes: {}\n"
    assert_file_error(file_error(runtime, text), 2, "unknown top-level key 'integration'",
                      "top-level keys are: version, settings, integrations")


def test_unsupported_version(runtime: Runtime) -> None:
    assert_file_error(file_error(runtime, "version: 2\n"), 1, "unsupported version 2", "use version: 1")


@pytest.mark.parametrize("value", ["soon", "-1", "0", "{read: 0}", "{reed: 5}", "true"])
def test_bad_timeout(runtime: Runtime, value: str) -> None:
    text = f"integrations:\n  test-notes:\n    accounts:\n      main:\n        api_key: x\n        timeout: {value}\n"
    error = file_error(runtime, text)
    assert error.line == 6
    assert error.message.startswith("accounts.yaml:6: invalid timeout ")
    assert error.hint == "write seconds (timeout: 20, the read timeout) or a mapping of connect, read, write, pool"


@pytest.mark.parametrize("value", ["{requests: 10}", "{requests: 0, per_seconds: 1}", "5", "true"])
def test_bad_rate_limit(runtime: Runtime, value: str) -> None:
    text = f"integrations:\n  test-notes:\n    accounts:\n      main:\n        api_key: x\n        rate_limit: {value}\n"
    error = file_error(runtime, text)
    assert error.line == 6
    assert error.message.startswith("accounts.yaml:6: invalid rate_limit ")
    assert "rate_limit: {requests: 10, per_seconds: 1}" in error.hint


def test_rate_limit_setting(runtime: Runtime) -> None:
    config = parse(runtime, "integrations:\n  test-notes:\n    accounts:\n      a: {api_key: x, rate_limit: false}\n"
                            "      b: {api_key: y, rate_limit: {requests: 5, per_seconds: 2}}\n")
    assert config.account("test-notes", "a").rate_limit is False
    assert config.account("test-notes", "b").rate_limit == {"requests": 5, "per_seconds": 2}


def test_timeout_mapping(runtime: Runtime) -> None:
    config = parse(runtime, "integrations:\n  test-notes:\n    accounts:\n      main:\n        api_key: x\n"
                            "        timeout: {connect: 2, read: 40}\n")
    assert config.account("test-notes").timeouts == {"connect": 2, "read": 40}


def test_credential_that_is_not_a_string(runtime: Runtime) -> None:
    text = "integrations:\n  test-notes:\n    accounts:\n      main:\n        api_key: [a, b]\n"
    assert_file_error(file_error(runtime, text), 5, "'api_key' must be a string", "quote the value")


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        ("- a\n- b\n", 1, "the file must be a mapping, got list", "write the file as 'key: value' lines"),
        ("just text\n", 1, "the file must be a mapping, got str", "write the file as 'key: value' lines"),
        ("settings: [writes]\n", 1, "settings must be a mapping, got list", "write settings as 'key: value' lines"),
        ("integrations: 5\n", 1, "integrations must be a mapping, got int", "write integrations as 'key: value' lines"),
        ("integrations:\n  test-notes: [a]\n", 2, "test-notes must be a mapping, got list",
         "write test-notes as 'key: value' lines"),
        ("integrations:\n  test-notes:\n    accounts: [a, b]\n", 3, "accounts must be a mapping, got list",
         "write accounts as 'key: value' lines"),
        ("integrations:\n  test-notes:\n    accounts:\n      main: secret\n", 4, "main must be a mapping, got str",
         "write main as 'key: value' lines"),
    ],
)
def test_non_mapping_values(runtime: Runtime, text: str, line: int, message: str, hint: str) -> None:
    assert_file_error(file_error(runtime, text), line, message, hint)


def test_file_errors_never_show_the_value_of_a_credential(runtime: Runtime) -> None:
    texts = [
        f"integrations:\n  test-notes:\n    accounts:\n      main:\n        api_kye: {LITERAL}\n",
        f"integrations:\n  test-nots:\n    accounts:\n      main:\n        api_key: {LITERAL}\n",
        f"integrations:\n  test-notes:\n    accounts:\n      main:\n        api_key: {LITERAL}\n        writes: nope\n",
        f"integrations:\n  test-notes:\n    accounts:\n      main:\n        api_key: {LITERAL}\n      main:\n        api_key: {LITERAL}\n",
    ]
    for text in texts:
        error = file_error(runtime, text)
        assert LITERAL not in repr(error.to_dict()) and LITERAL not in str(error)


# --------------------------------------------------------------------------------------------
# secrets
# --------------------------------------------------------------------------------------------


def test_secret_never_shows_its_value() -> None:
    secret = Secret(KEY_A)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret!s}", "%s" % secret, "%r" % (secret,),  # noqa: UP031 (%-formatting is one of the ways shown)
             format(secret), str([secret]), str({"k": secret}), repr((secret,))]
    for text in shown:
        assert KEY_A not in text
        assert "***" in text
    assert secret.reveal() == KEY_A
    assert Secret(KEY_A) == secret and Secret(KEY_B) != secret
    assert not hasattr(secret, "__dict__")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=4, max_size=40))
def test_secret_never_shows_any_value(value: str) -> None:
    assume(value not in "Secret('***')")
    secret = Secret(value)
    for text in (repr(secret), str(secret), f"{secret}", format(secret), str([secret])):
        assert value not in text
    assert secret.reveal() == value


def test_account_repr_and_describe_have_no_secret(runtime: Runtime) -> None:
    config = parse(runtime, f"""\
        integrations:
          test-notes:
            default: main
            accounts:
              main:
                api_key: ${{MAIN_KEY}}
                label: Main
              literal:
                api_key: {LITERAL}
                writes: deny
        """, {"MAIN_KEY": KEY_A})
    main = config.account("test-notes")
    literal = config.account("test-notes", "literal")
    for account in (main, literal):
        for text in (repr(account), str(account), str(account.credentials), repr(account.credentials)):
            assert KEY_A not in text and LITERAL not in text
    assert "api_key" not in repr(main)  # the credentials field is not in the repr at all

    rows = config.describe()
    assert rows == [
        {"integration": "test-notes", "account": "main", "default": True, "writes": "allow", "label": "Main"},
        {"integration": "test-notes", "account": "literal", "default": False, "writes": "deny", "label": None},
    ]
    assert KEY_A not in repr(rows) and LITERAL not in repr(rows)
    assert KEY_A not in repr(config) and LITERAL not in repr(config)


def test_describe_uses_the_file_wide_policy(runtime: Runtime) -> None:
    config = parse(runtime, """\
        settings: {writes: deny}
        integrations:
          test-notes:
            accounts:
              one: {api_key: a}
              two: {api_key: b, writes: ask}
        """)
    assert [(r["account"], r["default"], r["writes"]) for r in config.describe()] == [
        ("one", False, "deny"), ("two", False, "ask")]
    assert config.account("test-notes", "one").writes == "deny"
    assert config.account("test-notes", "two").writes == "ask"


# --------------------------------------------------------------------------------------------
# a Runtime without an accounts file
# --------------------------------------------------------------------------------------------


def test_runtime_without_accounts_file_explains_how_to_configure() -> None:
    with Runtime(integration_paths=[FIXTURES], store=":memory:") as rt:
        assert rt.accounts.integrations() == []
        with pytest.raises(AccountError) as caught:
            rt.accounts.account("test-notes")
        error = caught.value
        assert error.message == "no account is configured for test-notes"
        assert "integrations: test-notes: accounts:" in error.hint

        result = rt.call("test-notes.list_notes", {"limit": 1})
        assert not result.ok
        assert isinstance(result.error, AccountError)
        assert result.error.hint == error.hint

        run = rt.run("return app.integrations.test_notes.list_notes{}")
        assert not run.ok and run.error.type == "AccountError"
        assert run.error.message == "no account is configured for test-notes"


def test_runtime_without_accounts_file_hint_says_where_the_file_goes() -> None:
    with Runtime(integration_paths=[FIXTURES], store=":memory:") as rt:
        with pytest.raises(AccountError) as caught:
            rt.accounts.account("test-notes")
    hint = caught.value.hint
    assert "((" not in hint
    assert "KOSMO_ACCOUNTS" in hint or "--accounts" in hint or str(default_accounts_path()) in hint


def test_runtime_reads_accounts_path_and_kosmo_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("integrations:\n  test-notes:\n    accounts:\n      main: {api_key: x}\n", encoding="utf-8")
    with Runtime(integration_paths=[FIXTURES], store=":memory:", accounts=path) as rt:
        assert rt.accounts.source == str(path)
        assert rt.accounts.account_names("test-notes") == ["main"]
    monkeypatch.setenv("KOSMO_ACCOUNTS", str(path))
    with Runtime(integration_paths=[FIXTURES], store=":memory:") as rt:
        assert rt.accounts.source == str(path)


def test_runtime_with_malformed_file_fails_the_run_with_the_file_error(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("integrations:\n  test-notes:\n    accounts:\n      main: {api_kye: x}\n", encoding="utf-8")
    with Runtime(integration_paths=[FIXTURES], store=":memory:", accounts=path) as rt:
        result = rt.run("return 1")
    assert not result.ok
    assert isinstance(result.error, AccountsFileError)
    assert result.error.message == f"{path}:4: unknown field 'api_kye' for a test-notes account"
