"""The generated manifest's YAML writer: whatever it writes, every YAML reader here gives back equal data."""

from __future__ import annotations

import gc
import json
import random
from typing import Any

import pytest
import yaml

from kosmo_runtime._gcpause import gc_paused
from kosmo_runtime._yamldump import dump
from kosmo_runtime._yamlfile import parse_located

# Strings YAML would read as something else, or stumble on, when written plain or raw.
TRICKY = [
    "yes", "No", "ON", "off", "null", "Null", "~", "", "  ", "a ", " a", "-", "- x", "? x", ": x", "a: b", "a #b",
    "#x", "*x", "&x", "!x", "%x", "@x", "`x", "|", "> x", "'q'", '"q"', "[a]", "{a}", "a,b", "1", "1.0", "0x1F",
    "1_000", "12:30", "1:20:30", ".inf", ".NaN", "2024-01-01", "2024-08-13", "2001-12-14t21:59:43.10-05:00", "=",
    "<<", "y", "\t", "a\tb", "line\nbreak", "cr\rx", "\x85nel", "\u2028ls", "\u2029", "\ufeffbom", "\x7fdel",
    "\x00nul", "\x1b", "émoji 😀", "日本語", "back\\slash", "\\n", "a/b", "$ref", "filter[status]", "cal-api-version",
    "a  b", "_x", "Ab1.-/+(),", ".5", "+1", "-1", "0o17", "0b101", "1e5", "True", "FALSE", "\ufffd", "a'b",
    "trailing:", "x:y", "http://x.y/z?a=b#c", "%YAML", "---", "...", "--- x", "a:b", "a#b", 'a"b', "a[b]",
    "a{b}", "a&b", "a*b", "a!b", "a|b", "a>b", "a%b", "a@b", "a`b", "a - b", "a ? b", "a :b", "a ?", "a -", "aé",
    "a\u00a0b", "a\u00a0", "a\u3000", "a\x85b", "a\u2028b", "a\ufeffb", "a\x7f", "a\x9fb", "a\tb ", "a:",
    "a::", "a: ", "a #", "a\\", "a,", "a}", "a]",
]
NUMBERS: list[Any] = [0, -3, 10**20, True, False, None, 1.5, -0.0, 1e16, 1e-7, 3.0, float("inf"), float("-inf"), 1e300]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice([rng.choice(TRICKY) + rng.choice(["", " z", "x"]), rng.choice(NUMBERS), {}, []])
    if roll < 0.75:
        return {rng.choice(TRICKY) + rng.choice(["", "k"]): _value(rng, depth + 1) for _ in range(rng.randint(1, 4))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(1, 4))]


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # -0.0 and 0.0 kept apart


@pytest.mark.parametrize("seed", range(4))
def test_every_reader_gives_back_what_was_written(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        data = {f"k{n}": _value(rng, 0) for n in range(3)}
        text = dump(data)
        assert _same(yaml.load(text, Loader=yaml.CSafeLoader), data), text
        assert _same(yaml.load(text, Loader=yaml.SafeLoader), data), text
        assert _same(parse_located(text).data, data), text


def test_names_and_words_stay_plain_and_lookalikes_are_quoted() -> None:
    text = dump({"id": "big", "on": "yes", "version": "2024-08-13", "hosts": ["api.cal.com"], "n": 1,
                 "nested": {"empty": {}, "none": [], "list": [{"a": 1, "b": [1, [2, 3]]}]}})
    assert text == ('id: big\n"on": "yes"\nversion: "2024-08-13"\nhosts:\n- api.cal.com\nn: 1\n'
                    'nested:\n  empty: {}\n  none: []\n  list:\n  - a: 1\n    b:\n    - 1\n    - - 2\n      - 3\n')


def test_only_plain_data_is_written() -> None:
    with pytest.raises(TypeError, match="set"):
        dump({"x": {1, 2}})


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_inside_and_left_as_it_was(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    try:
        with gc_paused():
            assert not gc.isenabled()
            with gc_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
